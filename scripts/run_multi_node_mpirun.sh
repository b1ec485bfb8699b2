#!/usr/bin/env bash
# run_multi_node_mpirun.sh — data-parallel training over several machines with Open MPI: one train_gpt2cu
# process per GPU on every host of a hostfile; NCCL carries the gradients (NVLink inside a node, InfiniBand /
# RoCE / TCP between nodes), MPI only starts the processes and hands out the NCCL id.
#
# Usage: scripts/run_multi_node_mpirun.sh --hostfile FILE [--gpus-per-node G] [--] [train_gpt2cu train flags...]
#   --hostfile FILE     Open MPI hostfile, one line per node with its GPU count as slots, e.g.
#                           node01 slots=8
#                           node02 slots=8
#   --gpus-per-node G   processes per node (default 8); world size = nodes × G
#   -h, --help          this text
# Requirements: the same build at the same path on every node (a shared file system, or copy build/ and the
#   data), passwordless ssh from this node to the others, the data path valid on every node.
# Environment: BUILD (default build); NCCL_* variables are passed on (e.g. NCCL_SOCKET_IFNAME=eth0,
#   NCCL_IB_HCA=mlx5, NCCL_DEBUG=INFO for a first run).
# Example: scripts/run_multi_node_mpirun.sh --hostfile hosts.txt -- -e d12 -b 32 -t 1024 -d 524288 -z 1 -o out/d12
set -euo pipefail
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
usage() { sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//'; }
BUILD=${BUILD:-build}
HOSTFILE=""
GPN=8
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --hostfile) HOSTFILE=${2:?--hostfile needs a file}; shift 2 ;;
    --gpus-per-node) GPN=${2:?--gpus-per-node needs a number}; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ -n "$HOSTFILE" ]] || { echo "error: --hostfile is required (see --help)" >&2; exit 2; }
[[ -f "$HOSTFILE" ]] || { echo "error: hostfile $HOSTFILE not found" >&2; exit 2; }
[[ "$GPN" =~ ^[1-9][0-9]*$ ]] || { echo "error: --gpus-per-node must be a positive integer (got '$GPN')" >&2; exit 2; }
NODES=$(grep -cvE '^\s*(#|$)' "$HOSTFILE")
[[ "$NODES" -ge 1 ]] || { echo "error: $HOSTFILE lists no host" >&2; exit 2; }
NP=$((NODES * GPN))
BIN="$(pwd)/$BUILD/train_gpt2cu"
[[ -x "$BIN" ]] || { echo "error: $BIN is not built" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "error: mpirun not found (install openmpi-bin)" >&2; exit 2; }
[[ $# -gt 0 ]] || { echo "error: give the train flags after -- (see --help)" >&2; exit 2; }
ENVS=()
for v in $(env | grep -oE '^NCCL_[A-Z_]+' || true); do ENVS+=(-x "$v"); done
ROOT=(); [[ $(id -u) -eq 0 ]] && ROOT=(--allow-run-as-root)
echo "run_multi_node_mpirun: $NODES nodes × $GPN GPUs = $NP ranks"
# --map-by ppr:G:node puts G consecutive ranks on each node (OMPI_COMM_WORLD_LOCAL_RANK picks the GPU);
# --bind-to none leaves each rank's host threads free.
exec mpirun -np "$NP" --hostfile "$HOSTFILE" --map-by "ppr:$GPN:node" --bind-to none "${ROOT[@]}" "${ENVS[@]}" \
  "$BIN" train "$@"
