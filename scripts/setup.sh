#!/usr/bin/env bash
# Install the Debian packages the build needs (idempotent; skips what is already there).
set -euo pipefail
pkgs=(cmake g++ make pkg-config libgtest-dev libbenchmark-dev libpcre2-dev nlohmann-json3-dev
      libcli11-dev libboost-context-dev libopenmpi-dev openmpi-bin clang libclang-rt-14-dev
      strace)  # strace: the checkpoint-durability test traces fsync/rename order
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# cuDNN attention (train_gpt2cu --attention cudnn, kernels/attention_cudnn.cu): the header-only cudnn_frontend, i.e.
# the include/ dir of PyPI's nvidia-cudnn-frontend wheel (--no-deps: its Python-side dependencies are not used).
# Only where a CUDA toolkit with cuDNN is present. cmake/cudnn.cmake finds the headers through python3; without
# them (or if this step fails) the cuDNN path is left out of the build with a message, nothing else changes.
cudnn_frontend_pin=1.32.0
cuda_home=${CUDA_HOME:-/usr/local/cuda}
if [ -f "$cuda_home/include/cudnn.h" ] || [ -f /usr/include/cudnn.h ] || [ -f /usr/include/x86_64-linux-gnu/cudnn.h ]; then
  # an installed copy is kept when it is recent enough for the API used (set_generate_stats & co.: 1.12+)
  if ! python3 - 2>/dev/null <<'PY'
import importlib.metadata as m, os, sys
v = m.version("nvidia-cudnn-frontend")
inc = m.distribution("nvidia-cudnn-frontend").locate_file("include")
ok = tuple(int(x) for x in v.split(".")[:2]) >= (1, 12) and os.path.isfile(os.path.join(str(inc), "cudnn_frontend.h"))
sys.exit(0 if ok else 1)
PY
  then
    echo "setup: installing nvidia-cudnn-frontend==$cudnn_frontend_pin (cudnn_frontend headers for the cuDNN attention path)"
    if ! python3 -m pip --version >/dev/null 2>&1; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
      $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip || true
    fi
    # Debian's python is "externally managed"; a header-only wheel without dependencies cannot break it
    PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-deps "nvidia-cudnn-frontend==$cudnn_frontend_pin" ||
      echo "setup: warning: nvidia-cudnn-frontend could not be installed; train_gpt2cu is built without --attention cudnn"
  fi
fi
