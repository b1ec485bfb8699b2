#!/usr/bin/env bash
# bench_all.sh — `make bench`: every CPU benchmark in dev/, one after the other, each with its own figures and a
# summary at the end (ok / FAILED per benchmark; exit 1 when one failed). Speed is only ever measured here and in
# the scripts below, never in the tests. Benchmarks that need a GPU (the dev/cuda labs' timings,
# scripts/gpu_check.sh) are not run: on the CPU layer the labs only validate.
#   bash dev/bench_all.sh            (BUILD=build by default; the benchmarks are built first)
#   BENCHES="bench_decode bench_membw" bash dev/bench_all.sh     only these
# The list is explicit: a benchmark named here whose target or script is gone fails loudly (no silent skip).
# bench_tokenizer compares with tiktoken (Python): it is reported as skipped, with the reason, without it.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ALL="bench_cpu_step bench_gemm bench_decode bench_membw cucpu_overhead bench_tokenizer"
BENCHES=${BENCHES:-$ALL}

# name -> how to run it (the .sh wrappers fix the sizes and threads their headers describe)
run_one() {
  case "$1" in
    bench_cpu_step) BUILD_DIR="$BUILD" bash dev/bench_cpu_step.sh ;;
    bench_gemm) BUILD_DIR="$BUILD" bash dev/bench_gemm.sh ;;
    bench_decode) OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" "$BUILD/bench_decode" 32 4 gpt2 fp32,bf16,int8,q4 4 ;;
    bench_membw) "$BUILD/bench_membw" 256 5 ;;
    cucpu_overhead) "$BUILD/cucpu_overhead" ;;
    bench_tokenizer) BUILD="$BUILD" bash dev/bench_tokenizer.sh ;;
    *) echo "error: unknown benchmark '$1' (known: $ALL)" >&2; return 2 ;;
  esac
}

targets=""
for b in $BENCHES; do
  case "$b" in
    bench_cpu_step | bench_gemm) ;;  # their scripts build them
    bench_decode | bench_membw | cucpu_overhead | bench_tokenizer) targets="$targets $b" ;;
    *) echo "error: unknown benchmark '$b' (known: $ALL)" >&2; exit 2 ;;
  esac
done
if [[ -n "$targets" ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null || exit 1
  cmake --build "$BUILD" -j "${JOBS:-2}" --target $targets > /dev/null || { echo "error: building$targets failed" >&2; exit 1; }
fi

summary=""
failed=0
for b in $BENCHES; do
  echo "==== $b"
  if [[ "$b" == bench_tokenizer ]] && ! python3 -c "import tiktoken" 2> /dev/null; then
    summary+="$b: skipped (needs python3 + tiktoken: pip install -r scripts/requirements-tokenizer.txt)"$'\n'
    echo "skipped: python3 + tiktoken not found"
    continue
  fi
  if run_one "$b"; then
    summary+="$b: ok"$'\n'
  else
    summary+="$b: FAILED (exit $?)"$'\n'
    failed=1
  fi
done
echo "==== summary"
printf "%s" "$summary"
exit $failed
