"""Per-core matMul rate of PyTorch (OpenBLAS, one thread) on the shapes of bench/matmul-ceiling.ts, in GFLOP per CPU
second. Run by bench/matmul-ceiling.sh."""
import json, sys, time
import torch

torch.set_num_threads(1)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
SHAPES = [(512, 256, 768), (512, 768, 256), (512, 256, 256), (512, 256, 4096), (512, 32, 512), (512, 512, 32)]
out = {}
for m, k, n in SHAPES:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    c0 = time.process_time()
    for _ in range(reps):
        a @ b
    out[f'{m}x{k}x{n}'] = round(2 * m * k * n * reps / (time.process_time() - c0) / 1e9, 1)
print(json.dumps({'side': f'torch {torch.__version__} OpenBLAS, 1 thread', 'gflopPerCpuSecond': out}))
