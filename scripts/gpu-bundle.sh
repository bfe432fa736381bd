#!/usr/bin/env bash
# Builds .gpu-bundle/, everything the GPU check needs on a lent GPU machine that has no Node and no
# network (see docs/gpu.md): an xz-compressed Node binary, the check bundled into one file (esbuild),
# dawn.node (xz), tfjs-wasm's .wasm files, the reference model, and the Vulkan loader and GL
# dispatch packages named by the device tool's README. Run here, from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-bundle
rm -rf "$out"
mkdir -p "$out/wasm" "$out/model" "$out/gl"

npm run build --silent
npx esbuild dist/bench/gpuCheck.js --bundle --platform=node --target=node20 --log-level=error \
  --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --outfile="$out/gpu-check.js"
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$out/wasm/"
cp models/fashion-cnn/model.json models/fashion-cnn/weights.bin models/fashion-cnn/metadata.json "$out/model/"
xz -T2 -9 -c "$(command -v node)" > "$out/node.xz"
xz -T2 -9 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$out/dawn.node.xz"

# amd64 packages whatever this machine's architecture, with their own package lists.
mkdir -p /tmp/amd64/partial
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${o[@]}" update -qq
(cd "$out/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)

du -sh "$out" "$out"/*
