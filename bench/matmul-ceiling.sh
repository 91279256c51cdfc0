#!/usr/bin/env bash
# The per-core ceiling behind issue 9's CPU ratios: matMul GFLOP per CPU second of one wasm thread (XNNPACK, 128-bit
# SIMD) and of one PyTorch/OpenBLAS thread (native AVX2/AVX-512 kernels) on c4-llama-7m's forward shapes, one run,
# OpenBLAS pinned to one thread. CPU time, not wall time, so a shared machine's load moves it little.
#   bash bench/matmul-ceiling.sh     (needs python3-torch and libopenblas0-pthread: bench/compare-reference.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); flags: $(grep -m1 -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
npx tsx bench/matmul-ceiling.ts
OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/matmul-ceiling.py
