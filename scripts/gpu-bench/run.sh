#!/usr/bin/env bash
# Runs bench/backends.ts (or, with `engines` or `train` first, bench/engines.ts or bench/train.ts) from
# the self-contained folder that scripts/pack-gpu-bench.sh builds
# (gpu-bench/), on a machine that has no Node.js and no network: a GPU
# machine with NVIDIA's Vulkan driver, or, for testing, a CPU-only one with
# lavapipe.
#
#   bash gpu-bench/run.sh [--allow-software] [--skip-mobilenet]
#   bash gpu-bench/run.sh engines [--engines onnx:webgpu,onnx:cpu,torch:cuda] [--nets …] [--only …] [--timeout S]
#   bash gpu-bench/run.sh train [--engines onnx:webgpu,torch:cuda] [--quick]
#
# Other arguments go to the bench. In engines mode an unacceptable WebGPU
# adapter is reported but does not stop the run: the bench asks each engine
# itself (ONNX Runtime's WebGPU provider has its own Dawn) and skips those that
# do not start. It unpacks the carried Node, bench and
# libraries (once per payload) into $GPU_BENCH_RT (default
# ${TMPDIR:-/tmp}/salgrid-gpu-bench), links the carried libraries the system
# lacks, points the Vulkan loader at NVIDIA's driver, checks which WebGPU
# adapter Dawn gets (a software one is refused unless --allow-software) and
# runs the bench. Needs only bash and coreutils (the folder carries a busybox
# for unxz and tar).
#
# Environment:
#   GPU_BENCH_RT          where to unpack (a folder of its own: it is replaced when the payload changes)
#   GPU_BENCH_ICD         a Vulkan driver manifest (.json) to use instead of NVIDIA's, or "system"
#                         to leave the loader's own search alone
#   GPU_BENCH_FORCE_LIBS=1     use every carried library, even where the system has one (tests the carried set)
#   GPU_BENCH_SKIP_ADAPTER_CHECK=1   run the bench even without an acceptable WebGPU adapter
#   GPU_BENCH_TIMEOUT     seconds the bench may run (default: no limit)
#   WEBGPU_FLAGS          dawn.node flags, e.g. backend=vulkan (read by salgrid's webgpu backend too)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RT=${GPU_BENCH_RT:-${TMPDIR:-/tmp}/salgrid-gpu-bench}
BENCH=backends
if [ "${1:-}" = engines ] || [ "${1:-}" = train ]; then BENCH=$1; shift; fi
SOFTWARE_FLAG=""
for arg in "$@"; do [ "$arg" = --allow-software ] && SOFTWARE_FLAG=--allow-software; done
say() { printf '== %s\n' "$*"; }

say host
uname -srm
(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown distribution}")
glibc=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$')
echo "glibc ${glibc:-?}"
case $glibc in 2.[0-9]|2.[0-2][0-9]|2.3[0-3]) echo "WARNING: dawn.node needs glibc 2.34 or newer: the webgpu backend will not load here" ;; esac
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,pci.bus_id --format=csv,noheader 2>&1 | head -8
else
  echo "nvidia-smi: not found"
fi
echo "NVIDIA_DRIVER_CAPABILITIES=${NVIDIA_DRIVER_CAPABILITIES:-<unset>} (in a container, Vulkan needs 'graphics' or 'all')"
[ -f "$HERE/MANIFEST.txt" ] && sed -n '1,3p' "$HERE/MANIFEST.txt"

# ---- 1. unpack Node, the bundled bench, node_modules and lib/ (only when the payload changed),
# with the carried busybox's unxz and tar (xz is not installed everywhere)
stamp=$(cksum < "$HERE/payload.tar.xz") || { echo "no payload.tar.xz next to $0: rebuild with scripts/pack-gpu-bench.sh"; exit 1; }
if [ "$(cat "$RT/.stamp" 2>/dev/null)" != "$stamp" ]; then
  if [ -e "$RT" ] && [ ! -f "$RT/.stamp" ] && [ -n "$(ls -A "$RT" 2>/dev/null)" ]; then
    echo "$RT exists and was not made by this script: set GPU_BENCH_RT to an empty or new folder"; exit 1
  fi
  bb=$RT/.tools/busybox   # named busybox: it picks the applet from its own name otherwise
  rm -rf "$RT" && mkdir -p "$RT/.tools" && cp "$HERE/busybox" "$bb" && chmod +x "$bb" \
    && "$bb" unxz -c "$HERE/payload.tar.xz" | "$bb" tar -x -C "$RT" && printf '%s\n' "$stamp" > "$RT/.stamp" \
    || { echo "cannot unpack into $RT: set GPU_BENCH_RT to a writable folder"; exit 1; }
  echo "unpacked into $RT"
fi
NODE=$RT/bin/node

# ---- 2. carried libraries, linked only where the system lacks them
SYSLIBS=$( { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null)
system_lib() {   # prints the path of the system's copy of soname $1, or nothing
  local line dir
  while read -r line; do
    case $line in "$1 "*x86-64*) [ -s "${line##*=> }" ] && { echo "${line##*=> }"; return; } ;; esac
  done <<< "$SYSLIBS"
  for dir in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /lib64 /usr/local/nvidia/lib64 /usr/lib/wsl/lib; do
    [ -s "$dir/$1" ] && { echo "$dir/$1"; return; }
  done
}
LINKS=$RT/ld; rm -rf "$LINKS"; mkdir -p "$LINKS"
linked=""
for lib in "$RT"/lib/*.so*; do
  name=${lib##*/}
  case $name in libstdc++.so.6|libgcc_s.so.1) continue ;; esac
  if [ "${GPU_BENCH_FORCE_LIBS:-0}" = 1 ] || [ -z "$(system_lib "$name")" ]; then ln -s "$lib" "$LINKS/$name"; linked="$linked $name"; fi
done
# dawn.node needs GLIBCXX_3.4.30 (GCC 12's libstdc++); older systems get the carried pair.
cxx=$(system_lib libstdc++.so.6)
if [ "${GPU_BENCH_FORCE_LIBS:-0}" = 1 ] || [ -z "$cxx" ] || ! grep -qa GLIBCXX_3.4.30 "$cxx"; then
  ln -s "$RT/lib/libstdc++.so.6" "$RT/lib/libgcc_s.so.1" "$LINKS/"; linked="$linked libstdc++.so.6 libgcc_s.so.1"
fi
# Dawn's OpenGL ES backend opens "libEGL.so" (the development name).
if [ -z "$(system_lib libEGL.so)" ]; then
  egl=$(system_lib libEGL.so.1); ln -s "${egl:-$RT/lib/libEGL.so.1}" "$LINKS/libEGL.so"
fi
export LD_LIBRARY_PATH=$LINKS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "carried libraries in use:${linked:- none}"
unset NODE_OPTIONS NODE_PATH
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then export XDG_RUNTIME_DIR=$RT/xdg; mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"; fi
"$NODE" --version >/dev/null 2>&1 || {
  echo "the carried node does not start here (on a noexec mount, set GPU_BENCH_RT to another folder):"
  ldd "$NODE" 2>&1 | grep -E 'not found|version'; exit 1
}
echo "node $("$NODE" --version) (carried)"

# ---- 3. the Vulkan driver: NVIDIA's, unless GPU_BENCH_ICD names another
say "vulkan driver"
glx=$(system_lib libGLX_nvidia.so.0)
echo "libGLX_nvidia.so.0 (NVIDIA's Vulkan driver): ${glx:-not found}"
if [ -n "$glx" ]; then
  missing=$(ldd "$glx" 2>/dev/null | grep 'not found')
  [ -n "$missing" ] && echo "  its unresolved dependencies:" && echo "$missing"
fi
icd=${GPU_BENCH_ICD:-}
if [ -z "$icd" ]; then
  for f in /etc/vulkan/icd.d/nvidia*.json /usr/share/vulkan/icd.d/nvidia*.json /usr/local/etc/vulkan/icd.d/nvidia*.json /usr/local/share/vulkan/icd.d/nvidia*.json /usr/local/nvidia/share/vulkan/icd.d/nvidia*.json; do
    [ -f "$f" ] && { icd=$f; break; }
  done
  if [ -z "$icd" ] && [ -n "$glx" ]; then
    icd=$RT/nvidia_icd.json
    printf '{ "file_format_version": "1.0.0", "ICD": { "library_path": "%s", "api_version": "1.3.0" } }\n' "$glx" > "$icd"
    echo "no NVIDIA driver manifest on the system: wrote $icd"
  fi
fi
if [ "$icd" = system ]; then
  echo "GPU_BENCH_ICD=system: the Vulkan loader searches for drivers itself"
elif [ -n "$icd" ]; then
  export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
  echo "VK_DRIVER_FILES=$icd"
else
  echo "no NVIDIA Vulkan driver (no manifest, no libGLX_nvidia.so.0): the loader searches for drivers itself"
fi

# ---- 4. the WebGPU adapter Dawn gets
say "webgpu adapter"
cd "$RT" || exit 1
"$NODE" adapter.mjs $SOFTWARE_FLAG
rc=$?
if [ $rc != 0 ]; then
  if [ $rc = 2 ]; then
    echo "-- Vulkan loader messages:"
    VK_LOADER_DEBUG=error,warn,driver "$NODE" adapter.mjs 2>&1 | grep -iE 'error|fail|nvidia|found|cannot|warning' | sort -u | head -30
  fi
  if [ "$BENCH" != backends ]; then
    echo "no acceptable WebGPU adapter for Dawn: onnx:webgpu will probably be skipped; running the $BENCH bench anyway"
  elif [ "${GPU_BENCH_SKIP_ADAPTER_CHECK:-0}" != 1 ]; then
    echo "GPU BENCH: no acceptable WebGPU adapter; not running the bench (GPU_BENCH_SKIP_ADAPTER_CHECK=1 runs it anyway)"
    exit $rc
  fi
fi

# ---- 5. the bench
say "bench/$BENCH.ts $*"
# engines.mjs and train.mjs spawn their rows with the same Node (process.execPath) and find anchors/ next to themselves.
if [ -n "${GPU_BENCH_TIMEOUT:-}" ]; then
  timeout "$GPU_BENCH_TIMEOUT" "$NODE" "$BENCH.mjs" "$@"
else
  "$NODE" "$BENCH.mjs" "$@"
fi
rc=$?
echo "bench exit code $rc"
exit $rc
