#!/usr/bin/env bash
# test_plot_log.sh — scripts/plot_log.py --summary on a hand-written main.log with known answers: a resumed
# step replaces the earlier one, the first step is left out of the means, hellaswag lines (best / last acc_norm),
# malformed lines exit 2.
set -euo pipefail
script="$(cd "$(dirname "$0")/.." && pwd)/scripts/plot_log.py"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat > "$dir/main.log" <<'LOG'
step 0 val 5.000000 ppl 148.4132
step 0 hellaswag 0.250000 acc_norm 0.240000 items 24
step 1 train 4.000000 lr 0.001 norm 1.0 ms 100.0 tok_s 999.0 mfu 10.00
step 2 train 3.500000 lr 0.001 norm 1.0 ms 100.0 tok_s 1000.0 mfu 20.00
step 2 val 3.000000 ppl 20.0855
step 2 train 3.250000 lr 0.001 norm 1.0 ms 100.0 tok_s 3000.0 mfu 30.00
step 3 train 3.000000 lr 0.001 norm 1.0 ms 100.0 tok_s 1000.0 mfu 50.00
step 3 val 3.100000 ppl 22.1980
step 3 hellaswag 0.291667 acc_norm 0.333333 items 24
LOG
got=$(python3 "$script" "$dir/main.log" --summary)
want="$dir: 3 train steps, 3 val points
  last train loss 3.0000 (step 3), mean tok/s 2000, mean MFU 40.0%
  best val loss 3.0000 (step 2, perplexity 20.09), last 3.1000 (step 3)
  hellaswag best acc_norm 0.3333 (step 3), last acc_norm 0.3333 acc 0.2917 (step 3, 24 items)"
[[ "$got" == "$want" ]] || { printf 'unexpected summary:\n%s\nwanted:\n%s\n' "$got" "$want"; exit 1; }
echo "step 4 train" >> "$dir/main.log"
set +e
err=$(python3 "$script" "$dir/main.log" --summary 2>&1 >/dev/null); rc=$?
set -e
[[ $rc == 2 && "$err" == "error: $dir/main.log:10: not a main.log line: 'step 4 train'" ]] ||
  { echo "malformed line: rc=$rc err=$err"; exit 1; }
printf 'step 5 hellaswag 0.5 acc_norm 1.5 items 24\n' > "$dir/bad.log"  # a fraction above 1
python3 "$script" "$dir/bad.log" --summary 2>/dev/null && { echo "acc_norm 1.5 accepted"; exit 1; }
python3 "$script" "$dir/nothere.log" --summary 2>/dev/null && { echo "missing file accepted"; exit 1; }
echo "plot_log summary ok"
