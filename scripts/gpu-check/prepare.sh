#!/usr/bin/env bash
# scripts/gpu-check/prepare.sh [OUT_DIR]: bundles `npm run gpu-check` for a bare Linux x64 GPU machine (NVIDIA driver,
# no Node, no Vulkan loader, no network) into OUT_DIR/gpu-check.tar.gz (default dist/gpu-check/; gzip, which every
# Linux has; refused over 64 MiB) and the fixtures it compares with into OUT_DIR/gpu-check-fixtures.tar.gz (optional,
# ~31 MiB of random weights that do not compress; without it the report has no conformance rows):
#   node            this machine's Node binary, stripped of its debug symbols
#   gpu-check.mjs   scripts/gpu-check.ts and test/conformance/run.ts (conformance.mjs), bundled by esbuild
#   node_modules/   onnxruntime-node (its linux x64 binaries: CPU + WebGPU built in) and onnxruntime-common; sharp
#                   with its linux x64 libvips (the conformance runner decodes the fixtures' PNGs with it)
#   lib/            libvulkan.so.1 (the Vulkan loader WebGPU's Dawn opens), from this machine or Debian's libvulkan1
#   fixtures/       the tiny-sd15 files the network groups read (the conformance rows of the report)
# On the GPU machine: `sh scripts/gpu-check/run-bundle.sh` (extracts to $TMPDIR and runs it; see README "GPU check").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/dist/gpu-check}
FIX=${IPA_FIXTURES_ROOT:-$ROOT/../shared/fixtures}/tiny-sd15
STAGE=$OUT/stage/gpu-check
LIMIT=$((64 * 1024 * 1024))
rm -rf "$OUT/stage"
mkdir -p "$STAGE/node_modules/@img" "$STAGE/lib"

echo "prepare: bundling the code (esbuild)"
"$ROOT/node_modules/esbuild/bin/esbuild" "gpu-check=$ROOT/scripts/gpu-check.ts" "conformance=$ROOT/test/conformance/run.ts" \
  --bundle --platform=node --format=esm --target=node20 --outdir="$STAGE" --out-extension:.js=.mjs --log-level=warning \
  --external:onnxruntime-node --external:sharp \
  --banner:js="import { createRequire as __ipaRequire } from 'node:module'; const require = __ipaRequire(import.meta.url);"

echo "prepare: node $(node --version) from $(command -v node)"
cp "$(command -v node)" "$STAGE/node"
strip "$STAGE/node" 2>/dev/null || echo "prepare: strip not found: node keeps its symbols (+3 MiB compressed)" >&2

echo "prepare: node_modules subset"
NM=$ROOT/node_modules
ORT=$STAGE/node_modules/onnxruntime-node
mkdir -p "$ORT/bin/napi-v6/linux"
cp -r "$NM/onnxruntime-node/package.json" "$NM/onnxruntime-node/dist" "$ORT/"
cp -r "$NM/onnxruntime-node/bin/napi-v6/linux/x64" "$ORT/bin/napi-v6/linux/"
# The CUDA provider libraries, where `npm install onnxruntime-node --onnxruntime-node-install-cuda` put them here.
cp -r "$NM/onnxruntime-common" "$NM/sharp" "$NM/detect-libc" "$NM/semver" "$STAGE/node_modules/"
cp -r "$NM/@img/colour" "$NM/@img/sharp-linux-x64" "$NM/@img/sharp-libvips-linux-x64" "$STAGE/node_modules/@img/"
rm -rf "$STAGE/node_modules/sharp/src" "$STAGE/node_modules/semver/bin"

echo "prepare: the Vulkan loader"
VK=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 .*x86-64/ {print $NF; exit}')
if [ -n "$VK" ]; then
  cp -L "$VK" "$STAGE/lib/libvulkan.so.1"
else
  TMPD=$(mktemp -d)
  (cd "$TMPD" && apt-get download libvulkan1 >/dev/null 2>&1) || { echo "prepare: no libvulkan.so.1 here and apt-get download libvulkan1 failed: WebGPU will need the machine's own loader" >&2; }
  if ls "$TMPD"/libvulkan1_*.deb >/dev/null 2>&1; then
    dpkg-deb -x "$TMPD"/libvulkan1_*.deb "$TMPD/x"
    cp -L "$(ls "$TMPD"/x/usr/lib/x86_64-linux-gnu/libvulkan.so.1.* | head -1)" "$STAGE/lib/libvulkan.so.1"
  fi
  rm -rf "$TMPD"
fi

if [ -d "$FIX" ]; then
  echo "prepare: tiny-sd15 fixtures for the network groups"
  D=$OUT/stage/fixtures/tiny-sd15
  mkdir -p "$D/cases" "$D/diffusers"
  cp "$FIX"/cases/cases.json "$FIX"/cases/*.png "$D/cases/" 2>/dev/null || true
  for g in text_encoder vision_encoder image_proj unet_step vae clip_preprocess; do cp "$FIX/cases/$g.safetensors" "$D/cases/" 2>/dev/null || true; done
  cp -r "$FIX"/diffusers/{unet,text_encoder,vae,tokenizer,scheduler,feature_extractor,model_index.json} "$D/diffusers/"
  cp -r "$FIX"/image_encoder "$FIX"/ip-adapter_sd15-tiny.safetensors "$FIX"/ip-adapter-plus_sd15-tiny.safetensors "$FIX"/checkpoint-ldm.safetensors "$FIX"/README.md "$D/"
else
  echo "prepare: no fixtures at $FIX: the report will have no conformance rows" >&2
fi

echo "prepare: compressing"
tar -C "$OUT/stage" -czf "$OUT/gpu-check.tar.gz" gpu-check
[ -d "$OUT/stage/fixtures" ] && tar -C "$OUT/stage" -czf "$OUT/gpu-check-fixtures.tar.gz" fixtures
SIZE=$(stat -c %s "$OUT/gpu-check.tar.gz")
rm -rf "$OUT/stage"
echo "prepare: $OUT/gpu-check.tar.gz: $((SIZE / 1024 / 1024)) MiB ($SIZE bytes)"
[ -f "$OUT/gpu-check-fixtures.tar.gz" ] && echo "prepare: $OUT/gpu-check-fixtures.tar.gz: $(($(stat -c %s "$OUT/gpu-check-fixtures.tar.gz") / 1024 / 1024)) MiB"
if [ "$SIZE" -gt "$LIMIT" ]; then
  echo "prepare: the bundle is over 64 MiB" >&2
  exit 1
fi
