#!/usr/bin/env python3
"""plot_log.py — plot the machine-readable main.log written by `gpt2_cpu train` / `train_gpt2cu train`.

Reads one or more logs (one run each; host/progress.h documents the lines):
    step 10 train 3.210100 lr 0.000300 norm 1.234500 ms 412.3 tok_s 1242.0 [mfu 41.20]
    step 10 val 3.456700 ppl 31.7123
    step 10 hellaswag 0.250000 acc_norm 0.265000 items 10042      (--hellaswag: acc, acc_norm as fractions)
A resumed run appends to the same log; a step seen again replaces the earlier value (the resumed run's).

    python3 scripts/plot_log.py out/d6/main.log [out/d12/main.log ...] -o loss.png
    python3 scripts/plot_log.py out/d6/main.log --summary      # text only, no matplotlib needed

The figure has train/val loss against the step (log-scale y) and tokens/s (and MFU when present), plus a HellaSwag
panel (acc_norm solid, acc dashed) when a log has hellaswag lines.
Malformed lines are an error naming the file and line (exit 2): a truncated log is not silently plotted.
"""
import argparse
import math
import os
import sys

TRAIN_FIELDS = ("lr", "norm", "ms", "tok_s", "mfu")


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_log(path):
    """Returns (train, val, hs): dicts step -> {field: value} (train), step -> loss (val) and
    step -> {"acc", "acc_norm", "items"} (hellaswag)."""
    train, val, hs = {}, {}, {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror})")
    for n, line in enumerate(lines, 1):
        w = line.split()
        if not w:
            continue
        try:
            if len(w) < 4 or w[0] != "step":
                raise ValueError
            step, kind, value = int(w[1]), w[2], float(w[3])
            if not math.isfinite(value) and kind == "val":
                raise ValueError
            if kind == "train":
                rest = w[4:]
                if len(rest) % 2:
                    raise ValueError
                row = {"loss": value}
                for k, v in zip(rest[0::2], rest[1::2]):
                    if k not in TRAIN_FIELDS:
                        raise ValueError
                    row[k] = float(v)
                train[step] = row
            elif kind == "val":
                val[step] = value
            elif kind == "hellaswag":
                if len(w) != 8 or w[4] != "acc_norm" or w[6] != "items":
                    raise ValueError
                row = {"acc": value, "acc_norm": float(w[5]), "items": int(w[7])}
                if not (0 <= row["acc"] <= 1 and 0 <= row["acc_norm"] <= 1 and row["items"] > 0):
                    raise ValueError
                hs[step] = row
            else:
                raise ValueError
        except ValueError:
            fail(f"{path}:{n}: not a main.log line: {line[:80]!r}")
    if not train and not val and not hs:
        fail(f"{path}: no train, val or hellaswag lines")
    return train, val, hs


def summary(path, train, val, hs):
    label = os.path.dirname(path) or path
    print(f"{label}: {len(train)} train steps, {len(val)} val points")
    if train:
        last = max(train)
        timed = [r for _, r in sorted(train.items())[1:]]  # the first step pays the warm-up (as the console ETA)
        speeds = [r["tok_s"] for r in timed if "tok_s" in r]
        tok_s = sum(speeds) / len(speeds) if speeds else float("nan")
        mfu = [r["mfu"] for r in timed if "mfu" in r]
        line = f"  last train loss {train[last]['loss']:.4f} (step {last}), mean tok/s {tok_s:.0f}"
        if mfu:
            line += f", mean MFU {sum(mfu) / len(mfu):.1f}%"
        print(line)
    if val:
        best = min(val, key=val.get)
        print(f"  best val loss {val[best]:.4f} (step {best}, perplexity {math.exp(val[best]):.2f}),"
              f" last {val[max(val)]:.4f} (step {max(val)})")
    if hs:
        best, last = max(hs, key=lambda k: hs[k]["acc_norm"]), max(hs)
        print(f"  hellaswag best acc_norm {hs[best]['acc_norm']:.4f} (step {best}), last acc_norm "
              f"{hs[last]['acc_norm']:.4f} acc {hs[last]['acc']:.4f} (step {last}, {hs[last]['items']} items)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="+", help="main.log files (one run each)")
    ap.add_argument("-o", "--out", default="loss.png", help="output image (default loss.png)")
    ap.add_argument("--summary", action="store_true", help="print a text summary only (no matplotlib)")
    args = ap.parse_args()
    runs = [(p, *parse_log(p)) for p in args.logs]
    for p, train, val, hs in runs:
        summary(p, train, val, hs)
    if args.summary:
        return 0
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is not installed (pip install matplotlib), or use --summary")
    with_hs = any(hs for *_, hs in runs)
    fig, axes = plt.subplots(1, 3 if with_hs else 2, figsize=(18 if with_hs else 12, 4.5))
    ax_loss, ax_speed = axes[0], axes[1]
    for p, train, val, hs in runs:
        label = os.path.dirname(p) or p
        if train:
            steps = sorted(train)
            ax_loss.plot(steps, [train[s]["loss"] for s in steps], lw=1, label=f"{label} train")
            ax_speed.plot(steps, [train[s].get("tok_s", float("nan")) for s in steps], lw=1, label=label)
        if val:
            steps = sorted(val)
            ax_loss.plot(steps, [val[s] for s in steps], "o-", ms=3, label=f"{label} val")
        if hs:
            steps = sorted(hs)
            line, = axes[2].plot(steps, [hs[s]["acc_norm"] for s in steps], "o-", ms=3, label=f"{label} acc_norm")
            axes[2].plot(steps, [hs[s]["acc"] for s in steps], "--", color=line.get_color(), lw=1,
                         label=f"{label} acc")
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    ax_speed.set(xlabel="step", ylabel="tokens/s", title="throughput")
    if with_hs:
        axes[2].set(xlabel="step", ylabel="accuracy", title="HellaSwag")
    if any("mfu" in r for _, train, _, _ in runs for r in train.values()):
        ax_mfu = ax_speed.twinx()
        for p, train, _, _ in runs:
            steps = [s for s in sorted(train) if "mfu" in train[s]]
            ax_mfu.plot(steps, [train[s]["mfu"] for s in steps], ":", lw=1)
        ax_mfu.set_ylabel("MFU % (dotted)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, args.out)  # never a half-written image
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
