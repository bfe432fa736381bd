#!/usr/bin/env bash
# Builds .gpu-bundle/, everything the device checks need on a lent GPU machine that has no Node, no
# npm and no network (see docs/gpu.md):
#   node.xz          this machine's Node binary (xz -9)
#   runtime.tar.xz   dist/ and the files of node_modules that the checks open, no more: the
#                    production tree is ~575 MB (tfjs ships several bundles of each package, npm
#                    `webgpu` a dawn.node per platform) and a device call carries 64 MiB with the
#                    working tree. The list is read, not guessed: each check runs here once under
#                    strace (webgpu on Mesa's llvmpipe), and every file it opens or stats (require.resolve
#                    only stats a package's main) under node_modules
#                    goes in, the .wasm, dawn.node, sharp's libvips and better-sqlite3's addon too
#                    (the list: runtime-files.txt).
#   services.tar.xz  redis-server and haproxy with the shared libraries the device image may lack
#                    (bench:replicas starts both), each behind a wrapper that points at them
#   data/            Fashion-MNIST's test files (bench:detect reads them; 4.3 MB)
#   gl/              the Vulkan loader and GL dispatch packages named by the device tool's README
# Run here, from the repository root; then scripts/gpu-check.sh runs on the device machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-bundle
rm -rf "$out"
mkdir -p "$out/gl"
command -v strace >/dev/null || apt-get install -y -qq strace >/dev/null

npm run build --silent
trace=$(mktemp -d)
sw=(env ADVSIEVE_BACKEND=webgpu ADVSIEVE_WEBGPU_ALLOW_SOFTWARE=1 LOG_LEVEL=warn)
run_traced() { strace -f -qq -e trace=openat,newfstatat,statx,stat,lstat -o "$trace/$1" "${@:2}" >/dev/null 2>&1; }
run_traced check "${sw[@]}" node dist/bench/gpuCheck.js --allow-software --seconds 1
run_traced api "${sw[@]}" BENCH_SECONDS=1 node dist/bench/api.js
run_traced replicas env LOG_LEVEL=warn BENCH_SECONDS=1 BENCH_WARMUP_SECONDS=1 BENCH_BASELINE=0 node dist/bench/replicas.js
# Files opened or found (not failed lookups) under node_modules, made relative, symlinks' ../ resolved.
# bench:detect (a stage on the device) is not traced: it loads a subset of what the service does.
cat "$trace"/* | grep -v ENOENT | grep -o '"[^"]*/node_modules/[^"]*"' | tr -d '"' | sort -u |
  while read -r f; do [ -f "$f" ] && realpath -s --relative-to=. "$f"; done | grep '^node_modules/' | sort -u > "$trace/files"
echo "runtime: $(wc -l < "$trace/files") files of node_modules"
cp "$trace/files" "$out/runtime-files.txt"
tar -cf - dist -T "$trace/files" | xz -T2 -9 > "$out/runtime.tar.xz"
rm -rf "$trace"

xz -T2 -9 -c "$(command -v node)" > "$out/node.xz"

# Redis (its binary is redis-check-rdb, which serves when not called by that name) and HAProxy,
# with the libraries they link beyond glibc and libstdc++, which the device image has.
svc=$(mktemp -d)/services
mkdir -p "$svc/lib"
cp "$(readlink -f "$(command -v redis-server)")" "$svc/redis-server.bin"
cp "$(command -v haproxy)" "$svc/haproxy.bin"
ldd "$svc/redis-server.bin" "$svc/haproxy.bin" | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt)\.so' | xargs -I{} cp -L {} "$svc/lib/"
for s in redis-server haproxy; do
  printf '#!/bin/sh\nd=$(dirname "$(readlink -f "$0")")\nLD_LIBRARY_PATH="$d/lib" exec "$d/%s.bin" "$@"\n' "$s" > "$svc/$s"
  chmod +x "$svc/$s"
done
tar -C "$(dirname "$svc")" -cf - services | xz -T2 -9 > "$out/services.tar.xz"
rm -rf "$(dirname "$svc")"

mkdir -p "$out/data"
cp /usr/share/datasets/fashion-mnist/t10k-* "$out/data/"

# amd64 packages whatever this machine's architecture, with their own package lists.
mkdir -p /tmp/amd64/partial
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${o[@]}" update -qq
(cd "$out/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

du -sh "$out"/*; du -sh "$out"
