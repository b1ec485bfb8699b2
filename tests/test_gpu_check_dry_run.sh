#!/usr/bin/env bash
# test_gpu_check_dry_run.sh — scripts/gpu_check.sh's control flow without a GPU (GPU_CHECK_DRY_RUN=1: fake steps).
# Each scenario injects misbehaving steps (GPU_CHECK_FAKE) and checks the one summary table: every target row
# present exactly once with the expected PASS / FAIL / SKIP, the counts line, and the exit code — also when a step
# crashes before any output, times out, prints no result line, or the script is interrupted or exits mid-step.
# Also checks that the programs still print the lines the script parses (its fakes copy those formats).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
script="$root/scripts/gpu_check.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failures=0
bad() {  # the first 30 failures are printed (a broken script fails every check)
  (( failures < 30 )) && echo "FAIL [$scenario]: $*"
  failures=$((failures + 1))
}

# every row the script declares up front: fixed ones, one per kernel test source, one per dev/cuda lab
ids=(gpu setup configure build parity-fp32 parity-bf16 trainer-other train-124m-flash train-124m-cudnn train-124m-portable
     target-tok/s target-step-variation target-host-time target-other-share)
for f in "$root"/tests/kernels/test_*.cu; do f=$(basename "$f" .cu); ids+=("test-${f#test_}"); done
for f in "$root"/dev/cuda/*.cu; do ids+=("bench-$(basename "$f" .cu)"); done
ids+=(target-flash-vs-cudnn target-flash-vs-portable target-copy-bandwidth target-own-vs-cudnn complete)

# run NAME EXPECTED_EXIT [ENV=VALUE...]: one dry run into $tmp/NAME; its output is in $out
run() {
  scenario=$1; local want=$2; shift 2
  local rc=0 start=$SECONDS
  out=$(env GPU_CHECK_DRY_RUN=1 "$@" bash "$script" "$tmp/$scenario" 2>&1) || rc=$?
  [[ $rc == "$want" ]] || bad "exit $rc, wanted $want"
  (( SECONDS - start < 120 )) || bad "took $((SECONDS - start)) s (a fake step sleeps 300 s: it outlived its timeout?)"
  ! pgrep -f -- "--fake .*$tmp/$scenario/" > /dev/null || bad "a fake step outlived the script"
  local n; n=$(grep -c "gpu_check summary:" <<< "$out" || true)
  [[ $n == 1 ]] || bad "$n summary tables"
  summary=$(sed -n '/gpu_check summary:/,$p' <<< "$out")
  local id
  for id in "${ids[@]}"; do
    n=$(grep -cE "^  (PASS|FAIL|SKIP)  $id( |$)" <<< "$summary" || true)
    [[ $n == 1 ]] || bad "row $id printed $n times"
  done
  # the counts line agrees with the rows and with the exit code
  local p f s
  p=$(grep -cE '^  PASS  ' <<< "$summary" || true); f=$(grep -cE '^  FAIL  ' <<< "$summary" || true)
  s=$(grep -cE '^  SKIP  ' <<< "$summary" || true)
  grep -qF "  result: $p PASS, $f FAIL, $s SKIP -> exit $want" <<< "$summary" ||
    bad "counts line: $(grep 'result:' <<< "$summary") (rows: $p PASS, $f FAIL, $s SKIP, exit $want)"
}
# expect STATUS ID [TEXT]: the row of ID has STATUS (and contains TEXT)
expect() {
  local line; line=$(grep -E "^  [A-Z]{4}  $2( |$)" <<< "$summary" || true)
  [[ $line =~ ^\ \ $1\ \  ]] || bad "row $2: '$line', wanted $1"
  [[ -z ${3:-} || $line == *"$3"* ]] || bad "row $2: '$line' lacks '$3'"
}
fails() { grep -cE '^  FAIL  ' <<< "$summary" || true; }

run all-pass 0
expect PASS train-124m-flash "700000 tok/s (B=64"
expect PASS target-tok/s "720000 tok/s with --attention cudnn"
expect PASS target-step-variation "sd 0.00%"
expect PASS target-host-time "host time per step 0.040 ms (target <= 1 ms)"
expect PASS target-other-share "outside attention and matmuls: 10.0% (target <= 12%)"
expect PASS target-flash-vs-cudnn "80% of cuDNN"
expect PASS target-flash-vs-portable "15.0x"
expect PASS target-copy-bandwidth "memory-bound labs >= 80% of copy"
expect PASS complete
[[ $(fails) == 0 ]] || bad "$(fails) FAIL rows"

# step failures of every kind: each one a FAIL row, the run goes on to the end
run step-failures 1 GPU_CHECK_FAKE_GRAPH=0 GPU_CHECK_FAKE="parity-bf16=fail train-124m-flash=oom train-124m-cudnn=unavailable
  test-gelu=crash test-matmul=timeout test-adamw=noline bench-gelu=fail bench-flash_attention=slow
  bench-residual=slow"
expect PASS parity-fp32
expect FAIL parity-bf16 "exit 1; failed: Fake.Fails"
expect PASS train-124m-flash "B=32"                 # 64 and 48 ran out of device memory
expect SKIP train-124m-cudnn "not available"
expect SKIP target-step-variation "n/a (train_gpt2cu has no --cuda-graph)"
expect SKIP target-host-time "n/a (not printed)"
expect PASS train-124m-portable "B=32"
expect FAIL test-gelu "crashed (SIGSEGV)"
expect FAIL test-matmul "timed out"
expect FAIL test-adamw "no gtest summary line"
expect FAIL bench-gelu "v1: exit 1; v2: exit 1"
expect FAIL target-flash-vs-cudnn "8% of cuDNN"
expect FAIL target-flash-vs-portable "1.5x"
expect FAIL target-copy-bandwidth "below 80% of copy: residual bf16 8%"
expect PASS complete
[[ $(fails) == 8 ]] || bad "$(fails) FAIL rows, wanted 8"

# throughput targets missed and result lines missing
run targets-missed 1 TARGET_TOKS=800000 GPU_CHECK_FAKE="train-124m-flash=crash train-124m-cudnn=jitter
  train-124m-portable=noline"
expect FAIL train-124m-flash "crashed (SIGSEGV)"
expect PASS train-124m-cudnn "720000 tok/s"
expect FAIL train-124m-portable "no 'done: ... tok/s average' line"
expect FAIL target-tok/s "720000 tok/s with --attention cudnn (target >= 800000)"
expect FAIL target-step-variation "(target <= 3%)"
[[ $(fails) == 4 ]] || bad "$(fails) FAIL rows, wanted 4"

# a later path that does not fit at the first path's B goes on to smaller ones
run late-oom 0 GPU_CHECK_FAKE="train-124m-portable=oom"
expect PASS train-124m-cudnn "(B=64"
expect PASS train-124m-portable "(B=32"

# the fastest path ran without its CUDA graph, or spent too long on the host
run graph-off 1 GPU_CHECK_FAKE="train-124m-cudnn=nograph"
expect FAIL target-step-variation "--cuda-graph asked, but: cuda graph: off (capture failed: fake)"
run other-big 1 GPU_CHECK_FAKE="train-124m-cudnn=bigother"
expect FAIL target-other-share "outside attention and matmuls: 20.0% (target <= 12%)"
expect PASS target-step-variation "sd 0.00%"          # the profiled (slower) last step is left out
run host-slow 1 GPU_CHECK_FAKE="train-124m-cudnn=slowhost"
expect FAIL target-host-time "host time per step 2.500 ms (target <= 1 ms)"
expect PASS target-step-variation

# a build that times out: its programs are "not built" (FAIL), the rest goes on
run build-timeout 1 GPU_CHECK_FAKE="build=timeout"
expect FAIL build "timed out"
expect FAIL parity-fp32 "test_trainer_gpu not built"
expect FAIL train-124m-cudnn "train_gpt2cu not built"
expect SKIP target-tok/s "no 124M run finished"
expect FAIL test-adamw "not built"
expect FAIL bench-gelu "not built"
expect PASS complete

# a build that fails for one program (train_gpt2cu, the first target): the others run
run build-partial 1 GPU_CHECK_FAKE="build=partial"
expect FAIL build "exit 2"
expect FAIL train-124m-flash "train_gpt2cu not built"
expect PASS parity-bf16
expect PASS test-attention
expect PASS target-flash-vs-cudnn
[[ $(fails) == 4 ]] || bad "$(fails) FAIL rows, wanted 4"

# the budget runs out during the build: what it did not build is SKIP (a second call goes on), not FAIL
run budget-cut 0 BUDGET_S=60 GPU_CHECK_FAKE="build=timeout"
expect SKIP build "cut short by the budget"
expect SKIP parity-fp32 "not built (the budget ran out during the build)"
expect SKIP test-gelu "not built (the budget ran out during the build)"
expect SKIP complete "the budget ran out"
[[ $(fails) == 0 ]] || bad "$(fails) FAIL rows, wanted 0"

# only (c) and (d) selected (the second of two calls): the trainer is neither built nor run
run second-half 0 GPU_CHECK_STEPS="c d"
expect PASS build
expect SKIP parity-fp32 "not selected"
expect SKIP trainer-other "not selected"
expect SKIP target-tok/s "not selected"
expect PASS test-gelu
expect PASS target-flash-vs-cudnn
expect PASS complete

# the script itself ends in the middle of a step: the summary still comes, the rest is "not reached"
run script-exit 1 GPU_CHECK_FAKE="parity-bf16=script-exit"
expect PASS parity-fp32
expect FAIL parity-bf16 "exited early with status 3 during this step"
expect SKIP train-124m-flash "not reached"
expect FAIL complete "exited early with status 3"
[[ $(fails) == 2 ]] || bad "$(fails) FAIL rows, wanted 2"

# interrupted (SIGTERM, as from an outer `timeout`) while a step runs: the step is stopped, the summary printed
run interrupted 1 GPU_CHECK_FAKE="train-124m-cudnn=interrupt"
expect PASS train-124m-flash
expect FAIL train-124m-cudnn "interrupted by SIGTERM during this step"
expect SKIP test-gelu "not reached"
expect FAIL complete "interrupted by SIGTERM"

# Ctrl-C (SIGINT) during a kernel test
run ctrl-c 1 GPU_CHECK_FAKE="test-gelu=ctrl-c"
expect FAIL test-gelu "interrupted by SIGINT during this step"
expect SKIP test-mma "not reached"
expect FAIL complete "interrupted by SIGINT"

# not a dry run, and no GPU: exit 2 with the summary (skipped where this machine has nvidia-smi)
if ! command -v nvidia-smi > /dev/null 2>&1; then
  scenario=no-gpu
  rc=0; out=$(bash "$script" "$tmp/no-gpu" 2>&1) || rc=$?
  [[ $rc == 2 ]] || bad "exit $rc, wanted 2"
  summary=$(sed -n '/gpu_check summary:/,$p' <<< "$out")
  expect FAIL gpu "no GPU: nvidia-smi not found"
  expect SKIP setup "not reached"
  grep -qF "result: 0 PASS, 1 FAIL," <<< "$summary" || bad "counts: $(grep 'result:' <<< "$summary")"
fi

# the lines the script parses (and its fakes imitate) are still what the programs print
scenario=formats
grep -qF '"done: %lld steps in %s, %.0f tok/s average' "$root/host/train_loop.cpp" || bad "train_loop.cpp: done line"
grep -qF '"step %5lld/%lld | loss %.4f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s' "$root/host/progress.cpp" ||
  bad "progress.cpp: step line"
grep -qF '"  %-24s block %4d | %8.4f ms | ' "$root/dev/cuda/common.cuh" || bad "common.cuh: print_timing line"
grep -rqF 'out of device memory' "$root/gpu" || bad "gpu/: the out-of-memory message"
if grep -qF -- '--cuda-graph' "$root/train_gpt2.cu"; then  # the graph status line "cuda graph: on: ... | host <x> ms"
  grep -rqF '"cuda graph: ' "$root/gpu" || bad "gpu/: the 'cuda graph: ' status line"
  grep -rqF ' ms per step' "$root/gpu" || bad "gpu/: the host time 'host <x> ms per step'"
  grep -qF -- '--profile-step' "$root/train_gpt2.cu" || bad "train_gpt2.cu: --profile-step"
  grep -rqF '"step profile (step ' "$root/gpu" || bad "gpu/: the 'step profile (step N' line"
  grep -qF '"matmul %.1f%% | attention %.1f%% | other %.1f%% of %.3f ms"' "$root/kernels/step_profile.cuh" ||
    bad "step_profile.cuh: the 'other <x>%' split"
fi

if (( failures )); then echo "gpu_check dry run: $failures failures"; exit 1; fi
echo "gpu_check dry run: all scenarios ok"
