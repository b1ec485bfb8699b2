#!/usr/bin/env python3
"""gen_reference.py — PyTorch reference fixtures for the CPU GPT-2 (tests/test_model_parity.cpp).

Builds two tiny random GPT-2 models with fixed seeds and records what PyTorch computes for them:
  hf_tied.bin    HF transformers GPT2LMHeadModel (tied head, qkv bias, gelu_new), HF's own init
  book_untied.bin the book's GPTModel layout (untied out_head, no qkv bias), written below as in the book
                  (separate W_query/W_key/W_value, -inf causal mask, tanh GELU), PyTorch default init
Each file holds: config, weights in our layout (host/gpt2_config.h order, vocab padded with zero rows),
a batch (some targets -100), logits, loss, the gradient of every parameter, the losses/lrs/norms of 10 AdamW
steps (global-norm clipping 1.0, warmup + cosine as in the book's appendix D, dropout off), and a
dropout-on forward+backward whose masks come from OUR Philox mapping (host/philox.h, re-implemented here in
numpy and checked against Random123's known-answer vectors).
philox_kat.bin holds dropout_uniform() values for a few (seed, stream, index) triples.

File format ("LLMF", little-endian): u32 magic 0x464D4C4C, u32 version 1, u32 count, then per tensor:
  u32 name_len, name bytes (ASCII), u32 dtype (0 f32, 1 i32, 2 i64, 3 f64), u32 ndim, u64 dims[ndim],
  raw data (row-major). Reader: tests/test_model_fixture.h.

usage: python3 -m pip install -r scripts/requirements-reference.txt
       python3 scripts/gen_reference.py [--out tests/fixtures/model]
"""
import argparse
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------
# Philox4x32-10 and the dropout mapping of host/philox.h

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
MASK64 = (1 << 64) - 1


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    c = [np.asarray(x, dtype=np.uint32) for x in (c0, c1, c2, c3)]
    k0, k1 = np.uint32(k0), np.uint32(k1)
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0 = c[0].astype(np.uint64) * M0
            p1 = c[2].astype(np.uint64) * M1
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), p1.astype(np.uint32)
            c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
            k0, k1 = np.uint32(k0 + W0), np.uint32(k1 + W1)
    return c


def check_philox_kat():
    """Random123's published known-answer vectors for philox4x32_10."""
    kats = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
            ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
            ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
             (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, want in kats:
        got = tuple(int(x) for x in philox4x32_10(*ctr, *key))
        assert got == want, (ctr, key, got, want)


def dropout_uniform(seed, stream, index):
    """uniform in [0,1) of element `index` (np array of uint64), host/philox.h mapping."""
    index = np.asarray(index, dtype=np.uint64)
    q = index >> np.uint64(2)
    out = philox4x32_10(q.astype(np.uint32), (q >> np.uint64(32)).astype(np.uint32),
                        np.full(q.shape, stream, dtype=np.uint32), np.zeros(q.shape, dtype=np.uint32),
                        seed & 0xFFFFFFFF, seed >> 32)
    words = np.stack(out, axis=-1)
    w = np.take_along_axis(words, (index & np.uint64(3)).astype(np.int64)[..., None], axis=-1)[..., 0]
    return (w >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def dropout_step_seed(run_seed, step, micro_step):
    return splitmix64(splitmix64(run_seed) ^ splitmix64(((step << 16) & MASK64) ^ micro_step))


SITE_EMBED, SITE_ATTN, SITE_RESID_ATTN, SITE_RESID_MLP = 0, 1, 2, 3


def dropout_stream(layer, site):
    return layer * 4 + site


class PhiloxDropout:
    """Applies our masks: keep iff uniform >= p, kept values scaled by 1/(1-p); index = flat element index."""

    def __init__(self, p, seed):
        self.p, self.seed = p, seed

    def __call__(self, x, layer, site):
        if self.p == 0.0:
            return x
        u = dropout_uniform(self.seed, dropout_stream(layer, site), np.arange(x.numel(), dtype=np.uint64))
        keep = torch.from_numpy((u >= np.float32(self.p)).reshape(tuple(x.shape)))
        scale = torch.tensor(1.0 / (1.0 - self.p), dtype=torch.float32)
        return torch.where(keep, x * scale, torch.zeros((), dtype=x.dtype))


def no_dropout(x, layer, site):
    return x


# ------------------------------------------------------------------------------------------------
# The book's GPT model (ch. 4), with every dropout site routed through a callable drop(x, layer, site).

class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))))


class MultiHeadAttention(nn.Module):
    def __init__(self, d, ctx, nh, qkv_bias):
        super().__init__()
        self.nh, self.hd = nh, d // nh
        self.W_query = nn.Linear(d, d, bias=qkv_bias)
        self.W_key = nn.Linear(d, d, bias=qkv_bias)
        self.W_value = nn.Linear(d, d, bias=qkv_bias)
        self.out_proj = nn.Linear(d, d)
        self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx), diagonal=1))

    def forward(self, x, drop, layer):
        b, t, d = x.shape
        q = self.W_query(x).view(b, t, self.nh, self.hd).transpose(1, 2)
        k = self.W_key(x).view(b, t, self.nh, self.hd).transpose(1, 2)
        v = self.W_value(x).view(b, t, self.nh, self.hd).transpose(1, 2)
        scores = q @ k.transpose(2, 3)
        scores.masked_fill_(self.mask.bool()[:t, :t], -torch.inf)
        w = torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1)
        w = drop(w, layer, SITE_ATTN)  # (b, nh, t, t): flat index ((b*NH+h)*T+t)*T+t2
        ctx = (w @ v).transpose(1, 2).contiguous().view(b, t, d)
        return self.out_proj(ctx)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["emb_dim"]
        self.att = MultiHeadAttention(d, cfg["context_length"], cfg["n_heads"], cfg["qkv_bias"])
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), GELU(), nn.Linear(4 * d, d))
        self.norm1, self.norm2 = LayerNorm(d), LayerNorm(d)

    def forward(self, x, drop, layer):
        x = x + drop(self.att(self.norm1(x), drop, layer), layer, SITE_RESID_ATTN)
        x = x + drop(self.ff(self.norm2(x)), layer, SITE_RESID_MLP)
        return x


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        self.tied = False

    def forward(self, idx, drop=no_dropout):
        t = idx.shape[1]
        x = drop(self.tok_emb(idx) + self.pos_emb(torch.arange(t)), 0, SITE_EMBED)
        for l, blk in enumerate(self.blocks):
            x = blk(x, drop, l)
        x = self.final_norm(x)
        head = self.tok_emb.weight if self.tied else self.out_head.weight
        return F.linear(x, head)


# ------------------------------------------------------------------------------------------------
# Parameter export in our layout (host/gpt2_config.h order)

def book_tensors(m, Vp, use_grad):
    """The 17 tensors of a GPTModel in llm.c order; lm_head only when untied; qkvb only with qkv bias."""
    g = (lambda p: p.grad if p.grad is not None else torch.zeros_like(p)) if use_grad else (lambda p: p.data)
    pad = lambda w: torch.cat([w, torch.zeros(Vp - w.shape[0], w.shape[1])], 0)
    B = m.blocks
    qkv_bias = B[0].att.W_query.bias is not None
    out = [pad(g(m.tok_emb.weight)), g(m.pos_emb.weight),
           torch.stack([g(b.norm1.scale) for b in B]), torch.stack([g(b.norm1.shift) for b in B]),
           torch.stack([torch.cat([g(b.att.W_query.weight), g(b.att.W_key.weight), g(b.att.W_value.weight)]) for b in B])]
    if qkv_bias:
        out.append(torch.stack([torch.cat([g(b.att.W_query.bias), g(b.att.W_key.bias), g(b.att.W_value.bias)]) for b in B]))
    out += [torch.stack([g(b.att.out_proj.weight) for b in B]), torch.stack([g(b.att.out_proj.bias) for b in B]),
            torch.stack([g(b.norm2.scale) for b in B]), torch.stack([g(b.norm2.shift) for b in B]),
            torch.stack([g(b.ff[0].weight) for b in B]), torch.stack([g(b.ff[0].bias) for b in B]),
            torch.stack([g(b.ff[2].weight) for b in B]), torch.stack([g(b.ff[2].bias) for b in B]),
            g(m.final_norm.scale), g(m.final_norm.shift)]
    if not m.tied:
        out.append(pad(g(m.out_head.weight)))
    return out


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors]).detach().numpy().astype(np.float32)


def hf_tensors(hf, Vp, use_grad):
    """Same order from a transformers GPT2LMHeadModel (Conv1D weights are (in, out): transposed)."""
    g = (lambda p: p.grad if p.grad is not None else torch.zeros_like(p)) if use_grad else (lambda p: p.data)
    tr = hf.transformer
    H = tr.h
    pad = lambda w: torch.cat([w, torch.zeros(Vp - w.shape[0], w.shape[1])], 0)
    return [pad(g(tr.wte.weight)), g(tr.wpe.weight),
            torch.stack([g(b.ln_1.weight) for b in H]), torch.stack([g(b.ln_1.bias) for b in H]),
            torch.stack([g(b.attn.c_attn.weight).t() for b in H]), torch.stack([g(b.attn.c_attn.bias) for b in H]),
            torch.stack([g(b.attn.c_proj.weight).t() for b in H]), torch.stack([g(b.attn.c_proj.bias) for b in H]),
            torch.stack([g(b.ln_2.weight) for b in H]), torch.stack([g(b.ln_2.bias) for b in H]),
            torch.stack([g(b.mlp.c_fc.weight).t() for b in H]), torch.stack([g(b.mlp.c_fc.bias) for b in H]),
            torch.stack([g(b.mlp.c_proj.weight).t() for b in H]), torch.stack([g(b.mlp.c_proj.bias) for b in H]),
            g(tr.ln_f.weight), g(tr.ln_f.bias)]


def load_hf_into_book(hf, m):
    """Copy HF weights into a GPTModel(qkv_bias=True, tied) so dropout can be applied site by site."""
    tr, C = hf.transformer, hf.config.n_embd
    with torch.no_grad():
        m.tok_emb.weight.copy_(tr.wte.weight)
        m.pos_emb.weight.copy_(tr.wpe.weight)
        for b, h in zip(m.blocks, tr.h):
            b.norm1.scale.copy_(h.ln_1.weight); b.norm1.shift.copy_(h.ln_1.bias)
            w, bias = h.attn.c_attn.weight.t(), h.attn.c_attn.bias
            for i, lin in enumerate((b.att.W_query, b.att.W_key, b.att.W_value)):
                lin.weight.copy_(w[i * C:(i + 1) * C]); lin.bias.copy_(bias[i * C:(i + 1) * C])
            b.att.out_proj.weight.copy_(h.attn.c_proj.weight.t()); b.att.out_proj.bias.copy_(h.attn.c_proj.bias)
            b.norm2.scale.copy_(h.ln_2.weight); b.norm2.shift.copy_(h.ln_2.bias)
            b.ff[0].weight.copy_(h.mlp.c_fc.weight.t()); b.ff[0].bias.copy_(h.mlp.c_fc.bias)
            b.ff[2].weight.copy_(h.mlp.c_proj.weight.t()); b.ff[2].bias.copy_(h.mlp.c_proj.bias)
        m.final_norm.scale.copy_(tr.ln_f.weight); m.final_norm.shift.copy_(tr.ln_f.bias)
    m.tied = True


# ------------------------------------------------------------------------------------------------
# Fixture writer

DTYPES = {np.float32: 0, np.int32: 1, np.int64: 2, np.float64: 3}


def write_llmf(path, tensors):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<III", 0x464D4C4C, 1, len(tensors)))
        for name, arr in tensors.items():
            arr = np.ascontiguousarray(arr)
            code = DTYPES[arr.dtype.type]
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<II", code, arr.ndim))
            f.write(struct.pack("<%dQ" % arr.ndim, *arr.shape))
            f.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    os.replace(tmp, path)


def loss_fn(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def book_lr(step, warmup, total, initial_lr, peak_lr, min_lr):
    """Book appendix D schedule (step 0-based)."""
    if step < warmup:
        return initial_lr + step * (peak_lr - initial_lr) / warmup
    progress = (step - warmup) / (total - warmup)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def make_case(name, build, export, param_groups, hp, out_dir, cfg, drop_model):
    """build() -> model with forward(idx, drop=...) returning (B,T,V) logits; export(model, use_grad) -> flat."""
    B, T, V, Vp = cfg["B"], cfg["T"], cfg["V"], cfg["Vp"]
    g = torch.Generator().manual_seed(cfg["data_seed"])
    inputs = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[0, 3] = targets[1, 0] = targets[1, T - 1] = targets[0, T - 2] = -100
    rec = {}
    model = build()
    rec["config"] = np.array([cfg["maxT"], V, Vp, cfg["L"], cfg["NH"], cfg["C"], int(cfg["qkv_bias"]),
                              int(cfg["tied"])], dtype=np.int32)
    rec["params"] = export(model, False)
    rec["inputs"] = inputs.numpy().astype(np.int32)
    rec["targets"] = targets.numpy().astype(np.int32)

    # 1. plain forward/backward (dropout off)
    model.zero_grad()
    logits = model(inputs)
    loss = loss_fn(logits, targets)
    loss.backward()
    rec["logits"] = logits.detach().numpy().astype(np.float32)
    rec["loss"] = np.array([loss.item()], dtype=np.float32)
    rec["grads"] = export(model, True)

    # 2. dropout-on forward/backward with our Philox masks
    p, run_seed = 0.1, 1234
    seed = dropout_step_seed(run_seed, 5, 1)
    dm = drop_model()
    dm.zero_grad()
    dlogits = dm(inputs, PhiloxDropout(p, seed))
    dloss = loss_fn(dlogits, targets)
    dloss.backward()
    rec["dropout_p"] = np.array([p], dtype=np.float32)
    rec["dropout_seed"] = np.array([seed], dtype=np.uint64).view(np.int64)
    rec["dropout_logits"] = dlogits.detach().numpy().astype(np.float32)
    rec["dropout_loss"] = np.array([dloss.item()], dtype=np.float32)
    rec["dropout_grads"] = export(dm, True)

    # 3. 10 AdamW steps: lr set before the step, global-norm clip 1.0 every step, dropout off
    model = build()
    opt = torch.optim.AdamW(param_groups(model, hp["weight_decay"]), lr=hp["peak_lr"], betas=(hp["beta1"], hp["beta2"]),
                            eps=hp["eps"])
    losses, lrs, norms = [], [], []
    for step in range(10):
        lr = book_lr(step, hp["warmup"], hp["total"], hp["initial_lr"], hp["peak_lr"], hp["min_lr"])
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        losses.append(loss.item()); lrs.append(lr); norms.append(norm.item())
    rec["train_losses"] = np.array(losses, dtype=np.float32)
    rec["train_lrs"] = np.array(lrs, dtype=np.float64)
    rec["train_norms"] = np.array(norms, dtype=np.float64)
    rec["train_hparams"] = np.array([hp["peak_lr"], hp["initial_lr"], hp["min_lr"], hp["warmup"], hp["total"],
                                     hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"],
                                     1.0 if hp["decay_all"] else 0.0], dtype=np.float64)
    rec["final_params"] = export(model, False)
    path = os.path.join(out_dir, name + ".bin")
    write_llmf(path, rec)
    print(f"{path}: loss {rec['loss'][0]:.6f} dropout loss {rec['dropout_loss'][0]:.6f} "
          f"train losses {' '.join('%.4f' % x for x in losses)} ({os.path.getsize(path)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures", "model"))
    out_dir = os.path.abspath(ap.parse_args().out)
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    check_philox_kat()

    # philox_kat.bin: dropout_uniform for a few (seed, stream, index), including 64-bit seeds / indices
    seeds = np.array([0, 1, 0x0123456789ABCDEF, dropout_step_seed(1234, 5, 1), 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    streams = np.array([0, 3, 7, 42, 0xFFFFFFFF], dtype=np.uint32)
    indices = np.array([0, 1, 2, 3, 4, 5, 1000003, (1 << 32) + 5, (1 << 40) + 2], dtype=np.uint64)
    rows = [(int(s), int(st), int(i)) for s in seeds for st in streams for i in indices]
    vals = np.array([dropout_uniform(s, st, np.array([i], dtype=np.uint64))[0] for s, st, i in rows], dtype=np.float32)
    write_llmf(os.path.join(out_dir, "philox_kat.bin"), {
        "seed": np.array([r[0] for r in rows], dtype=np.uint64).view(np.int64),
        "stream": np.array([r[1] for r in rows], dtype=np.uint32).view(np.int32),
        "index": np.array([r[2] for r in rows], dtype=np.uint64).view(np.int64),
        "uniform": vals,
        "step_seed_args": np.array([1234, 5, 1], dtype=np.int64),
        "step_seed": np.array([dropout_step_seed(1234, 5, 1)], dtype=np.uint64).view(np.int64)})

    base = dict(maxT=32, V=253, Vp=256, L=2, NH=4, C=48, B=2, T=16, data_seed=7)

    # --- HF GPT2LMHeadModel: tied head, qkv bias, gelu_new; HF init (normal 0.02, scaled c_proj) ---
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg_hf = dict(base, qkv_bias=True, tied=True)

    def build_hf():
        torch.manual_seed(1001)
        conf = GPT2Config(vocab_size=cfg_hf["V"], n_positions=cfg_hf["maxT"], n_embd=cfg_hf["C"],
                          n_layer=cfg_hf["L"], n_head=cfg_hf["NH"], activation_function="gelu_new",
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                          tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
        conf._attn_implementation = "eager"  # plain softmax(QKᵀ)V path
        hf = GPT2LMHeadModel(conf)
        hf.eval()  # dropout modules off (p is 0 anyway)

        class Wrap(nn.Module):  # same call signature as GPTModel
            def __init__(self, hf):
                super().__init__()
                self.hf = hf

            def forward(self, idx, drop=no_dropout):
                return self.hf(input_ids=idx).logits
        return Wrap(hf)

    def hf_as_book():
        hf = build_hf().hf
        m = GPTModel(dict(vocab_size=cfg_hf["V"], context_length=cfg_hf["maxT"], emb_dim=cfg_hf["C"],
                          n_heads=cfg_hf["NH"], n_layers=cfg_hf["L"], qkv_bias=True))
        load_hf_into_book(hf, m)
        # the re-implementation must agree with HF before its dropout output is trusted
        idx = torch.randint(0, cfg_hf["V"], (2, 16), generator=torch.Generator().manual_seed(3))
        diff = (m(idx) - hf(input_ids=idx).logits).abs().max().item()
        assert diff < 1e-5, f"book re-implementation differs from HF by {diff}"
        return m

    def hf_groups(model, wd):  # decay 2-D weights only (llm.c default): wte(=lm_head), wpe, c_attn/c_proj/c_fc W
        decay, no_decay = [], []
        for n, p in model.named_parameters():
            (decay if p.dim() == 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]

    hp_hf = dict(peak_lr=3e-3, initial_lr=1e-4, min_lr=1e-4, warmup=3, total=10, beta1=0.9, beta2=0.95, eps=1e-8,
                 weight_decay=0.1, decay_all=False)
    make_case("hf_tied", build_hf, lambda m, g: flat(hf_tensors(m.hf, cfg_hf["Vp"], g)) if hasattr(m, "hf")
              else flat(book_tensors(m, cfg_hf["Vp"], g)), hf_groups, hp_hf, out_dir, cfg_hf, hf_as_book)

    # --- the book's GPTModel: untied out_head, no qkv bias, PyTorch default init ---
    cfg_book = dict(base, qkv_bias=False, tied=False)

    def build_book():
        torch.manual_seed(123)
        return GPTModel(dict(vocab_size=cfg_book["V"], context_length=cfg_book["maxT"], emb_dim=cfg_book["C"],
                             n_heads=cfg_book["NH"], n_layers=cfg_book["L"], qkv_bias=False))

    def book_groups(model, wd):  # the book: every parameter decays
        return [{"params": list(model.parameters()), "weight_decay": wd}]

    hp_book = dict(peak_lr=1e-3, initial_lr=1e-5, min_lr=1e-5, warmup=2, total=10, beta1=0.9, beta2=0.999, eps=1e-8,
                   weight_decay=0.1, decay_all=True)
    make_case("book_untied", build_book, lambda m, g: flat(book_tensors(m, cfg_book["Vp"], g)), book_groups, hp_book,
              out_dir, cfg_book, build_book)


if __name__ == "__main__":
    main()
