# PyTorch's own cuBLASLt GEMMs at ViT-L-14's shapes for batch 256 (65,792 rows), fp16, with and without bias: a
# reference for clipserve's stage profile. Run on the GPU machine: `python3 scripts/device/gemm_probe.py`.
import torch

torch.backends.cuda.matmul.allow_tf32 = False
M = 65792


def timed(f, n=20):
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        f()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


x = torch.randn(M, 1024, device="cuda", dtype=torch.half)
h = torch.randn(M, 4096, device="cuda", dtype=torch.half)
shapes = {"qkv": (x, 3072, 1024), "c_fc": (x, 4096, 1024), "out_proj": (x, 1024, 1024), "c_proj": (h, 1024, 4096)}
for name, (inp, n, k) in shapes.items():
    w = torch.randn(n, k, device="cuda", dtype=torch.half) * 0.02
    b = torch.randn(n, device="cuda", dtype=torch.half)
    plain = timed(lambda: torch.nn.functional.linear(inp, w))
    biased = timed(lambda: torch.nn.functional.linear(inp, w, b))
    flops = 2 * M * n * k
    print(f"{name:9s} no-bias {plain:.3f} ms ({flops / plain / 1e9:.0f} TF/s)  bias {biased:.3f} ms ({flops / biased / 1e9:.0f} TF/s)")
