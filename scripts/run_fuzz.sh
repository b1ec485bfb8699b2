#!/usr/bin/env bash
# Fuzz campaign (issue 13): build every libFuzzer target with clang (ASan + UBSan, UB fatal) and run each for
# RUNS executions (default 1,000,000), two targets at a time (one per core). Any crash, sanitizer report, leak,
# timeout, out-of-memory or exception other than llm::Error is a finding; the script exits 1 on any finding.
#   usage: bash scripts/run_fuzz.sh [RUNS] [TARGET...]     (TARGET: e.g. fuzz_checkpoint; default all)
#   env:   BUILD (default build-fuzz), JOBS (compile jobs, default 2), PAR (fuzzers at once, default 2)
# Targets (fuzz/*.cpp; the same ones CMake builds with -DLLM_FUZZ=ON):
#   fuzz_checkpoint           model files: llm.c .bin (fp32/bf16, CRC-32C) via load_checkpoint / load_model
#   fuzz_train_state          training-state files + the saved resume settings they carry
#   fuzz_token_shard          token shards: read_token_shard* and the trainers' DataLoader
#   fuzz_safetensors          model.safetensors + the HF GPT-2 tensor mapping
#   fuzz_hf_config            HF config.json (parse_hf_config)
#   fuzz_vocab_parsers        encoder.json / vocab.bpe / gpt2_tokenizer.bin
#   fuzz_tokenizer_roundtrip  encode/decode round trip
#   fuzz_cli                  train / eval command lines (+ resume-settings round trip)
# Seeds: valid small files written by each target itself (FUZZ_WRITE_SEEDS, with the project's writers, CRCs
# correct); the model/state targets can also re-patch the CRC after mutation (mode bit), so the code behind the
# checksum is fuzzed too. Reproducers land in $BUILD/fuzz-artifacts/, logs in $BUILD/<target>.log, the grown
# corpora in $BUILD/corpus-<target>/ (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
shift || true
BUILD=${BUILD:-build-fuzz}
JOBS=${JOBS:-2}
PAR=${PAR:-2}
ALL="fuzz_checkpoint fuzz_train_state fuzz_token_shard fuzz_safetensors fuzz_hf_config fuzz_vocab_parsers
     fuzz_tokenizer_roundtrip fuzz_cli"
TARGETS=${*:-$ALL}
CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || CXX=clang++

# ---- build: the host sources once into an instrumented archive, then one link per target (JOBS at a time).
# Compiled directly with clang (same flags as the LLM_FUZZ=ON targets in cmake/) so that this does not depend on
# configuring every other component with clang.
HOST="binary_io checkpoint cli crc32c data_loader error gpt2_config hf_gpt2 memory safetensors token_shard
      tokenizer tokenizer_files train_state weights_check"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CXXFLAGS="-std=c++17 -O2 -g -fno-omit-frame-pointer $SAN -I. -DLLM_SOURCE_DIR=\"$PWD\" $(pkg-config --cflags libpcre2-8)"
LIBS="$(pkg-config --libs libpcre2-8) -lpthread"
mkdir -p "$BUILD/obj"
export CXX CXXFLAGS BUILD LIBS
compile() {  # host/<name>.cpp -> $BUILD/obj/<name>.o when out of date (source or any header newer)
  local o="$BUILD/obj/$1.o"
  if [[ -f $o && -z $(find "host/$1.cpp" host fuzz -name '*.h' -newer "$o" -o -name "$1.cpp" -newer "$o" | head -1) ]]; then
    return 0
  fi
  $CXX $CXXFLAGS -fsanitize=fuzzer-no-link -c "host/$1.cpp" -o "$o"
}
link() {  # fuzz/<target>.cpp + the archive -> $BUILD/<target>
  local t="$BUILD/$1"
  if [[ -f $t && -z $(find "fuzz/$1.cpp" fuzz host -name '*.h' -newer "$t" -o -name "$1.cpp" -newer "$t" \
                          -o -name libhost.a -newer "$t" | head -1) ]]; then
    return 0
  fi
  $CXX $CXXFLAGS -fsanitize=fuzzer "fuzz/$1.cpp" "$BUILD/libhost.a" $LIBS -o "$t"
}
export -f compile link
echo "== building (clang: $($CXX --version | head -1); $JOBS jobs)"
printf '%s\n' $HOST | xargs -P "$JOBS" -I{} bash -c 'compile {}'
objs=""
for h in $HOST; do objs="$objs $BUILD/obj/$h.o"; done
if [[ ! -f $BUILD/libhost.a || -n $(find $objs -newer "$BUILD/libhost.a" | head -1) ]]; then
  rm -f "$BUILD/libhost.a" && ar rcs "$BUILD/libhost.a" $objs
fi
printf '%s\n' $TARGETS | xargs -P "$JOBS" -I{} bash -c 'link {}'

# ---- seeds
mkdir -p "$BUILD/fuzz-artifacts"
for t in $TARGETS; do
  c="$BUILD/corpus-$t"
  mkdir -p "$c"
  case $t in
    fuzz_tokenizer_roundtrip)
      printf '\x07Hello, world!\n' > "$c/hello"
      printf '\x03a<|endoftext|>b \xff\xfe caf\xc3\xa9 \xf0\x9f\x98\x80' > "$c/mixed"
      head -c 2000 data/the-verdict.txt > "$c/verdict" ;;
    fuzz_safetensors) cp fuzz/corpus_safetensors/* "$c/" ;;
    *) FUZZ_WRITE_SEEDS="$c" "$BUILD/$t" >/dev/null 2>&1 || { echo "seed writer of $t failed"; exit 1; } ;;
  esac
done

# ---- run, PAR at a time
max_len() {
  case $1 in
    fuzz_checkpoint|fuzz_train_state|fuzz_safetensors|fuzz_vocab_parsers) echo 4096 ;;
    fuzz_token_shard) echo 2048 ;;
    fuzz_hf_config) echo 1024 ;;
    *) echo 512 ;;
  esac
}
run_one() {  # target
  local t=$1 start end rc=0
  rm -f "$BUILD/fuzz-artifacts/$t-"* "$BUILD/$t.result"
  start=$(date +%s.%N)
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$BUILD/$t" -runs="$RUNS" -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=4096 \
      -artifact_prefix="$BUILD/fuzz-artifacts/$t-" -print_final_stats=1 "$BUILD/corpus-$t" > "$BUILD/$t.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  echo "$rc $start $end" > "$BUILD/$t.result"
}
export -f run_one max_len
export RUNS
echo "== running $RUNS executions per target, $PAR at a time"
printf '%s\n' $TARGETS | xargs -P "$PAR" -I{} bash -c 'run_one {}'

# ---- summary
status=0
printf '%-26s %12s %10s %9s %9s\n' target executions exec/s time_s findings
for t in $TARGETS; do
  if [[ ! -f $BUILD/$t.result ]]; then echo "$t: did not run"; status=1; continue; fi
  read -r rc start end < "$BUILD/$t.result"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$BUILD/$t.log" | awk '{print $2}' | tail -1)
  execs=${execs:-0}
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
  rate=$(awk -v n="$execs" -v s="$secs" 'BEGIN{printf "%.0f", (s > 0 ? n / s : 0)}')
  findings=$(find "$BUILD/fuzz-artifacts" -name "$t-*" | wc -l)
  if [[ $rc -ne 0 && $findings -eq 0 ]]; then findings=1; fi
  if [[ $execs -lt $RUNS && $findings -eq 0 ]]; then findings=1; fi  # stopped early without a reproducer
  printf '%-26s %12s %10s %9s %9s\n' "$t" "$execs" "$rate" "$secs" "$findings"
  if [[ $findings -ne 0 ]]; then
    status=1
    echo "   FINDING in $t (rc $rc; log $BUILD/$t.log):"
    grep -m1 -E "ERROR: |runtime error|deadly signal|SUMMARY" "$BUILD/$t.log" | sed 's/^/   /' || true
    find "$BUILD/fuzz-artifacts" -name "$t-*" | sed 's/^/   reproducer: /'
  fi
done
exit $status
