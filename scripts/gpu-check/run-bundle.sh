#!/bin/sh
# scripts/gpu-check/run-bundle.sh [gpu-check options]: runs the bundle scripts/gpu-check/prepare.sh made
# (dist/gpu-check/gpu-check.tar.gz, and gpu-check-fixtures.tar.gz when present) on a machine without Node:
# extracts them under $TMPDIR, points the Vulkan loader at the NVIDIA driver when the machine has no ICD file,
# and runs gpu-check with the bundled Node. The report (JSON) goes to $OUT/gpu-check.json when OUT is set.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${IPA_GPU_CHECK_BUNDLE:-$HERE/../../dist/gpu-check}
DIR=${TMPDIR:-/tmp}/ipa-gpu-check-bundle
rm -rf "$DIR"
mkdir -p "$DIR"
tar -xzf "$SRC/gpu-check.tar.gz" -C "$DIR"
if [ -f "$SRC/gpu-check-fixtures.tar.gz" ]; then
  tar -xzf "$SRC/gpu-check-fixtures.tar.gz" -C "$DIR"
  export IPA_FIXTURES="$DIR/fixtures/tiny-sd15"
fi
B=$DIR/gpu-check
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The Vulkan loader finds the driver through an ICD file; a container with only the compute driver has none.
if [ -z "${VK_ICD_FILENAMES:-}" ] && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  for lib in libGLX_nvidia.so.0 libEGL_nvidia.so.0; do
    if ldconfig -p 2>/dev/null | grep -q "$lib"; then
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >"$DIR/nvidia_icd.json"
      export VK_ICD_FILENAMES="$DIR/nvidia_icd.json"
      break
    fi
  done
fi
exec "$B/node" "$B/gpu-check.mjs" "$@"
