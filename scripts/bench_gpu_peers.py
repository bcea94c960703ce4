#!/usr/bin/env python3
"""Engine-only throughput of the PyTorch peers clipserve's CUDA engine is compared with.

For each model (random weights, the same open_clip architecture clipserve runs): open_clip eager fp16 and, unless
--no-compile, the same tower under torch.compile(mode="max-autotune"). Input is fp16 random pixels already on the
GPU; timing is CUDA events around `iterations` forward passes after warm-up; no preprocessing, no host copies.
Prints one line per (model, mode, batch) and a JSON summary last.

Usage: python3 bench_gpu_peers.py --models ViT-B-32 ViT-L-14 --batches 1 64 256 [--iterations 20] [--no-compile]
--iterations takes several counts (e.g. 10 50): each is timed in turn after one compile, lines tagged with the count
when there are several (a short run and a sustained one, where the GPU's clocks may have come down).
Needs open_clip importable (pip install --no-deps --target DIR open_clip_torch ftfy wcwidth; PYTHONPATH=DIR).
"""
import argparse
import json
import time

import torch


def time_forward(fn, x, iterations, warmup=3):
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            fn(x)
        end.record()
        torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000 / iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["ViT-B-32"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 64, 256])
    parser.add_argument("--iterations", nargs="+", type=int, default=[20])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--compile-batches", nargs="+", type=int, default=None,
                        help="batch sizes for torch.compile (default: the same as --batches)")
    args = parser.parse_args()

    import open_clip

    torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}, torch {torch.__version__}, open_clip {open_clip.__version__}", flush=True)
    for name in args.models:
        model = open_clip.create_model(name, pretrained=None, device="cuda", precision="fp16").visual.eval()
        size = model.image_size[0] if isinstance(model.image_size, tuple) else model.image_size
        modes = [("open_clip eager fp16", model, args.batches)]
        if not args.no_compile:
            compiled = torch.compile(model, mode="max-autotune")
            modes.append(("torch.compile max-autotune fp16", compiled, args.compile_batches or args.batches))
        for mode, fn, batches in modes:
            for batch in batches:
                x = torch.randn(batch, 3, size, size, device="cuda", dtype=torch.float16)
                for iterations in args.iterations:
                    started = time.time()
                    try:
                        seconds = time_forward(fn, x, iterations)
                    except Exception as error:  # report and go on: one failing mode must not hide the others
                        print(f"{name} {mode} batch {batch}: FAILED {error}", flush=True)
                        break
                    rate = batch / seconds
                    tag = f" x{iterations}" if len(args.iterations) > 1 else ""
                    print(f"{name:10s} {mode:32s} batch {batch:5d}{tag}: {seconds * 1000:8.3f} ms  {rate:10.1f} img/s"
                          f"  (incl. warm-up/compile {time.time() - started:.0f} s)", flush=True)
                    results.append({"model": name, "mode": mode, "batch": batch, "iterations": iterations,
                                    "ms": seconds * 1000, "images_per_second": rate, "device": device})
        del model
        torch.cuda.empty_cache()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
