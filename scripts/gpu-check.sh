#!/usr/bin/env bash
# The device checks, run on a lent GPU machine from the bundle that scripts/gpu-bundle.sh builds:
#   device run, carry [".gpu-bundle"], command "bash scripts/gpu-check.sh --seconds 3"
# It unpacks the Vulkan loader, Node and the runtime (dist/ and the node_modules files the checks
# open) into this copy of the repository, prints the GPU, then runs, each into $OUT:
#   check       the GPU check (src/bench/gpuCheck.ts): the adapter, WebGPU forward and input-gradient
#               images/s against wasm on one CPU thread; gpu-check.txt
#   api         `bench:api` on webgpu: the service under load, against its engine alone;
#               bench-api-webgpu.txt
#   detect      `bench:detect` on webgpu: screening against forward-only; bench-detect-webgpu.txt
#   replicas    `bench:replicas` on wasm over all the machine's cores: three replicas behind HAProxy
#               sharing Redis against one, where cores are not the limit; bench-replicas.txt
#   replicas2   the same pinned to 2 cores (taskset), as on the project's machine;
#               bench-replicas-2cores.txt
#   replicas-gpu  `bench:replicas` on webgpu, each replica with one GPU worker, all sharing the GPU:
#               do more main threads feed one GPU better than one; bench-replicas-webgpu.txt
# STAGES="check api" runs a subset. Extra arguments go to the GPU check (--seconds N;
# --allow-software only for a dry run on a machine without a GPU, which lets every stage use it).
# A stage that fails is reported and the next one runs; the exit status is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
b=.gpu-bundle
[ -f "$b/runtime.tar.xz" ] || { echo "gpu-check: $b is missing; run scripts/gpu-bundle.sh and carry it" >&2; exit 2; }
stages=${STAGES:-check api detect replicas replicas2 replicas-gpu}
case " $* " in *" --allow-software "*) export ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1 ;; esac

for f in "$b"/gl/*.deb; do dpkg -x "$f" /; done
ldconfig
# The NVIDIA driver's Vulkan ICD where the container keeps it outside the default search paths.
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

tmp=$(mktemp -d)
unxz() { # xz where installed, else Python's lzma module
  if command -v xz >/dev/null; then xz -dc "$1"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi
}
unxz "$b/node.xz" > "$tmp/node" && chmod +x "$tmp/node"
unxz "$b/runtime.tar.xz" | tar -xf - || { echo "gpu-check: could not unpack the runtime" >&2; exit 2; }
unxz "$b/services.tar.xz" | tar -C "$tmp" -xf - || { echo "gpu-check: could not unpack Redis and HAProxy" >&2; exit 2; }
export PATH="$tmp:$tmp/services:$PATH" LOG_LEVEL=warn
# The benches' own BENCH_SECONDS (5 s a figure) holds; bench:replicas' warm-up is cut from 15 s to 5 s
# before each measurement to keep the lease short. Either can be set from outside.
export BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-5}
out=${OUT:-$tmp}
echo "$(command -v node) $(node --version), $(command -v redis-server), $(command -v haproxy); $(nproc) cores; stages: $stages; results in $out"

status=0
stage() { # name, log file, command...
  local name=$1 log=$2
  shift 2
  case " $stages " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name: $* ($(date -u +%T))"
  "$@" 2>&1 | tee "$out/$log"
  local rc=$?
  [ $rc -eq 0 ] || { echo "== $name failed: exit $rc"; [ $status -ne 0 ] || status=$rc; }
}
stage check gpu-check.txt node dist/bench/gpuCheck.js "$@"
stage api bench-api-webgpu.txt env ADVSIEVE_BACKEND=webgpu node dist/bench/api.js
stage detect bench-detect-webgpu.txt env ADVSIEVE_BACKEND=webgpu FASHION_MNIST_DIR="$PWD/$b/data" node dist/bench/detect.js
stage replicas bench-replicas.txt env ADVSIEVE_BACKEND=wasm node dist/bench/replicas.js
stage replicas2 bench-replicas-2cores.txt taskset -c 0,1 env ADVSIEVE_BACKEND=wasm BENCH_BASELINE=0 node dist/bench/replicas.js
stage replicas-gpu bench-replicas-webgpu.txt env ADVSIEVE_BACKEND=webgpu BENCH_BASELINE=0 node dist/bench/replicas.js
echo "== done ($(date -u +%T)), exit $status"
exit $status
