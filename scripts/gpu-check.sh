#!/usr/bin/env bash
# The GPU check, run on a lent GPU machine from the bundle that scripts/gpu-bundle.sh builds:
#   device run, carry [".gpu-bundle"], command "bash scripts/gpu-check.sh"
# It unpacks the Vulkan loader, decompresses Node and dawn.node, prints the GPU, and runs the
# WebGPU and wasm measurements (src/bench/gpuCheck.ts). Extra arguments go to the check
# (--seconds N; --allow-software only for a dry run on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
b=.gpu-bundle
[ -f "$b/gpu-check.js" ] || { echo "gpu-check: $b is missing; run scripts/gpu-bundle.sh and carry it" >&2; exit 2; }

for f in "$b"/gl/*.deb; do dpkg -x "$f" /; done
ldconfig
# The NVIDIA driver's Vulkan ICD where the container keeps it outside the default search paths.
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

tmp=$(mktemp -d)
unxz() { # xz where installed, else Python's lzma module
  if command -v xz >/dev/null; then xz -dc "$1" > "$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi
}
unxz "$b/node.xz" "$tmp/node"
unxz "$b/dawn.node.xz" "$tmp/dawn.node"
chmod +x "$tmp/node"

log=${OUT:-$tmp}/gpu-check.txt
ADVSIEVE_DAWN_NODE="$tmp/dawn.node" ADVSIEVE_WASM_DIR="$b/wasm" ADVSIEVE_MODEL_DIR="$b/model" LOG_LEVEL=warn \
  "$tmp/node" "$b/gpu-check.js" "$@" 2>&1 | tee "$log"
