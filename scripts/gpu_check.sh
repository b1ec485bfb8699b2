#!/usr/bin/env bash
# gpu_check.sh — the one GPU check, written for a fresh, bare machine with one NVIDIA GPU (H100/H200, 16 cores,
# about 12 minutes), in this order:
#   0. scripts/setup.sh (the README's setup), a real-CUDA build for this GPU (-DLLM_GPU_BUILD=ON, one arch)
#   a. trainer parity on the GPU: the fp32, the bf16 and the other tests of test_trainer_gpu (nvcc build of
#      tests/test_trainer_parity.cu)
#   b. GPT-2 124M bf16 training throughput (tok/s) with each --attention path, and the step targets of issue 16
#   c. every kernel test on the GPU (the GoogleTest sources the CPU layer runs in CI)
#   d. every dev/cuda lab version at GPT-2 124M shapes, and the attention targets from their timings
# Only the targets a step runs are built, each build and each run under its own `timeout`; no step starts when
# the budget (BUDGET_S, default 560 s: one call fits a 10-minute command) is spent, and every step ends 10 s before
# it. ONE summary table is printed last in every case — a trap on EXIT prints it after a crash, a timeout or an
# interrupt too: one PASS / FAIL / SKIP line per target.
# Exit: 0 no FAIL, 1 at least one FAIL (missed targets included), 2 no GPU or no nvcc (nothing was run).
# Usage: timeout 600 scripts/gpu_check.sh [build-dir]       (default build-gpu; logs in <build-dir>/gpu_check_logs)
#   A second call reuses the build dir (setup and builds are then done in seconds); to split the check over two
#   calls: GPU_CHECK_STEPS="a b" scripts/gpu_check.sh, then GPU_CHECK_STEPS="c d" scripts/gpu_check.sh.
#   env: BUDGET_S=560  GPU_CHECK_STEPS="a b c d"  JOBS=$(nproc)  CUDA_ARCH (from nvidia-smi)  SKIP_SETUP=1
#        TRAIN_BS="64 48 32 16 8" (124M micro-batch sizes, the first that fits)  TRAIN_STEPS=20  TARGET_TOKS=600000
# Dry run (CI, tests/test_gpu_check_dry_run.sh): GPU_CHECK_DRY_RUN=1 walks the same control flow with fake steps
# (no GPU, no nvcc, nothing built; give a new build dir or none); GPU_CHECK_FAKE="<row>=<how> ..." makes a step
# pass (default), fail, time out, crash before any output, print no result line (noline), and more: see
# fake_program below; GPU_CHECK_FAKE_GRAPH=0: a trainer without --cuda-graph.
set -uo pipefail  # no -e: every step's status is checked where it runs, and nothing may stop the summary
cd "$(dirname "$0")/.." || exit 2
SELF="$PWD/scripts/gpu_check.sh"
DRY=${GPU_CHECK_DRY_RUN:-0}

# ---- the summary table: every target is a row from the start ("not reached" until its step sets it) --------------
declare -a ORDER=()
declare -A RES=() INFO=()
target() { ORDER+=("$1"); RES[$1]=SKIP; INFO[$1]="not reached"; }
row() { [[ -n ${RES[$1]+x} ]] || ORDER+=("$1"); RES[$1]=$2; INFO[$1]=$3; }  # ID PASS|FAIL|SKIP DETAIL

elapsed() { echo $(( $(date +%s) - START )); }

print_summary() {
  local id n_pass=0 n_fail=0 n_skip=0 code=0
  echo
  echo "==================== gpu_check summary: $GPU_NAME ($(elapsed)s of ${BUDGET_S}s; logs $LOGS) ===================="
  for id in "${ORDER[@]/complete/}" complete; do  # "complete" last (kernel tests found late come after it in ORDER)
    [[ -n $id ]] || continue
    printf "  %-4s  %-28s %s\n" "${RES[$id]}" "$id" "${INFO[$id]}"
    case ${RES[$id]} in PASS) n_pass=$(( n_pass + 1 )) ;; FAIL) n_fail=$(( n_fail + 1 )) ;; *) n_skip=$(( n_skip + 1 )) ;; esac
  done
  (( n_fail > 0 )) && code=1
  (( NO_GPU )) && code=2
  echo "  result: $n_pass PASS, $n_fail FAIL, $n_skip SKIP -> exit $code"
  return $code
}
on_exit() {  # runs on every exit: the end of the script, an error exit, or a signal (via on_signal)
  local rc=$?
  trap - EXIT INT TERM
  stop_child
  if (( ! FINISHED )); then
    [[ -z $REASON ]] && REASON="the script exited early with status $rc"
    [[ -n $CURRENT ]] && row "$CURRENT" FAIL "$REASON during this step"
    (( NO_GPU )) || row complete FAIL "$REASON after $(elapsed)s${CURRENT:+ (in $CURRENT)}"
  fi
  print_summary
  exit $?
}
stop_child() {  # the running step: TERM (timeout passes it on to its process group), KILL after 10 s
  [[ -n $CHILD ]] || return
  local i
  kill -TERM "$CHILD" 2>/dev/null
  for (( i = 0; i < 20; i++ )); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$CHILD" 2>/dev/null  # timeout leads its own process group
  wait "$CHILD" 2>/dev/null
  CHILD=""
}
on_signal() { REASON="interrupted by SIG$1"; exit 1; }

# ---- running one step -----------------------------------------------------------------------------------------
left() { echo $(( BUDGET_S - $(elapsed) )); }
step_limit() {  # MAX -> MAX or what the budget leaves (minus 10 s for the summary); 0 when under 20 s are left
  local l=$(( $(left) - 10 )); (( l > $1 )) && l=$1; (( l < 20 )) && l=0; echo "$l"
}
# run_step KIND ID LIMIT LOG CMD...: CMD under `timeout LIMIT`, all output to LOG; sets RC (124 / 137: timed out).
# It runs in the background so that a signal reaches the trap at once (the trap then stops it).
# In the dry run CMD is handed to fake_program (limits of 3 s), or the script exits here (how=script-exit).
run_step() {
  local kind=$1 id=$2 lim=$3 log=$4; shift 4
  CURRENT=$id
  if (( lim < 1 )); then RC=125; echo "not started: the budget is spent" > "$log"; return; fi
  if [[ $DRY == 1 ]]; then
    local how; how=$(fake_behaviour "$id")
    [[ $how == script-exit ]] && exit 3  # stands for a bug in this script
    (( lim > 3 )) && lim=3
    set -- bash "$SELF" --fake "$kind" "$how" "$@"
  fi
  timeout -k 5 "$lim" "$@" > "$log" 2>&1 &
  CHILD=$!
  wait "$CHILD"
  RC=$?
  CHILD=""
  echo "  [$(elapsed)s] $id: $(rc_text "$RC") ($log)"
}
rc_text() {  # exit status -> words
  case $1 in
    0) echo "ok" ;;
    124) echo "timed out" ;;
    125) echo "not started (budget spent)" ;;
    137) echo "killed (SIGKILL: after its timeout, or out of memory)" ;;
    *) if (( $1 > 128 )); then echo "crashed (SIG$(kill -l $(( $1 - 128 )) 2>/dev/null || echo $(( $1 - 128 ))))"
       else echo "exit $1"; fi ;;
  esac
}
last_error() {  # LOG -> its first error line, shortened
  { grep -m1 -E "error:|FAILED" "$1" || grep -m1 -E "Error|error" "$1"; } 2>/dev/null | sed -E 's/^ +//' | cut -c1-100
}
# status row of a step judged by its exit status alone (setup, configure, builds)
rc_row() {  # ID LOG WHAT
  if (( RC == 0 )); then row "$1" PASS "$3: ok after $(elapsed)s"
  else row "$1" FAIL "$3: $(rc_text "$RC") $(last_error "$2")"; fi
}

# ---- 0. preconditions, setup, configure, build ----------------------------------------------------------------
preconditions() {
  if [[ $DRY == 1 ]]; then GPU_NAME="dry run (fake steps)"; row gpu PASS "dry run: no GPU needed"; return; fi
  [[ -x /usr/local/cuda/bin/nvcc ]] && PATH="$PATH:/usr/local/cuda/bin"
  local cap
  command -v nvidia-smi > /dev/null 2>&1 || { NO_GPU=1; row gpu FAIL "no GPU: nvidia-smi not found"; exit 2; }
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
  [[ -n $GPU_NAME ]] || { NO_GPU=1; GPU_NAME="(no GPU found)"; row gpu FAIL "no GPU: nvidia-smi lists no device"; exit 2; }
  NVCC=$(command -v nvcc) || { NO_GPU=1; row gpu FAIL "nvcc not found (install the CUDA toolkit)"; exit 2; }
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
  CUDA_ARCH=${CUDA_ARCH:-${cap:-90}}
  row gpu PASS "$GPU_NAME, sm_$CUDA_ARCH, $(nvcc --version | grep -oE 'release [0-9.]+')"
}
setup() {
  [[ ${SKIP_SETUP:-0} == 1 ]] && { row setup SKIP "SKIP_SETUP=1"; return; }
  run_step setup setup "$(step_limit 300)" "$LOGS/setup.log" bash scripts/setup.sh
  rc_row setup "$LOGS/setup.log" "scripts/setup.sh"
}
cudnn_frontend_args() {  # FE_ARGS: the dev attention lab's cuDNN SDPA needs cudnn_frontend.h (setup.sh: the wheel)
  local purelib=${CUDNN_FRONTEND_HOME:-}
  [[ -z $purelib ]] && purelib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
  FE_ARGS=()
  [[ -n $purelib && -f $purelib/include/cudnn_frontend.h ]] && FE_ARGS=(-DLLM_CUDNN_FRONTEND_INCLUDE="$purelib/include")
}
configure() {  # [extra cmake args]
  cudnn_frontend_args
  run_step configure configure "$(step_limit 120)" "$LOGS/configure.log" cmake -S . -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release -DLLM_GPU_BUILD=ON ${NVCC:+-DCMAKE_CUDA_COMPILER="$NVCC"} -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" \
    -DLLM_CUDA_ARCHS="${CUDA_ARCH:-90}" "${FE_ARGS[@]}" "$@"
  rc_row configure "$LOGS/configure.log" "cmake -DLLM_GPU_BUILD=ON (sm_${CUDA_ARCH:-90})"
}
build() {  # MAX_S TARGET...: one parallel build, keeping going past a failing target (row "build")
  local max=$1; shift
  local lim; lim=$(step_limit "$max")
  (( lim )) || { BUDGET_CUT=1; row build SKIP "budget spent"; return; }
  run_step build build "$lim" "$LOGS/build.log" cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target "$@" -- -k
  if (( RC == 124 || RC == 137 )) && (( lim < max )); then
    BUDGET_CUT=1; row build SKIP "cut short by the budget after ${lim}s (a second call goes on building): $*"
  else rc_row build "$LOGS/build.log" "$*"; fi
}
# One build of every selected section's programs: the trainer's long nvcc compiles and the many small kernel-test
# and lab compiles share the cores. When only the dev attention lab failed: once more without its cuDNN version.
build_selected() {
  local -a targets=()
  if selected a || selected b; then targets+=(train_gpt2cu test_trainer_gpu); fi
  if selected c || selected d; then targets+=(gpu_all); fi
  (( ${#targets[@]} )) || { not_selected build; return; }
  echo "== build: ${targets[*]}"
  build 480 "${targets[@]}"
  if [[ " ${targets[*]} " == *" gpu_all "* && ! -x $BUILD/gpu_dev_attention ]] &&
     grep -q '^attention ' "$BUILD/gpu_dev_versions.txt" 2>/dev/null && (( ! BUDGET_CUT )); then
    echo "   gpu_dev_attention did not build; once more without the cuDNN version (-DLLM_DEV_CUDNN=OFF)"
    configure -DLLM_DEV_CUDNN=OFF
    build 120 gpu_dev_attention
    [[ ${RES[build]} == PASS ]] && row build FAIL "the first build failed; gpu_dev_attention built only without cuDNN"
  fi
}
missing() {  # ID PROGRAM: the row of a step whose program is not there (SKIP when the budget stopped its build)
  if (( BUDGET_CUT )); then row "$1" SKIP "$2 not built (the budget ran out during the build)"
  else row "$1" FAIL "$2 not built"; fi
}

# ---- a. trainer parity on the GPU -----------------------------------------------------------------------------
gtest_row() {  # ID LOG: PASS when gtest ran tests, exited 0 and printed its PASSED summary
  local passed failed skipped
  passed=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\..*/\1/p' "$2" | tail -n1)
  skipped=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) tests?,.*/\1/p' "$2" | tail -n1)
  failed=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$2" | grep -v ' listed below' | sed -E 's/^\[  FAILED  \] ([^ ]+).*/\1/' | sort -u | head -n 3 | tr '\n' ' ')
  if (( RC == 0 )) && [[ -n $passed ]] && (( passed > 0 )); then row "$1" PASS "$passed tests passed${skipped:+, $skipped skipped}"
  elif (( RC == 0 )) && [[ -n $passed ]]; then row "$1" FAIL "no test ran (filter matched nothing)"
  elif (( RC == 0 )); then row "$1" FAIL "exit 0 but no gtest summary line"
  else row "$1" FAIL "$(rc_text "$RC")${failed:+; failed: $failed}${passed:+; $passed passed}"; fi
}
section_parity() {  # test_trainer_gpu in three runs: the fp32 tests, the bf16 tests, the rest (program, graphs, ...)
  local part id lim
  for part in "parity-fp32|*Fp32*" "parity-bf16|*Bf16*" "trainer-other|-*Fp32*:*Bf16*"; do
    id=${part%%|*}
    [[ -x $BUILD/test_trainer_gpu ]] || { missing "$id" test_trainer_gpu; continue; }
    lim=$(step_limit 180); (( lim )) || { row "$id" SKIP "budget spent"; continue; }
    run_step gtest "$id" "$lim" "$LOGS/$id.log" "$BUILD/test_trainer_gpu" --gtest_brief=1 --gtest_filter="${part#*|}"
    gtest_row "$id" "$LOGS/$id.log"
  done
}

# ---- b. GPT-2 124M throughput per attention path + the issue-16 step targets --------------------------------------
# Lines read from train_gpt2cu (host/train_loop.cpp, host/progress.cpp):
#   "step    N/M | loss ... | <ms> ms | <tok/s> tok/s | ..."   "done: M steps in 3s, <tok/s> tok/s average (...)"
# and, where the trainer prints them (issue 16; the row says "n/a (not printed)" where it does not):
#   "cuda graph: on: ... | host <x> ms per step (...)" (gpu/train_model.cuh; "cuda graph: off (<why>)" without it)
#   the share of the step outside attention and the linear-layer matmuls: "step profile (step N, eager): matmul
#   ..% | attention ..% | other <x>% of .. ms" (--profile-step N, kernels/step_profile.cuh; N = the last step, which
#   runs eagerly and waits, so the step variation leaves it out)
make_shard() {  # llm.c token shard: 256 int32 header (magic 20240520, version 1, count), uint16 tokens < 50257
  local n=$(( 64 * 1024 * (TRAIN_STEPS + 2) + 1 ))
  SHARD="$BUILD/gpu_check_tokens.bin"
  [[ $DRY == 1 ]] && { : > "$SHARD"; return; }
  perl -e 'my $n = shift; srand(1); print pack("l<256", 20240520, 1, $n, (0) x 253);
           print pack("S<*", map { int(rand(50257)) } 1 .. $n);' "$n" > "$SHARD"
}
train_run() {  # PATH B LIMIT: one 124M bf16 run (with the CUDA graph where the trainer has it)
  run_step train "train-124m-$1" "$3" "$LOGS/train_124m_$1_b$2.log" "$BUILD/train_gpt2cu" train --preset d12 \
    -i "$SHARD" -j '' -b "$2" -t 1024 -x "$TRAIN_STEPS" -v 0 -s 0 --precision bf16 -l 6e-4 --attention "$1" \
    "${GRAPH_ARGS[@]}" "${PROFILE_ARGS[@]}"
  TRAIN_LOG="$LOGS/train_124m_$1_b$2.log"
}
toks_of() { sed -nE 's/^done: .* ([0-9]+) tok\/s average.*/\1/p' "$1" | tail -n1; }
train_path() {  # PATH: B = the first of TRAIN_BS that fits in device memory, from the first finished run's B on
  local path=$1 id=train-124m-$1 b lim toks
  for b in $TRAIN_BS; do
    [[ -n $B_USED ]] && (( b > B_USED )) && continue
    lim=$(step_limit 150); (( lim )) || { row "$id" SKIP "budget spent"; return; }
    train_run "$path" "$b" "$lim"
    (( RC != 0 )) && grep -qiE "out of (device )?memory" "$TRAIN_LOG" && { echo "   B=$b does not fit"; continue; }
    break
  done
  toks=$(toks_of "$TRAIN_LOG")
  if (( RC == 0 )) && [[ -n $toks ]]; then
    B_USED=${B_USED:-$b}; TOKS[$path]=$toks; PATH_LOG[$path]=$TRAIN_LOG
    row "$id" PASS "$toks tok/s (B=$b T=1024, $TRAIN_STEPS steps)"
  elif (( RC == 2 )) && grep -q "^error: --attention" "$TRAIN_LOG"; then
    row "$id" SKIP "not available: $(grep -m1 '^error: ' "$TRAIN_LOG" | cut -c8-100)"
  elif (( RC == 0 )); then row "$id" FAIL "exit 0 but no 'done: ... tok/s average' line"
  else row "$id" FAIL "$(rc_text "$RC") $(last_error "$TRAIN_LOG")"; fi
}
step_variation() {  # LOG -> relative standard deviation (%) of the step times, steps 3.. (1: warm-up, 2: capture)
  local prof  # the --profile-step step ran eagerly and waited: not a graphed step
  prof=$(grep -oE 'step profile \(step [0-9]+' "$1" | grep -oE '[0-9]+$' | tail -n1)
  sed -nE 's/^step +([0-9]+)\/[0-9]+ \|.* \| ([0-9.]+) ms \|.*/\1 \2/p' "$1" |
    awk -v p="${prof:-0}" '$1 >= 3 && $1 != p { n++; s += $2; q += $2 * $2 }
    END { if (n >= 3) { m = s / n; v = q / n - m * m; if (v < 0) v = 0; printf "%.2f %d %.1f\n", 100 * sqrt(v) / m, n, m } }'
}
threshold_row() {  # ID VALUE MAX WHAT UNIT: PASS when VALUE <= MAX
  if awk -v v="$2" -v m="$3" 'BEGIN { exit !(v + 0 <= m + 0) }'; then row "$1" PASS "$4 $2$5 (target <= $3$5)"
  else row "$1" FAIL "$4 $2$5 (target <= $3$5)"; fi
}
step_targets() {  # the targets read from the fastest path's run
  local best="" p v n m host other
  for p in "${!TOKS[@]}"; do [[ -z $best ]] || (( TOKS[$p] > TOKS[$best] )) && best=$p; done
  if [[ -z $best ]]; then
    for p in target-tok/s target-step-variation target-host-time target-other-share; do row $p SKIP "no 124M run finished"; done
    return
  fi
  local log=${PATH_LOG[$best]}
  if (( TOKS[$best] >= TARGET_TOKS )); then row target-tok/s PASS "${TOKS[$best]} tok/s with --attention $best (target >= $TARGET_TOKS)"
  else row target-tok/s FAIL "${TOKS[$best]} tok/s with --attention $best (target >= $TARGET_TOKS)"; fi
  v=$(step_variation "$log")
  if (( ${#GRAPH_ARGS[@]} == 0 )); then row target-step-variation SKIP "n/a (train_gpt2cu has no --cuda-graph)"
  elif grep -q "cuda graph: off" "$log"; then
    row target-step-variation FAIL "--cuda-graph asked, but: $(grep -m1 -oE 'cuda graph: off.*' "$log" | cut -c1-80)"
  elif [[ -z $v ]]; then row target-step-variation FAIL "fewer than 3 step lines after step 2 in $log"
  else read -r v n m <<< "$v"; threshold_row target-step-variation "$v" 3 "steps 3..: mean $m ms, sd" "%"; fi
  host=$(grep -oE 'host [0-9.]+ ms' "$log" | tail -n1 | grep -oE '[0-9.]+')
  if [[ -z $host ]]; then row target-host-time SKIP "n/a (not printed)"
  else threshold_row target-host-time "$host" 1 "host time per step" " ms"; fi
  other=$(grep -oE 'other [0-9.]+%' "$log" | tail -n1 | grep -oE '[0-9.]+')
  if [[ -z $other ]]; then row target-other-share SKIP "n/a (not printed)"
  else threshold_row target-other-share "$other" 12 "outside attention and matmuls:" "%"; fi
}
section_train() {
  local path
  declare -gA TOKS=() PATH_LOG=()
  B_USED=""
  GRAPH_ARGS=()
  [[ -x $BUILD/train_gpt2cu ]] || { for path in flash cudnn portable; do missing "train-124m-$path" train_gpt2cu; done; step_targets; return; }
  if [[ $DRY != 1 ]] && timeout 30 "$BUILD/train_gpt2cu" train --help 2>&1 | grep -q -- '--cuda-graph'; then GRAPH_ARGS=(--cuda-graph); fi
  [[ $DRY == 1 && ${GPU_CHECK_FAKE_GRAPH:-1} == 1 ]] && GRAPH_ARGS=(--cuda-graph)
  PROFILE_ARGS=()
  if [[ $DRY != 1 ]] && timeout 30 "$BUILD/train_gpt2cu" train --help 2>&1 | grep -q -- '--profile-step'; then
    PROFILE_ARGS=(--profile-step "$TRAIN_STEPS")
  fi
  [[ $DRY == 1 ]] && PROFILE_ARGS=(--profile-step "$TRAIN_STEPS")
  make_shard
  for path in flash cudnn portable; do train_path "$path"; done
  step_targets
}

# ---- c. kernel tests on the GPU ---------------------------------------------------------------------------------
section_kernel_tests() {
  local exe id lim
  for exe in "$BUILD"/gpu_test_*; do [[ -x $exe ]] && [[ -z ${RES[test-${exe##*/gpu_test_}]+x} ]] && target "test-${exe##*/gpu_test_}"; done
  for id in "${ORDER[@]}"; do
    [[ $id == test-* ]] || continue
    exe="$BUILD/gpu_test_${id#test-}"
    [[ -x $exe ]] || { missing "$id" "gpu_test_${id#test-}"; continue; }
    lim=$(step_limit 120); (( lim )) || { row "$id" SKIP "budget spent"; continue; }
    run_step gtest "$id" "$lim" "$LOGS/$id.log" "$exe" --gtest_brief=1
    gtest_row "$id" "$LOGS/$id.log"
  done
}

# ---- d. kernel benchmarks + the attention targets ------------------------------------------------------------------
bench_op() {  # OP VERSIONS(1,2,..): every version under its own timeout; one row for the op
  local op=$1 v lim bad="" ran="" notrun=""
  for v in ${2//,/ }; do
    lim=$(step_limit 120); (( lim )) || { notrun+="v$v "; continue; }
    run_step bench "bench-$op" "$lim" "$LOGS/bench_${op}_v$v.log" "$BUILD/gpu_dev_$op" "$v"
    sed "s/^/$op|$v|/" "$LOGS/bench_${op}_v$v.log" >> "$LOGS/bench_all.log"
    if (( RC == 0 )) && grep -q ' block .* ms' "$LOGS/bench_${op}_v$v.log"; then ran+="v$v "
    elif (( RC == 0 )) && grep -q 'skipped' "$LOGS/bench_${op}_v$v.log"; then ran+="v$v(skipped) "
    elif (( RC == 0 )); then bad+="v$v: no timing line; "
    else bad+="v$v: $(rc_text "$RC"); "; fi
  done
  if [[ -n $bad ]]; then row "bench-$op" FAIL "$bad${ran:+ok: $ran}"
  elif [[ -n $notrun ]]; then row "bench-$op" SKIP "budget spent before ${notrun}${ran:+(ok: $ran)}"
  else row "bench-$op" PASS "${ran% } ok"; fi
}
# The fastest block per (op, version, precision, what) from print_timing lines ("  <what> block <n> | <ms> ms | ...";
# the precision comes from the lab's header line), printed as a table; then one "ROW <id> <status> <detail>" per
# target: flash attention (dev flash_attention v2) >= 60% of cuDNN SDPA's throughput (dev attention v3) and >= 8x
# the portable kernel (flash_attention v1), fwd+bwd bf16; the own kernel (attention v2) <= 1.5x cuDNN's time; the
# memory-bound kernels (lines without a FLOP count): per lab and precision, the fastest version >= 80% of the copy
# bandwidth the lab measured in the same run (issue 16 item 2).
bench_tables() {
  awk -F'|' '
    function trim(s) { gsub(/^ +| +$/, "", s); return s }
    function target(id, ok, have, detail) {
      if (!have) printf "ROW %s SKIP %s\n", id, "no timing (lab not run or version skipped)"
      else printf "ROW %s %s %s\n", id, ok ? "PASS" : "FAIL", detail
    }
    {
      op = $1; v = $2; line = $0; sub(/^[^|]*\|[^|]*\|/, "", line)
      if (match(line, /(fp32|bf16)/) && line !~ / block /) prec[op "|" v] = substr(line, RSTART, RLENGTH)
      if (line ~ / block +[0-9]+ \| +[0-9.]+ ms/) {
        n = split(line, f, "|"); head = trim(f[1]); ms = trim(f[2]); sub(/ ms/, "", ms)
        what = head; sub(/ +block +[0-9]+$/, "", what); blk = head; sub(/.* block +/, "", blk)
        key = op "|" v "|" prec[op "|" v] "|" what
        if (!(key in best) || ms + 0 < best[key] + 0) {
          best[key] = ms
          row[key] = sprintf("%-16s v%-2s %-5s %-24s %6s %10.4f  %s%s", op, v, prec[op "|" v], what, blk, ms, trim(f[3]),
                             n >= 4 ? "  " trim(f[4]) : "")
        }
        if (what ~ /^attention (fwd|bwd)/) att[v "|" prec[op "|" v] "|" what] = best[key]
        if (n < 4 && match(f[3], /[0-9.]+% of copy/)) {  # no FLOP count: a memory-bound kernel
          pct = substr(f[3], RSTART, RLENGTH) + 0; lab = op " " prec[op "|" v]
          if (!(lab in copy) || pct > copy[lab]) copy[lab] = pct
        }
      }
    }
    END {
      printf "  %-16s %-3s %-5s %-24s %6s %10s  %s\n", "lab", "v", "prec", "what", "block", "ms", "bandwidth"
      m = 0; for (k in row) keys[++m] = k
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (keys[j] < keys[i]) { t = keys[i]; keys[i] = keys[j]; keys[j] = t }
      for (i = 1; i <= m; i++) print "  " row[keys[i]]
      fl = att["2|bf16|attention fwd flash"] + att["2|bf16|attention bwd flash"]
      pt = att["1|bf16|attention fwd portable"] + att["1|bf16|attention bwd portable"]
      cd = att["3|bf16|attention fwd cudnn"] + att["3|bf16|attention bwd cudnn"]
      ow = att["2|bf16|attention fwd"] + att["2|bf16|attention bwd"]
      target("target-flash-vs-cudnn", fl > 0 && cd / fl >= 0.6, fl > 0 && cd > 0,
             sprintf("flash %.3f ms vs cuDNN %.3f ms fwd+bwd bf16 = %.0f%% of cuDNN (target >= 60%%)", fl, cd, fl > 0 ? 100 * cd / fl : 0))
      target("target-flash-vs-portable", fl > 0 && pt / fl >= 8, fl > 0 && pt > 0,
             sprintf("flash %.3f ms vs portable %.3f ms = %.1fx (target >= 8x)", fl, pt, fl > 0 ? pt / fl : 0))
      nc = 0; below = ""; for (lab in copy) { nc++; if (copy[lab] < 80) below = below sprintf(" %s %.0f%%", lab, copy[lab]) }
      detail = sprintf("the fastest version of each of %d memory-bound labs >= 80%% of copy", nc)
      if (below != "") detail = "below 80% of copy:" below
      target("target-copy-bandwidth", below == "", nc > 0, detail)
      target("target-own-vs-cudnn", cd > 0 && ow / cd <= 1.5, ow > 0 && cd > 0,
             sprintf("own (attention v2) %.3f ms vs cuDNN %.3f ms = %.2fx (target <= 1.5x)", ow, cd, cd > 0 ? ow / cd : 0))
    }' "$LOGS/bench_all.log"
}
section_benchmarks() {
  local op versions line id
  : > "$LOGS/bench_all.log"
  [[ -f $BUILD/gpu_dev_versions.txt ]] || return
  while read -r op versions; do
    if [[ -x $BUILD/gpu_dev_$op ]]; then bench_op "$op" "$versions"; else missing "bench-$op" "gpu_dev_$op"; fi
  done < "$BUILD/gpu_dev_versions.txt"
  CURRENT=""
  echo "  fastest block per lab version (all timings: $LOGS/bench_all.log):"
  while IFS= read -r line; do
    if [[ $line == ROW\ * ]]; then read -r _ id status detail <<< "$line"; row "$id" "$status" "$detail"
    else echo "$line"; fi
  done < <(bench_tables)
  for id in target-flash-vs-cudnn target-flash-vs-portable target-copy-bandwidth target-own-vs-cudnn; do
    [[ ${INFO[$id]} == "not reached" ]] && row "$id" FAIL "no verdict from the timing table (awk failed?)"
  done
}

# ---- main -----------------------------------------------------------------------------------------------------
declare_targets() {
  local t
  for t in gpu setup configure build parity-fp32 parity-bf16 trainer-other train-124m-flash train-124m-cudnn \
           train-124m-portable target-tok/s target-step-variation target-host-time target-other-share; do
    target "$t"
  done
  for t in tests/kernels/test_*.cu; do t=$(basename "$t" .cu); target "test-${t#test_}"; done
  for t in dev/cuda/*.cu; do target "bench-$(basename "$t" .cu)"; done
  for t in target-flash-vs-cudnn target-flash-vs-portable target-copy-bandwidth target-own-vs-cudnn complete; do
    target "$t"
  done
}
start_run() {  # [build-dir]: the settings, the clock, and the trap that prints the summary
  BUILD=${1:-build-gpu}
  [[ $DRY == 1 && -z ${1:-} ]] && BUILD=$(mktemp -d)/build-dry
  if [[ $DRY == 1 && -f $BUILD/CMakeCache.txt ]]; then  # the fake builds write empty "programs" into the build dir
    echo "error: GPU_CHECK_DRY_RUN=1 needs a new or empty build dir ($BUILD is a real build)" >&2; exit 2
  fi
  LOGS="$BUILD/gpu_check_logs"
  BUDGET_S=${BUDGET_S:-560}
  STEPS=${GPU_CHECK_STEPS:-a b c d}
  TRAIN_BS=${TRAIN_BS:-64 48 32 16 8}
  TRAIN_STEPS=${TRAIN_STEPS:-20}
  TARGET_TOKS=${TARGET_TOKS:-600000}
  START=$(date +%s)
  GPU_NAME="(no GPU found)"
  CURRENT="" CHILD="" FINISHED=0 NO_GPU=0 REASON="" NVCC="" BUDGET_CUT=0
  export GPU_CHECK_PID=$$
  trap on_exit EXIT
  trap 'on_signal INT' INT
  trap 'on_signal TERM' TERM
}
selected() { [[ " $STEPS " == *" $1 "* ]]; }
not_selected() {  # ROW-PATTERN...: rows of sections left out by GPU_CHECK_STEPS
  local id p
  # shellcheck disable=SC2053  # $p is a glob on purpose
  for id in "${ORDER[@]}"; do for p in "$@"; do [[ $id == $p ]] && row "$id" SKIP "not selected (GPU_CHECK_STEPS=\"$STEPS\")"; done; done
}
main() {
  start_run "$@"
  declare_targets
  preconditions
  mkdir -p "$LOGS" || exit 2
  echo "gpu_check: $GPU_NAME, build dir $BUILD, budget ${BUDGET_S}s, steps $STEPS, logs $LOGS"
  setup
  configure
  build_selected
  if selected a; then echo "== (a) trainer parity"; section_parity; else not_selected 'parity-*' trainer-other; fi
  if selected b; then echo "== (b) GPT-2 124M throughput"; section_train
  else not_selected 'train-*' target-tok/s 'target-step-*' target-host-time target-other-share; fi
  if selected c; then echo "== (c) kernel tests"; section_kernel_tests; else not_selected 'test-*'; fi
  if selected d; then echo "== (d) kernel benchmarks"; section_benchmarks
  else not_selected 'bench-*' 'target-flash-*' target-copy-bandwidth target-own-vs-cudnn; fi
  CURRENT=""
  FINISHED=1
  local id cut=0
  for id in "${ORDER[@]}"; do [[ ${RES[$id]} == SKIP && ${INFO[$id]} == *budget* ]] && cut=$(( cut + 1 )); done
  if (( cut > 0 )); then
    row complete SKIP "the budget ran out: $cut rows not checked (a second call with the same build dir goes on)"
  else row complete PASS "all selected steps reached in $(elapsed)s"; fi
}

# ---- dry run: the fake programs that stand in for setup, cmake, the tests, the trainer and the labs ---------------
# Their lines copy the formats the parsers above read (gtest's summary, host/train_loop.cpp's step and done lines,
# dev/cuda/common.cuh print_timing); the CI test checks that the sources still print those formats.
fake_behaviour() {  # ID -> the behaviour GPU_CHECK_FAKE gives this step (default pass)
  local kv
  for kv in ${GPU_CHECK_FAKE:-}; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done
  echo pass
}
arg_after() {  # FLAG ARGS... -> the argument that follows FLAG
  local flag=$1; shift
  while (( $# > 1 )); do [[ $1 == "$flag" ]] && { echo "$2"; return; }; shift; done
}
fake_build() {  # cmake --build DIR ... --target T...: "builds" each target as an empty executable
  local dir=$1 t src op; shift
  local -a targets=() made=()
  while (( $# )); do [[ $1 == --target ]] && { shift; while (( $# )) && [[ $1 != -* ]]; do targets+=("$1"); shift; done; continue; }; shift; done
  for t in "${targets[@]}"; do
    [[ $t == gpu_all ]] || { made+=("$t"); continue; }
    for src in tests/kernels/test_*.cu; do made+=("gpu_$(basename "$src" .cu)"); done
    while read -r op _; do made+=("gpu_dev_$op"); done < "$dir/gpu_dev_versions.txt"
  done
  [[ $HOW == partial ]] && made=("${made[@]:1}")  # the first target fails to compile
  for t in "${made[@]}"; do printf '#!/bin/sh\n' > "$dir/$t"; chmod +x "$dir/$t"; done
  echo "fake build: ${#made[@]} targets"
  [[ $HOW == partial ]] && { echo "error: fake compile error"; exit 2; }
}
fake_train() {  # train_gpt2cu train ... -b B -x STEPS --attention PATH: banner, step lines, done line
  local b steps path toks ms s prof
  b=$(arg_after -b "$@"); steps=$(arg_after -x "$@"); path=$(arg_after --attention "$@")
  [[ $HOW == oom ]] && (( b > 32 )) && { echo "error: out of device memory allocating 9000 MiB; lower -b/-t or use -r 1" >&2; exit 2; }
  [[ $HOW == unavailable ]] && { echo "error: --attention $path: not available in this fake build" >&2; exit 2; }
  case $path in flash) toks=700000 ;; cudnn) toks=720000 ;; *) toks=150000 ;; esac
  [[ $HOW == slow ]] && toks=100000
  echo "train_gpt2cu train | model preset d12 (random init, seed 42) | L=12 NH=12 C=768 maxT=1024 V=50257 | 124475904 parameters"
  if [[ " $* " == *" --cuda-graph "* ]]; then  # the trainer's graph status line (gpu/train_model.cuh)
    case $HOW in
      nograph) echo "cuda graph: off (capture failed: fake)" ;;
      slowhost) echo "cuda graph: on: 3 graphs (900 nodes), 60 launches | host 2.500 ms per step (fake)" ;;
      *) echo "cuda graph: on: 3 graphs (900 nodes), 60 launches | host 0.040 ms per step (fake)" ;;
    esac
  fi
  prof=$(arg_after --profile-step "$@")
  for (( s = 1; s <= steps; s++ )); do
    ms=$(( 65536000 / toks ))  # B*T/toks in ms for B=64, T=1024
    [[ $HOW == jitter ]] && (( s % 2 )) && ms=$(( ms * 12 / 10 ))
    [[ $s == "$prof" ]] && ms=$(( ms * 2 ))  # the profiled step runs eagerly and waits
    printf "step %5d/%d | loss 10.9000 | lr 6.00e-04 | norm 1.0000 | %d.0 ms | %d tok/s | 40.0%% MFU | ETA 1s\n" "$s" "$steps" "$ms" "$toks"
  done
  [[ $HOW == fail ]] && { echo "error: fake failure after step $steps" >&2; exit 1; }
  [[ $HOW == noline ]] || echo "done: $steps steps in 3s, $toks tok/s average (excluding each session's first step)"
  [[ -n $prof ]] && echo "step profile (step $prof, eager): matmul 62.0% | attention 28.0% |" \
    "other $([[ $HOW == bigother ]] && echo 20.0 || echo 10.0)% of 93.600 ms"
}
fake_bench() {  # gpu_dev_<op> V: a header and print_timing lines (the attention ones give the targets' inputs)
  local op=${1##*gpu_dev_} v=$2 f=1 w flops=" | 100.0 TFLOP/s"
  local -a what
  [[ $HOW == slow ]] && f=10
  echo "$op v$v bf16  B=8 T=1024 C=768 NH=12"
  case "$op v$v" in
    "attention v2") what=("attention fwd|1.2" "attention bwd|2.4") ;;
    "attention v3") what=("attention fwd cudnn|0.8" "attention bwd cudnn|1.6") ;;
    "flash_attention v1") what=("attention fwd portable|15.0" "attention bwd portable|30.0") ;;
    "flash_attention v2") what=("attention fwd flash|$(( f ))" "attention bwd flash|$(( 2 * f ))") ;;
    matmul*) what=("matmul fwd|0.5") ;;
    *) what=("$op|0.$(( f ))"); flops="" ;;  # memory-bound: no FLOP count; 0.1 ms = 85% of copy
  esac
  for w in "${what[@]}"; do
    printf "  %-24s block %4d | %8.4f ms | %7.1f GB/s (%5.1f%% of copy %.0f GB/s)%s\n" "${w%|*}" 128 "${w#*|}" \
      "$(( 2125 / f ))" "$(( 85 / f ))" 2500 "$flops"
  done
}
fake_program() {  # KIND HOW CMD...: what the real program prints and exits with, or the injected misbehaviour
  local kind=$1; HOW=$2; shift 2
  case $HOW in
    crash) ulimit -c 0; kill -SEGV $$ ;;
    timeout) sleep 300; exit 0 ;;
    interrupt) kill -TERM "$GPU_CHECK_PID"; sleep 300; exit 0 ;;
    ctrl-c) kill -INT "$GPU_CHECK_PID"; sleep 300; exit 0 ;;
  esac
  case $kind in
    build) fake_build "$(arg_after --build "$@")" "$@" ;;
    configure)
      local dir op; dir=$(arg_after -B "$@"); mkdir -p "$dir"; : > "$dir/gpu_dev_versions.txt"
      for op in dev/cuda/*.cu; do
        op=$(basename "$op" .cu)
        case $op in attention) echo "$op 1,2,3" ;; *) echo "$op 1,2" ;; esac >> "$dir/gpu_dev_versions.txt"
      done ;;
    gtest)
      [[ $HOW == noline ]] && { echo "[==========] fake tests ran, but no summary"; exit 0; }
      echo "[==========] 3 tests from 1 test suite ran. (10 ms total)"
      [[ $HOW == fail ]] && { printf '%s\n' "[  PASSED  ] 2 tests." "[  FAILED  ] 1 test, listed below:" "[  FAILED  ] Fake.Fails"; exit 1; }
      echo "[  PASSED  ] 3 tests." ;;
    train) fake_train "$@" ;;
    bench) [[ $HOW == noline ]] || fake_bench "$@" ;;
  esac
  [[ $HOW == fail ]] && exit 1
  exit 0
}

if [[ ${1:-} == --fake ]]; then shift; fake_program "$@"; fi  # a dry run's stand-in program
main "$@"
