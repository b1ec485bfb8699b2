#!/usr/bin/env python3
"""Reference fixtures for the weights component (tests/fixtures/hf/), made with torch + transformers on CPU.

    python3 scripts/gen_hf_fixtures.py                       # (re)write the fixtures
    python3 scripts/gen_hf_fixtures.py --check-export build/gpt2_cpu
        # export the fixtures with OUR exporter (`gpt2_cpu export`), load the result with transformers'
        # GPT2LMHeadModel.from_pretrained, compare its logits with the fixture logits, and record the verdict
        # plus a hash of each exported file in tests/fixtures/hf/export_check.json (the C++ test checks that
        # its export still produces exactly those bytes).
    python3 scripts/gen_hf_fixtures.py --fuzz-seeds
        # write the libFuzzer seed corpus fuzz/corpus_safetensors (tiny valid GPT-2 files, see fuzz_seeds()).

Each model directory holds what save_pretrained wrote (model.safetensors, config.json) and ref.json:
prompt token ids, the logits (T, V) of the prompt, and HF's greedy continuation (generate, do_sample=False).
Two small random GPT-2s with fixed seeds:
    tiny_a: n_embd 32, n_layer 2, n_head 4, vocab 500 (padded to 512 by us), n_positions 64, tied head
    tiny_b: n_embd 48, n_layer 3, n_head 4, vocab 320 (padded to 384), n_positions 64, UNTIED head
    tiny_a_f16: tiny_a saved as float16 (its reference logits come from the fp16 weights upcast to fp32)
Weights are drawn wider than GPT-2's N(0, 0.02) init (and LayerNorm params randomised) so the logits are
spread out and the greedy choice has a clear margin at every step (min margin printed and stored).
"""
import argparse, json, os, shutil, subprocess, sys, tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "hf")
PROMPT_LEN, NEW_TOKENS = 12, 40

SPECS = {
    "tiny_a": dict(seed=1234, n_embd=32, n_layer=2, n_head=4, vocab_size=500, tied=True),
    "tiny_b": dict(seed=4321, n_embd=48, n_layer=3, n_head=4, vocab_size=320, tied=False),
}


def make_model(spec):
    torch.manual_seed(spec["seed"])
    cfg = GPT2Config(n_embd=spec["n_embd"], n_layer=spec["n_layer"], n_head=spec["n_head"],
                     vocab_size=spec["vocab_size"], n_positions=64, n_ctx=64,
                     embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0,
                     tie_word_embeddings=spec["tied"], bos_token_id=0, eos_token_id=0)
    m = GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.25)
            elif name.endswith("weight"):  # LayerNorm gain
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    return m


def reference(m, seed):
    g = torch.Generator().manual_seed(seed + 1)
    prompt = torch.randint(0, m.config.vocab_size, (1, PROMPT_LEN), generator=g)
    with torch.no_grad():
        logits = m(prompt).logits[0].float()
        out = m.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=NEW_TOKENS,
                         do_sample=False, eos_token_id=None, pad_token_id=0, output_scores=True,
                         return_dict_in_generate=True)
    greedy = out.sequences[0, PROMPT_LEN:].tolist()
    margin = min(float(s[0].topk(2).values[0] - s[0].topk(2).values[1]) for s in out.scores)
    return prompt[0].tolist(), logits, greedy, margin


def write_ref(d, prompt, logits, greedy, margin):
    ref = {"prompt": prompt, "logits": [[float("%.9g" % x) for x in row] for row in logits.tolist()],
           "greedy": greedy, "min_greedy_margin": margin}
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f)


def save_dir(m, d):
    if os.path.exists(d):
        shutil.rmtree(d)
    m.save_pretrained(d, safe_serialization=True)
    for extra in os.listdir(d):  # keep only what the loader reads
        if extra not in ("model.safetensors", "config.json"):
            os.remove(os.path.join(d, extra))


def generate_fixtures():
    os.makedirs(OUT, exist_ok=True)
    for name, spec in SPECS.items():
        m = make_model(spec)
        d = os.path.join(OUT, name)
        save_dir(m, d)
        prompt, logits, greedy, margin = reference(m, spec["seed"])
        write_ref(d, prompt, logits, greedy, margin)
        print(f"{name}: {sum(p.numel() for p in m.parameters())} params, greedy {greedy[:8]}..., min margin {margin:.4g}")
        if name == "tiny_a":  # the same model stored as float16
            h = make_model(spec).half()
            d16 = os.path.join(OUT, "tiny_a_f16")
            save_dir(h, d16)
            m32 = h.float().eval()
            prompt, logits, greedy, margin = reference(m32, spec["seed"])
            write_ref(d16, prompt, logits, greedy, margin)
            print(f"tiny_a_f16: greedy {greedy[:8]}..., min margin {margin:.4g}")


def fnv1a64(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def check_export(binary):
    results, ok_all = {}, True
    for name in SPECS:
        src = os.path.join(OUT, name)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "export")
            subprocess.run([binary, "export", "--model", src, "--out", out], check=True)
            m = GPT2LMHeadModel.from_pretrained(out).eval()
            ref = json.load(open(os.path.join(src, "ref.json")))
            with torch.no_grad():
                logits = m(torch.tensor([ref["prompt"]])).logits[0]
            want = torch.tensor(ref["logits"])
            err = float((logits - want).abs().max() / want.abs().max())
            ok = err <= 1e-5 and m.config.tie_word_embeddings == SPECS[name]["tied"]
            ok_all &= ok
            path = os.path.join(out, "model.safetensors")
            results[name] = {"file_size": os.path.getsize(path), "fnv1a64": fnv1a64(path),
                             "max_rel_err": err, "ok": ok}
            print(name, results[name])
    with open(os.path.join(OUT, "export_check.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0 if ok_all else 1


def fuzz_seeds():
    """Tiny valid GPT-2 files for fuzz/fuzz_safetensors.cpp's fixed config (V=8, C=4, L=1, maxT=4) in F32, F16 and
    BF16, with and without the "transformer." prefix (+ a mask buffer); byte 0 = 1 selects the fixed config."""
    from safetensors.torch import save as st_save
    d = os.path.join(ROOT, "fuzz", "corpus_safetensors")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    V, C, T = 8, 4, 4
    shapes = {"wte.weight": (V, C), "wpe.weight": (T, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for k, s in {"ln_1.weight": (C,), "ln_1.bias": (C,), "ln_2.weight": (C,), "ln_2.bias": (C,),
                 "attn.c_attn.weight": (C, 3 * C), "attn.c_attn.bias": (3 * C,), "attn.c_proj.weight": (C, C),
                 "attn.c_proj.bias": (C,), "mlp.c_fc.weight": (C, 4 * C), "mlp.c_fc.bias": (4 * C,),
                 "mlp.c_proj.weight": (4 * C, C), "mlp.c_proj.bias": (C,)}.items():
        shapes["h.0." + k] = s
    n = 0
    for prefix in ["", "transformer."]:
        for dtype in [torch.float32, torch.float16, torch.bfloat16]:
            ts = {prefix + k: torch.randn(s, generator=g).to(dtype) for k, s in shapes.items()}
            if prefix:
                ts[prefix + "h.0.attn.bias"] = torch.ones(1, 1, T, T)
            with open(os.path.join(d, f"seed_{n}"), "wb") as f:
                f.write(b"\x01" + st_save(ts, metadata={"format": "pt"}))
            n += 1
    print(f"{n} seeds in {d}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-export", metavar="GPT2_CPU", help="validate our exporter with transformers")
    ap.add_argument("--fuzz-seeds", action="store_true", help="write the fuzzer seed corpus")
    a = ap.parse_args()
    if a.fuzz_seeds:
        sys.exit(fuzz_seeds())
    sys.exit(check_export(a.check_export) if a.check_export else generate_fixtures())
