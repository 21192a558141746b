#!/usr/bin/env bash
# Builds gpu-bench/ (git-ignored): everything bench/backends.ts,
# bench/engines.ts and bench/train.ts need on a machine with no Node.js and no network, in
# well under 64 MiB, to be carried there next to the repository's tracked
# files and started with
#   bash gpu-bench/run.sh [--allow-software] [--skip-mobilenet]      (bench/backends.ts: tfjs backends)
#   bash gpu-bench/run.sh engines [bench/engines.ts flags]           (ONNX Runtime's engines, wasm, PyTorch)
#   bash gpu-bench/run.sh train [bench/train.ts flags]               (training steps: ONNX Runtime, wasm, PyTorch)
#
#   gpu-bench/run.sh          the launcher (scripts/gpu-bench/run.sh)
#   gpu-bench/MANIFEST.txt    what is inside, with versions and sizes
#   gpu-bench/busybox         Debian's busybox-static: unxz and tar for the launcher
#   gpu-bench/payload.tar.xz  bin/node (this machine's, stripped), backends.mjs and engines.mjs (the
#                             benches bundled by esbuild, and train.mjs; tfjs, webgpu, onnxruntime-node and sharp
#                             left external), anchors/torch_explain.py and torch_train.py (the PyTorch anchors),
#                             adapter.mjs, a slim node_modules (the tfjs packages' Node bundles, the
#                             wasm binaries, webgpu's linux-x64 dawn.node stripped, onnxruntime-node's
#                             JavaScript and its linux-x64 bin folder: the binding and
#                             libonnxruntime.so.1 with the CPU and WebGPU providers, onnxruntime-common,
#                             a stub for sharp, which the benches never call), lib/ (Vulkan loader,
#                             GLVND/EGL, the X11 libraries NVIDIA's Vulkan driver links, and
#                             GCC 12's libstdc++ for dawn.node and ONNX Runtime, from Debian packages)
#
# ONNX Runtime's CUDA provider is not carried: onnxruntime-node does not bundle
# it (its installer downloads it, with CUDA 12 and cuDNN 9 libraries of several
# hundred MB), so onnx:cuda rows report the provider missing unless the GPU
# machine has it; onnx:webgpu runs on the Vulkan driver like tfjs's webgpu.
#
# xz rather than gzip saves about 10 MiB (Node alone: 21 against 31 MiB); the
# carried busybox unpacks it where xz is not installed. The folder must stay
# under 64 MiB (what a device run carries); the script stops if it does not.
#
# Needs: `npm ci` done (with the optional `webgpu`), strip, xz, tar, and
# apt-get able to reach a Debian mirror. Usage: scripts/pack-gpu-bench.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-bench}
die() { echo "pack-gpu-bench: $*" >&2; exit 1; }
[ -d node_modules/@tensorflow/tfjs-backend-webgpu ] || die "node_modules is incomplete: run npm ci first"
DAWN=node_modules/webgpu/dist/linux-x64/dawn.node
[ -f "$DAWN" ] || die "the optional dependency webgpu (with $DAWN) is not installed"
ORT_BIN=bin/napi-v6/linux/x64
[ -f "node_modules/onnxruntime-node/$ORT_BIN/libonnxruntime.so.1" ] || die "onnxruntime-node (with $ORT_BIN/libonnxruntime.so.1) is not installed"
for tool in strip xz tar apt-get dpkg; do command -v $tool >/dev/null || die "$tool is missing"; done

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
STAGE=$BUILD/stage
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/node_modules"

# ---- the benches, bundled: salgrid's own TypeScript becomes one .mjs each, so neither tsx nor src/ travel.
# tfjs stays external (one instance shared with the backends that register themselves on it), and so do
# webgpu (dawn.node is found next to its index.js), onnxruntime-node (its binding is found by a relative
# path) and sharp (a stub: the benches read no image files). The banner gives the bundle a `require`, which
# the CommonJS packages inside it (yaml) call for Node's built-ins.
for bench in backends engines train; do
  node_modules/.bin/esbuild "bench/$bench.ts" --bundle --platform=node --format=esm --target=node20 \
    '--external:@tensorflow/*' --external:webgpu --external:onnxruntime-node --external:sharp \
    --legal-comments=none --log-level=error --outfile="$STAGE/$bench.mjs" \
    "--banner:js=import { createRequire as salgridCreateRequire } from 'node:module'; const require = salgridCreateRequire(import.meta.url);"
done
mkdir -p "$STAGE/anchors"
cp bench/anchors/torch_explain.py bench/anchors/torch_train.py "$STAGE/anchors/"
cp scripts/gpu-bench/adapter.mjs "$STAGE/"

# ---- node_modules: package.json, licence and the file(s) Node loads, nothing else
copy() {   # copy PACKAGE FILE... (relative to the package)
  local pkg=$1 file; shift
  for file in package.json "$@"; do
    mkdir -p "$STAGE/node_modules/$pkg/$(dirname "$file")"
    cp "node_modules/$pkg/$file" "$STAGE/node_modules/$pkg/$file"
  done
  for file in node_modules/$pkg/LICENSE*; do [ -f "$file" ] && cp "$file" "$STAGE/node_modules/$pkg/"; done
  return 0
}
main_of() { node -p "require('./node_modules/$1/package.json').main"; }
# @tensorflow/tfjs loads core, layers, converter, data, cpu and webgl; salgrid adds wasm and webgpu.
for p in tfjs tfjs-core tfjs-layers tfjs-converter tfjs-data tfjs-backend-cpu tfjs-backend-webgl tfjs-backend-webgpu tfjs-backend-wasm; do
  copy "@tensorflow/$p" "$(main_of "@tensorflow/$p")"
done
(cd node_modules/@tensorflow/tfjs-backend-wasm && for w in dist/*.wasm; do cp "$w" "$STAGE/node_modules/@tensorflow/tfjs-backend-wasm/dist/"; done)
copy seedrandom index.js seedrandom.js lib/alea.js lib/tychei.js lib/xor128.js lib/xor4096.js lib/xorshift7.js lib/xorwow.js
copy long "$(main_of long)"
copy webgpu index.js
mkdir -p "$STAGE/node_modules/webgpu/dist/linux-x64"
strip --strip-unneeded -o "$STAGE/$DAWN" "$DAWN"
# onnxruntime-node: its CommonJS files, the binding and libonnxruntime.so.1 (32 MiB, CPU and WebGPU
# providers; about 8 MiB in the payload) for linux x64 only; onnxruntime-common's CommonJS build.
copy onnxruntime-node $(cd node_modules/onnxruntime-node && ls dist/*.js)
mkdir -p "$STAGE/node_modules/onnxruntime-node/$ORT_BIN"
strip --strip-unneeded -o "$STAGE/node_modules/onnxruntime-node/$ORT_BIN/onnxruntime_binding.node" "node_modules/onnxruntime-node/$ORT_BIN/onnxruntime_binding.node"
cp "node_modules/onnxruntime-node/$ORT_BIN/libonnxruntime.so.1" "$STAGE/node_modules/onnxruntime-node/$ORT_BIN/"
copy onnxruntime-common $(cd node_modules/onnxruntime-common && find dist/cjs -name '*.js' -o -name package.json | sort)
# sharp: the architecture plugins import it for reading images, which the benches never do.
mkdir -p "$STAGE/node_modules/sharp"
printf '{ "name": "sharp", "version": "0.0.0-gpu-bench-stub", "main": "index.js" }\n' > "$STAGE/node_modules/sharp/package.json"
printf "module.exports = function sharp() { throw new Error('sharp is not carried in the GPU bench: it reads no image files'); };\n" > "$STAGE/node_modules/sharp/index.js"

# ---- Node: this machine's binary, stripped (95 MiB; about 21 MiB in the payload)
NODE_BIN=$(readlink -f "$(command -v node)")
strip --strip-all -o "$STAGE/bin/node" "$NODE_BIN"

# ---- lib/: shared libraries a GPU machine may lack, from Debian's packages (same versions as here)
#   libvulkan1: the Vulkan loader Dawn opens; libegl1 + libglvnd0: GLVND's EGL and libGLdispatch
#   (Dawn's GL backend; NVIDIA's GLX/EGL driver libraries link libGLdispatch); libx11-6 ... libmd0:
#   what libGLX_nvidia.so.0 (NVIDIA's Vulkan driver) links; libstdc++6 + libgcc-s1: dawn.node needs
#   GLIBCXX_3.4.30, newer than some distributions ship.
PACKAGES="libvulkan1 libegl1 libglvnd0 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libstdc++6 libgcc-s1"
SONAMES="libvulkan.so.1 libEGL.so.1 libGLdispatch.so.0 libX11.so.6 libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0 libstdc++.so.6 libgcc_s.so.1"
mkdir -p "$BUILD/debs" "$BUILD/root" "$BUILD/busybox"
(cd "$BUILD/debs" && apt-get download -qq $PACKAGES 2>/dev/null) || die "apt-get download $PACKAGES failed (is a Debian mirror reachable? try apt-get update)"
for deb in "$BUILD"/debs/*.deb; do dpkg -x "$deb" "$BUILD/root"; done
for so in $SONAMES; do
  found=$(find "$BUILD/root" -name "$so" | head -1)
  [ -n "$found" ] || die "$so is not in the downloaded packages"
  cp -L "$found" "$STAGE/lib/$so"
done
strip --strip-unneeded "$STAGE"/lib/*.so*
(cd "$BUILD/busybox" && apt-get download -qq busybox-static 2>/dev/null && dpkg -x busybox-static_*.deb root) \
  || die "apt-get download busybox-static failed"

# ---- payload and launcher
PACKED=$BUILD/out
mkdir -p "$PACKED"
tar -C "$STAGE" --sort=name --owner=0 --group=0 -cf - . | xz -9 -T1 > "$PACKED/payload.tar.xz"
cp scripts/gpu-bench/run.sh "$PACKED/run.sh" && chmod +x "$PACKED/run.sh"
cp "$BUILD/busybox/root/bin/busybox" "$PACKED/busybox" && chmod +x "$PACKED/busybox"
"$PACKED/busybox" unxz -c "$PACKED/payload.tar.xz" | "$PACKED/busybox" tar -t >/dev/null || die "busybox cannot read the payload back"
{
  echo "salgrid gpu-bench, built $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- bench src test scripts 2>/dev/null || echo ' with local changes')"
  echo "node $("$NODE_BIN" --version), tfjs $(node -p "require('./node_modules/@tensorflow/tfjs/package.json').version"), webgpu $(node -p "require('./node_modules/webgpu/package.json').version"), onnxruntime-node $(node -p "require('./node_modules/onnxruntime-node/package.json').version")"
  echo "run: bash gpu-bench/run.sh [--allow-software] [--skip-mobilenet]        (bench/backends.ts)"
  echo "     bash gpu-bench/run.sh engines [--engines onnx:webgpu,onnx:cuda,onnx:cpu,torch:cuda] [--nets ...] [--only ...] [--timeout S]   (bench/engines.ts)"
  echo "     bash gpu-bench/run.sh train [--engines onnx:webgpu,torch:cuda] [--quick]   (bench/train.ts)"
  echo
  echo "Debian packages in lib/: $(cd "$BUILD/debs" && ls *.deb | sed 's/_amd64\.deb$//' | tr '\n' ' ')"
  echo "busybox: $(cd "$BUILD/busybox" && ls *.deb | sed 's/_amd64\.deb$//')"
  echo
  echo "payload (uncompressed, KiB):"
  (cd "$STAGE" && du -sk bin/node node_modules/webgpu node_modules/@tensorflow node_modules/onnxruntime-node node_modules/onnxruntime-common node_modules/seedrandom node_modules/long node_modules/sharp lib backends.mjs engines.mjs train.mjs anchors adapter.mjs)
  echo
  echo "folder (KiB):"
  (cd "$PACKED" && du -sk payload.tar.xz busybox run.sh)
} > "$PACKED/MANIFEST.txt"
# A device run carries at most 64 MiB in all: leave room for the launcher's own files and margin.
size_kib=$(du -sk "$PACKED" | cut -f1)
[ "$size_kib" -le $((60 * 1024)) ] || die "the folder is $((size_kib / 1024)) MiB, over the 60 MiB this script allows (a device run carries at most 64 MiB in all)"
rm -rf "$OUT" && mv "$PACKED" "$OUT"
cat "$OUT/MANIFEST.txt"
echo "total: $(du -sh "$OUT" | cut -f1) in $OUT/"
