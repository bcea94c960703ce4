import torch, time
torch.backends.cuda.matmul.allow_tf32=False
M=65792
def t(f, n=20):
    for _ in range(3): f()
    torch.cuda.synchronize(); s=torch.cuda.Event(enable_timing=True); e=torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(n): f()
    e.record(); torch.cuda.synchronize(); return s.elapsed_time(e)/n
x=torch.randn(M,1024,device='cuda',dtype=torch.half)
h=torch.randn(M,4096,device='cuda',dtype=torch.half)
for name,(inp,N,K) in {"qkv":(x,3072,1024),"c_fc":(x,4096,1024),"out_proj":(x,1024,1024),"c_proj":(h,1024,4096)}.items():
    w=torch.randn(N,K,device='cuda',dtype=torch.half)*0.02; b=torch.randn(N,device='cuda',dtype=torch.half)
    nb=t(lambda: torch.nn.functional.linear(inp,w)); wb=t(lambda: torch.nn.functional.linear(inp,w,b))
    fl=2*M*N*K
    print(f"{name:9s} no-bias {nb:.3f} ms ({fl/nb/1e9:.0f} TF/s)  bias {wb:.3f} ms ({fl/wb/1e9:.0f} TF/s)")
