#!/usr/bin/env bash
# Build the tokenizer libFuzzer targets with clang (ASan + UBSan) and run each for RUNS executions
# (default 1,000,000) with no finding allowed. Usage: bash scripts/run_fuzz.sh [RUNS]
# Output dir: build-fuzz (override with BUILD=...). Crash reproducers land in $BUILD/fuzz-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
BUILD=${BUILD:-build-fuzz}
# Compiled directly with clang++ (same flags as the LLM_FUZZ=ON targets in cmake/tokenizer.cmake) so that
# this does not depend on configuring every other component with clang.
mkdir -p "$BUILD"
SRC="host/tokenizer.cpp host/tokenizer_files.cpp host/token_shard.cpp"
FLAGS="-std=c++17 -O2 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -I. -DLLM_SOURCE_DIR=\"$PWD\""
for f in fuzz_tokenizer_roundtrip fuzz_vocab_parsers; do
  clang++ $FLAGS "fuzz/$f.cpp" $SRC -o "$BUILD/$f" $(pkg-config --cflags --libs libpcre2-8) -lpthread &
done
wait
mkdir -p "$BUILD/fuzz-artifacts" "$BUILD/corpus-roundtrip" "$BUILD/corpus-vocab"
# seeds: a few texts for the round trip, the small valid vocabulary files for the parsers
printf '\x07Hello, world!\n' > "$BUILD/corpus-roundtrip/hello"
printf '\x03a<|endoftext|>b \xff\xfe caf\xc3\xa9 \xf0\x9f\x98\x80' > "$BUILD/corpus-roundtrip/mixed"
head -c 2000 data/the-verdict.txt > "$BUILD/corpus-roundtrip/verdict"
FUZZ_WRITE_SEEDS="$BUILD/corpus-vocab" "$BUILD/fuzz_vocab_parsers" || true
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_one() {  # fuzzer corpus max_len
  "$BUILD/$1" -runs="$RUNS" -max_len="$3" -artifact_prefix="$BUILD/fuzz-artifacts/$1-" -print_final_stats=1 \
      "$2" > "$BUILD/$1.log" 2>&1
}
# both fuzzers at once (one core each)
run_one fuzz_tokenizer_roundtrip "$BUILD/corpus-roundtrip" 512 & p1=$!
run_one fuzz_vocab_parsers "$BUILD/corpus-vocab" 4096 & p2=$!
status=0
for f in fuzz_tokenizer_roundtrip:$p1 fuzz_vocab_parsers:$p2; do
  name=${f%%:*}
  if wait "${f##*:}"; then
    echo "== $name: no finding"; grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^Done" "$BUILD/$name.log" || true
  else
    echo "== FINDING in $name (see $BUILD/$name.log)"; tail -40 "$BUILD/$name.log"; status=1
  fi
done
exit $status
