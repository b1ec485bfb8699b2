#!/usr/bin/env bash
# Tokenizer throughput: build/bench_tokenizer (C++) and tiktoken in the same run on the same files.
#   bash dev/bench_tokenizer.sh            (BUILD=build by default; needs python3 + tiktoken)
# Files: data/tinyshakespeare.txt and a larger mixed concatenation (tinyshakespeare, the-verdict,
# vocab.bpe, the tokenizer test cases and the repo's C++ sources, three times over), written to a
# temporary directory. Both sides encode "ordinary" text (no special tokens); both report the best
# of several runs; token counts and FNV hashes must agree. 2 threads: ours = encode_parallel(…, 2);
# tiktoken = encode_ordinary_batch over the same text cut in two halves at a line boundary, 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${REPS:-5}
[[ -x "$BUILD/bench_tokenizer" ]] || { echo "error: $BUILD/bench_tokenizer not built" >&2; exit 2; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
for i in 1 2 3; do
  cat data/tinyshakespeare.txt data/the-verdict.txt data/gpt2/vocab.bpe tests/fixtures/tokenizer/cases.json \
      host/*.cpp host/*.h tools/*.cpp
done > "$TMP/mixed_large.txt"
FILES="data/tinyshakespeare.txt $TMP/mixed_large.txt"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
LLM_TOKENIZER_DIR=data/gpt2 "$BUILD/bench_tokenizer" --reps "$REPS" $FILES > "$TMP/ours.txt"
python3 - "$TMP/ours.txt" $FILES <<'PY'
import os, sys, time
os.environ["TIKTOKEN_CACHE_DIR"] = ""
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
sys.path.insert(0, "scripts")
from gen_tokenizer_cases import GPT2_PAT, fnv64  # same pattern and hash as the fixtures
ranks = data_gym_to_mergeable_bpe_ranks("data/gpt2/vocab.bpe", "data/gpt2/encoder.json")
enc = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                        special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
REPS = int(os.environ.get("REPS", "5"))
ours = {}
for line in open(sys.argv[1]):
    parts = line.split()
    ours[parts[0]] = dict(p.split("=") for p in parts[1:])
print(f"{'file':<22} {'MB':>6} {'tokens':>9} | {'ours 1T cold':>12} {'ours 1T':>8} {'ours 2T':>8} {'2T/1T':>6} | "
      f"{'tiktoken 1T':>11} {'tiktoken 2T':>11} | {'1T ratio':>8} same")
for path in sys.argv[2:]:
    text = open(path, "rb").read().decode("utf-8")
    nbytes = len(text.encode())
    best1 = best2 = 1e30
    for _ in range(REPS):
        t0 = time.perf_counter(); ids = enc.encode_ordinary(text); best1 = min(best1, time.perf_counter() - t0)
    cut = text.find("\n", len(text) // 2) + 1
    halves = [text[:cut], text[cut:]]
    for _ in range(REPS):
        t0 = time.perf_counter(); parts = enc.encode_ordinary_batch(halves, num_threads=2)
        best2 = min(best2, time.perf_counter() - t0)
    o = ours[path]
    same = int(o["tokens"]) == len(ids) and o["fnv"] == fnv64(ids)
    mb = nbytes / 1e6
    name = os.path.basename(path)
    print(f"{name:<22} {mb:6.2f} {len(ids):9d} | {float(o['cold1']):12.2f} {float(o['warm1']):8.2f} "
          f"{float(o['par2']):8.2f} {float(o['par2'])/float(o['warm1']):6.2f} | {mb/best1:11.2f} {mb/best2:11.2f} | "
          f"{float(o['warm1'])/(mb/best1):7.1f}x {'yes' if same else 'NO'}")
print("MB/s, MB = 1e6 bytes, best of", REPS, "runs; 1T ratio = ours warm / tiktoken, single thread")
PY
