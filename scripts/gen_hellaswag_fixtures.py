#!/usr/bin/env python3
"""gen_hellaswag_fixtures.py — the HellaSwag reference for tests/test_hellaswag.cpp (torch + transformers, CPU).

Inputs: tests/fixtures/hellaswag/sample.jsonl, 24 items in the dataset's JSONL format written for the tests (not
HellaSwag data), and the GPT-2 vocabulary in data/gpt2/ (read with transformers' GPT2Tokenizer, an implementation
independent of ours).
Outputs in tests/fixtures/hellaswag/:
  tiny/config.json + tiny/model.safetensors   a small random GPT-2 (save_pretrained, float16 storage):
      vocab 50257 (GPT-2's, so the real tokenizer's ids fit), n_embd 16, n_layer 2, n_head 2 (head size 8),
      n_positions 64 (two items are longer: their contexts are cut from the left), tied head. Weights are drawn
      wider than GPT-2's init (gen_hf_fixtures.make_model: N(0, 0.25), LayerNorm gains 1 + N(0, 0.2)) so the four
      endings' scores are far apart. Every wte row is random, also those of tokens the sample never uses: the 50257 terms of each softmax
      sum then differ, as in a real model (zero rows would make tens of thousands of equal terms, whose fp32
      rounding errors add up in one direction instead of cancelling; see the tolerance in test_hellaswag.cpp).
  ref.json   per item: the context tokens after truncation, the four endings' tokens, the SUM and MEAN of each
      ending's per-token losses, pred (argmin sum) and pred_norm (argmin mean); acc, acc_norm; the smallest gap
      between the best and the second-best score of any item relative to the best (a prediction can only flip
      when the error is larger than that).
How (llm.c dev/data/hellaswag.py): tokens = ctx, then " " + ending; the model (fp16 weights upcast to float64,
eval mode) reads every row alone, unpadded; the loss of ending token k is the cross-entropy of the logits at the
position before it. Truncation, as the C++ code does it: a row may hold n_positions + 1 tokens; when the context
plus the item's longest ending is longer, the context keeps only its last (n_positions + 1 - longest) tokens.
Run: python3 scripts/gen_hellaswag_fixtures.py   (pip install -r scripts/requirements-reference.txt)
"""
import json
import os

import torch
from transformers import GPT2Tokenizer

import gen_hf_fixtures  # make_model: the same random GPT-2 recipe as the weights fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "hellaswag")
VOCAB, C, L, NH, NPOS, SEED = 50257, 16, 2, 2, 64, 2024  # NPOS: gen_hf_fixtures' n_positions


def tokenizer():
    with open(os.path.join(ROOT, "data", "gpt2", "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(ROOT, "data", "gpt2", "vocab.bpe"), encoding="utf-8") as f:
        merges = [tuple(line.split(" ")) for line in f.read().split("\n")[1:] if line]
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def read_items(tok):
    items = []
    with open(os.path.join(FIX, "sample.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            ctx = tok.encode(d["ctx"])
            ends = [tok.encode(" " + e) for e in d["endings"]]
            keep = NPOS + 1 - max(len(e) for e in ends)
            truncated = len(ctx) > keep
            if truncated:
                ctx = ctx[-keep:]
            items.append(dict(ctx=ctx, endings=ends, label=int(d["label"]), truncated=truncated))
    return items


def make_model():
    """The random GPT-2 (gen_hf_fixtures.make_model's wide init), stored as float16."""
    spec = dict(seed=SEED, n_embd=C, n_layer=L, n_head=NH, vocab_size=VOCAB, tied=True)
    return gen_hf_fixtures.make_model(spec).half()


def score(model, item):
    sums, means = [], []
    ctx = item["ctx"]
    for end in item["endings"]:
        row = torch.tensor(ctx + end)
        with torch.no_grad():
            logits = model(row[None, :-1]).logits[0]  # (n-1, V) float64
        losses = torch.nn.functional.cross_entropy(logits, row[1:], reduction="none")
        ending = losses[len(ctx) - 1:]  # the predictions of the ending's tokens
        assert ending.numel() == len(end)
        sums.append(float(ending.sum()))
        means.append(float(ending.mean()))
    return sums, means


def gap(v):
    s = sorted(v)
    return (s[1] - s[0]) / abs(s[0])


def main():
    tok = tokenizer()
    items = read_items(tok)
    half = make_model()
    os.makedirs(os.path.join(FIX, "tiny"), exist_ok=True)
    half.save_pretrained(os.path.join(FIX, "tiny"), safe_serialization=True)
    os.remove(os.path.join(FIX, "tiny", "generation_config.json"))  # (not read by anyone)
    model = half.double()
    out, correct, correct_norm, min_gap = [], 0, 0, float("inf")
    for it in items:
        sums, means = score(model, it)
        pred, pred_norm = sums.index(min(sums)), means.index(min(means))
        correct += pred == it["label"]
        correct_norm += pred_norm == it["label"]
        min_gap = min(min_gap, gap(sums), gap(means))
        out.append(dict(label=it["label"], truncated=it["truncated"], ctx=it["ctx"], endings=it["endings"],
                        sum=sums, mean=means, pred=pred, pred_norm=pred_norm))
    ref = dict(model="tiny", n_positions=NPOS, items=out, acc=correct / len(items),
               acc_norm=correct_norm / len(items), min_relative_gap=min_gap)
    with open(os.path.join(FIX, "ref.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(f"{len(items)} items ({sum(it['truncated'] for it in items)} truncated), acc {ref['acc']:.4f}, "
          f"acc_norm {ref['acc_norm']:.4f}, smallest relative gap between best and second {min_gap:.3g}")


if __name__ == "__main__":
    main()
