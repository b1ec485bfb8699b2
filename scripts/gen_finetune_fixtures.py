#!/usr/bin/env python3
"""gen_finetune_fixtures.py — PyTorch references for the fine-tuning tests (tests/test_finetune_model.cpp).

A tiny GPT-2 written directly in torch on the llm.c parameter layout (host/gpt2_config.h), float64, no dropout:
  classify.txt  last-token classification head (C -> 2, with bias); trainable = last block + final LayerNorm +
                head; loss, logits, gradients of the trainable tensors, then 3 AdamW steps (torch.optim.AdamW,
                lr 1e-3, wd 0.1, betas (0.9, 0.999)) on the same batch: losses and final trainable parameters
  lm_masked.txt LM head (tied), every tensor trainable, targets from the book's collate example with -100;
                loss and gradients of wte, qkvw, fcprojw, lnfw
  lora.txt      LoRA (rank 2, alpha 3) on every linear incl. the tied head, base frozen; A and B random (B != 0 so
                that dA is non-zero); loss and the gradients of every A and B
File format: one tensor per line, "name count v0 v1 ..." (%.17g).
Run: python3 scripts/gen_finetune_fixtures.py  (writes tests/fixtures/finetune/)
"""
import math
import os

import torch

torch.manual_seed(1234)
DT = torch.float64
V = Vp = 64
C, L, NH, MAXT = 16, 2, 2, 16
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "finetune")

SHAPES = [("wte", (Vp, C)), ("wpe", (MAXT, C)), ("ln1w", (L, C)), ("ln1b", (L, C)), ("qkvw", (L, 3 * C, C)),
          ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)), ("attprojb", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)),
          ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)), ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
          ("lnfw", (C,)), ("lnfb", (C,))]


def make_params():
    p = {}
    for name, shape in SHAPES:
        t = torch.randn(shape, dtype=DT) * 0.3
        if name in ("ln1w", "ln2w", "lnfw"):
            t = 1.0 + 0.1 * torch.randn(shape, dtype=DT)
        p[name] = t.requires_grad_(False)
    return p


def flat(p):
    return torch.cat([p[n].reshape(-1) for n, _ in SHAPES])


def ln(x, w, b):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(v + 1e-5) * w + b


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(x, w, b, lora=None, scale=0.0):
    y = x @ w.T
    if b is not None:
        y = y + b
    if lora is not None:
        A, B = lora
        y = y + scale * ((x @ A.T) @ B.T)
    return y


def trunk(p, idx, lora=None, scale=0.0):
    Bn, T = idx.shape
    hs = C // NH
    x = p["wte"][idx] + p["wpe"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(L):
        lo = (lambda k: lora[4 * l + k]) if lora else (lambda k: None)
        h = ln(x, p["ln1w"][l], p["ln1b"][l])
        qkv = linear(h, p["qkvw"][l], p["qkvb"][l], lo(0), scale)
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(Bn, T, NH, hs).transpose(1, 2)
        k = k.view(Bn, T, NH, hs).transpose(1, 2)
        v = v.view(Bn, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = torch.softmax(att.masked_fill(mask, float("-inf")), -1)
        y = (att @ v).transpose(1, 2).reshape(Bn, T, C)
        x = x + linear(y, p["attprojw"][l], p["attprojb"][l], lo(1), scale)
        h = ln(x, p["ln2w"][l], p["ln2b"][l])
        x = x + linear(gelu(linear(h, p["fcw"][l], p["fcb"][l], lo(2), scale)), p["fcprojw"][l], p["fcprojb"][l],
                       lo(3), scale)
    return ln(x, p["lnfw"], p["lnfb"])


def write(path, tensors):
    with open(path, "w") as f:
        for name, t in tensors:
            vals = t.detach().reshape(-1).tolist() if torch.is_tensor(t) else list(t)
            f.write(name + " " + str(len(vals)) + " " + " ".join("%.17g" % float(v) for v in vals) + "\n")


def case_classify():
    p = make_params()
    W = (torch.rand(2, C, dtype=DT) * 2 - 1) / math.sqrt(C)
    b = (torch.rand(2, dtype=DT) * 2 - 1) / math.sqrt(C)
    idx = torch.randint(0, V, (3, 6))
    labels = torch.tensor([1, 0, 1])
    base = flat(p).clone()
    # trainable: layer L-1 slices, lnf, head (leaf copies of the slices)
    block = ["ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb", "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb"]
    train = {n: p[n][L - 1].clone().requires_grad_(True) for n in block}
    lnf = {n: p[n].clone().requires_grad_(True) for n in ("lnfw", "lnfb")}
    W.requires_grad_(True)
    b.requires_grad_(True)

    def model_params():
        q = dict(p)
        for n in block:
            q[n] = torch.cat([p[n][: L - 1], train[n].unsqueeze(0)])
        q.update(lnf)
        return q

    def loss_fn():
        h = trunk(model_params(), idx)[:, -1, :]
        logits = h @ W.T + b
        return torch.nn.functional.cross_entropy(logits, labels), logits

    loss, logits = loss_fn()
    loss.backward()
    # clone now: the optimizer below updates W, b in place and replaces the .grad tensors
    out = [("params", base), ("head_w", W.detach().clone()), ("head_b", b.detach().clone()), ("inputs", idx.reshape(-1)), ("labels", labels),
           ("loss", [loss.item()]), ("logits", logits)]
    out += [("grad_" + n, train[n].grad.clone()) for n in block]
    out += [("grad_lnfw", lnf["lnfw"].grad.clone()), ("grad_lnfb", lnf["lnfb"].grad.clone()),
            ("grad_head_w", W.grad.clone()), ("grad_head_b", b.grad.clone())]
    opt = torch.optim.AdamW(list(train.values()) + list(lnf.values()) + [W, b], lr=1e-3, weight_decay=0.1,
                            betas=(0.9, 0.999), eps=1e-8)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        l, _ = loss_fn()
        l.backward()
        opt.step()
        losses.append(l.item())
    out += [("step_losses", losses)]
    out += [("after_" + n, train[n]) for n in block]
    out += [("after_lnfw", lnf["lnfw"]), ("after_head_w", W)]
    write(os.path.join(OUT, "classify.txt"), out)


def case_lm_masked():
    p = make_params()
    base = flat(p).clone()
    for n in p:
        p[n].requires_grad_(True)
    pad = 63  # stands in for 50256 (the tiny vocabulary ends at 63)
    inputs = torch.tensor([[0, 1, 2, 3, 4], [5, 6, pad, pad, pad], [7, 8, 9, pad, pad]])
    targets = torch.tensor([[1, 2, 3, 4, pad], [6, pad, -100, -100, -100], [8, 9, pad, -100, -100]])
    logits = trunk(p, inputs) @ p["wte"].T
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, Vp), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    write(os.path.join(OUT, "lm_masked.txt"),
          [("params", base), ("inputs", inputs.reshape(-1)), ("targets", targets.reshape(-1)),
           ("loss", [loss.item()]), ("grad_wte", p["wte"].grad), ("grad_qkvw", p["qkvw"].grad),
           ("grad_fcprojw", p["fcprojw"].grad), ("grad_lnfw", p["lnfw"].grad), ("grad_wpe", p["wpe"].grad)])


def case_lora():
    p = make_params()
    base = flat(p).clone()
    r, alpha = 2, 3.0
    dims = []
    for _ in range(L):
        dims += [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)]
    dims.append((C, Vp))  # tied head
    lora = [((torch.randn(r, i, dtype=DT) * 0.3).requires_grad_(True),
             (torch.randn(o, r, dtype=DT) * 0.3).requires_grad_(True)) for i, o in dims]
    idx = torch.randint(0, V, (2, 7))
    tg = torch.randint(0, V, (2, 7))
    tg[0, 5:] = -100
    h = trunk(p, idx, lora, alpha / r)
    logits = linear(h, p["wte"], None, lora[-1], alpha / r)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, Vp), tg.reshape(-1), ignore_index=-100)
    loss.backward()
    out = [("params", base), ("inputs", idx.reshape(-1)), ("targets", tg.reshape(-1)), ("loss", [loss.item()]),
           ("logits", logits)]
    for s, (A, B) in enumerate(lora):
        out += [("A%d" % s, A), ("B%d" % s, B), ("dA%d" % s, A.grad), ("dB%d" % s, B.grad)]
    write(os.path.join(OUT, "lora.txt"), out)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    case_classify()
    case_lm_masked()
    case_lora()
    print("wrote", OUT)
