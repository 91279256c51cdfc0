#!/usr/bin/env bash
# The GPU check as one self-contained file to copy to a GPU machine (which often has a CUDA/Python image and no Node).
#
#   bash scripts/gpu-check.sh [--model DIR] [--calibration FILE] [--out FILE] [--no-run] [-- CHECK OPTIONS]
#   npm run gpu-check                          (the same, defaults)
#
# Builds OUT (default gpu-check.tar.xz, < 64 MiB) holding: this machine's Node binary, the check (scripts/gpu-check.ts
# and the package, bundled with esbuild), the tfjs wasm files, Dawn's dawn.node (npm `webgpu`), Debian's libvulkan1,
# the model (default ../shared/models/c4-llama-7m), the C4 calibration file and WikiText-2's test split. Then, unless
# --no-run, it runs the bundle here exactly as on the GPU machine: on a machine without a GPU that is the preflight's
# failure, one JSON line within seconds (`-- --allow-software` runs the whole check on Mesa's software adapter, whose
# figures are CPU figures and say so).
# The GPU machine needs (checked first, each failure one JSON line {"ok": false, "stage", "error", "fix"}):
# x86-64 Linux, glibc >= 2.34 and a libstdc++ with GLIBCXX_3.4.30 (dawn.node's; Debian 12 / Ubuntu 22.04 or newer),
# tar and xz, a GPU with its Vulkan driver: NVIDIA's driver with its Vulkan ICD (nvidia_icd.json, libGLX_nvidia.so.0;
# in a container NVIDIA_DRIVER_CAPABILITIES must include `graphics`, e.g. `all`). Then:
#   tar -xJf gpu-check.tar.xz && gpu-check/run.sh
# The check prints one JSON line on stdout (progress on stderr) and stops at --time-limit (300 s). CHECK OPTIONS
# (passed to scripts/gpu-check.ts): --allow-software --skip-methods --time-limit 300 --nsamples 32 --seqlen 512
# --forward-seqlen 1024 --reps 3 --block 4096,11008.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared="${LLM_PRUNE_SHARED:-$root/../shared}"
model="$shared/models/c4-llama-7m"
calibration="$shared/data/c4/c4-train.00000-of-01024.head1000.jsonl"
wikitext="$shared/data/wikitext-2-raw-v1/test.jsonl"
out="$root/gpu-check.tar.xz"
run=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --calibration) calibration="$2"; shift 2 ;;
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    --no-run) run=0; shift ;;
    --) shift; break ;;
    *) echo "gpu-check.sh: unknown option '$1' (see the header of scripts/gpu-check.sh)" >&2; exit 2 ;;
  esac
done
for f in "$model/config.json" "$calibration" "$wikitext" "$root/node_modules/webgpu/package.json" "$root/node_modules/.bin/esbuild"; do
  [ -e "$f" ] || { echo "gpu-check.sh: missing $f (npm ci installs webgpu and esbuild; the model and data come from ../shared)" >&2; exit 2; }
done
arch="$(node -p 'process.platform + "-" + process.arch')"
[ "$arch" = "linux-x64" ] || { echo "gpu-check.sh: builds x86-64 Linux bundles only (this is $arch)" >&2; exit 2; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
b="$stage/gpu-check"
mkdir -p "$b/bin" "$b/app/node_modules/webgpu/dist/linux-x64" "$b/lib" "$b/model" "$b/data"

echo "== bundle the check (esbuild)" >&2
"$root/node_modules/.bin/esbuild" "$root/scripts/gpu-check.ts" --bundle --platform=node --format=esm --target=node20 \
  --external:webgpu --outfile="$b/app/gpu-check.mjs" --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);"
cp "$root"/node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$b/app/"
cp "$root/node_modules/webgpu/package.json" "$root/node_modules/webgpu/index.js" "$b/app/node_modules/webgpu/"
cp "$root/node_modules/webgpu/dist/linux-x64/dawn.node" "$b/app/node_modules/webgpu/dist/linux-x64/"
cp "$(node -p process.execPath)" "$b/bin/node"

echo "== libvulkan1 from Debian" >&2
(cd "$stage" && apt-get download libvulkan1 >/dev/null 2>&1) || { echo "gpu-check.sh: apt-get download libvulkan1 failed" >&2; exit 1; }
dpkg-deb -x "$stage"/libvulkan1_*.deb "$stage/vk"
cp -L "$(ls "$stage"/vk/usr/lib/x86_64-linux-gnu/libvulkan.so.1.* | head -1)" "$b/lib/libvulkan.so.1"

cp "$model"/*.json "$model"/*.safetensors "$b/model/"
cp "$calibration" "$b/data/calibration.jsonl"
cp "$wikitext" "$b/data/wikitext-test.jsonl"
cat > "$b/run.sh" <<'EOF'
#!/usr/bin/env bash
# Runs the GPU check; prints one JSON line on stdout, progress on stderr. Extra options go to the check
# (--allow-software: also run on a software adapter). What Node itself needs is checked here, in the shell.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fail() { printf '{"check":"gpu-check","ok":false,"stage":"%s","error":"%s","fix":"%s"}\n' "$1" "$2" "$3"; exit 1; }
[ "$(uname -sm)" = "Linux x86_64" ] || fail platform "this is $(uname -sm); the bundle carries Node and Dawn for x86-64 Linux" "run it on x86-64 Linux"
glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
[ -n "$glibc" ] || fail glibc "no glibc found (musl?); dawn.node needs glibc >= 2.34" "use an image based on Debian 12, Ubuntu 22.04, RHEL 9 or newer"
[ "$(printf '%s\n2.34\n' "$glibc" | sort -V | head -1)" = "2.34" ] || fail glibc "glibc $glibc: dawn.node needs glibc >= 2.34" "use an image based on Debian 12, Ubuntu 22.04, RHEL 9 or newer"
# Debian's Vulkan loader, unless the machine has one (the NVIDIA driver's ICD is found through it).
if ! ldconfig -p 2>/dev/null | grep -c 'libvulkan.so.1 ' >/dev/null; then export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
export EGL_PLATFORM="${EGL_PLATFORM:-surfaceless}" # only for Mesa's software fallback
exec "$here/bin/node" "$here/app/gpu-check.mjs" --model "$here/model" --calibration "$here/data/calibration.jsonl" \
  --wikitext "$here/data/wikitext-test.jsonl" --require-hardware "$@"
EOF
chmod +x "$b/run.sh" "$b/bin/node"

echo "== compress (xz)" >&2
tar -C "$stage" -cf - gpu-check | xz -T0 -6 > "$out"
size=$(stat -c %s "$out")
echo "gpu-check.sh: wrote $out ($((size / 1048576)) MiB; copy it to the GPU machine, then: tar -xJf $(basename "$out") && gpu-check/run.sh)" >&2
[ "$size" -lt $((64 * 1048576)) ] || { echo "gpu-check.sh: the bundle is over 64 MiB" >&2; exit 1; }

if [ "$run" = 1 ]; then
  echo "== run the bundle here, as on the GPU machine" >&2
  mkdir "$stage/run"
  tar -C "$stage/run" -xJf "$out"
  "$stage/run/gpu-check/run.sh" "$@"
fi
