#!/usr/bin/env python3
"""Throughput of the same ViT image tower in PyTorch eager and ONNX Runtime on the CPU, for comparison with
`clipserve bench engine --backend cpu`.

The tower is built by open_clip with its own random initialisation (no download). Both peers get the same thread
count, random pixels, warm-up batches, then timed batches for --seconds; batch latency percentiles are nearest-rank,
as in clipserve. One JSON line per (peer, batch size) with --json, with
images/s, p50/p99 batch latency and CPU ms per image (process CPU time over all threads, which measures the work
better than wall time on a shared machine).

Example: scripts/bench_cpu_peers.py --model ViT-B-32 --batch-sizes 1,8 --threads 2 --seconds 20 --json
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture name (default ViT-B-32)")
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="intra-op threads for both peers")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per (peer, batch size)")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    p.add_argument("--peers", default="torch,onnxruntime", help="which peers to run (torch, onnxruntime)")
    p.add_argument("--ort-no-spin", action="store_true", help="stop ONNX Runtime's workers spinning between ops")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    return p.parse_args()


def percentile(samples, q):
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def time_batches(run, warmup, seconds):
    """Per-batch wall seconds, and the process CPU seconds (all threads) the timed batches used."""
    for _ in range(warmup):
        run()
    samples = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    while not samples or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return samples, time.process_time() - cpu_start


def report(args, peer, version, batch, timing, extra, flops_per_image):
    samples, cpu_seconds = timing
    ips = batch * len(samples) / sum(samples)
    row = {
        "peer": peer, "version": version, "model": args.model, "batch_size": batch, "threads": args.threads,
        "precision": "fp32", "images_per_second": ips, "p50_ms": percentile(samples, 0.5) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000, "batches": len(samples), "seconds": sum(samples),
        "gflops_per_second": ips * flops_per_image / 1e9,
        "cpu_ms_per_image": cpu_seconds / (batch * len(samples)) * 1000, **extra,
    }
    if args.json:
        print(json.dumps(row, sort_keys=True), flush=True)
    else:
        print(f"{peer} {version} batch {batch}: {ips:.2f} images/s, p50 {row['p50_ms']:.1f} ms, "
              f"p99 {row['p99_ms']:.1f} ms, {row['cpu_ms_per_image']:.1f} CPU ms/image "
              f"({len(samples)} batches, {args.threads} threads)", flush=True)


def main():
    args = parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    peers = args.peers.split(",")
    import torch
    import open_clip

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    model = open_clip.create_model(args.model, pretrained=None)
    visual = model.visual.eval()
    size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
    grid = size // visual.patch_size[0] if isinstance(visual.patch_size, tuple) else size // visual.patch_size
    width = visual.conv1.out_channels
    layers = len(visual.transformer.resblocks)
    mlp = visual.transformer.resblocks[0].mlp.c_fc.out_features
    embed = visual.proj.shape[1]
    tokens = grid * grid + 1
    patch_dim = visual.conv1.weight[0].numel()
    # Same count as VisionTowerSpec.flopsPerImage.
    flops = 2 * (grid * grid * width * patch_dim
                 + layers * (tokens * (3 * width * width + width * width + 2 * width * mlp) + 2 * tokens * tokens * width)
                 + width * embed)

    generator = torch.Generator().manual_seed(1)
    inputs = {b: torch.randn(b, 3, size, size, generator=generator) for b in batches}
    reference = {}
    with torch.inference_mode():
        for b in batches:
            reference[b] = visual(inputs[b]).numpy()

    if "torch" in peers:
        for b in batches:
            x = inputs[b]
            with torch.inference_mode():
                timing = time_batches(lambda: visual(x), args.warmup, args.seconds)
            report(args, "torch", torch.__version__, b, timing, {"mode": "eager"}, flops)

    if "onnxruntime" in peers:
        import numpy as np
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "visual.onnx")
            dummy = inputs[batches[0]]
            try:
                torch.onnx.export(visual, (dummy,), path, input_names=["pixels"], output_names=["embedding"],
                                  dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
                                  opset_version=17, dynamo=False)
                exporter = "torchscript"
            except Exception as error:  # the TorchScript exporter may be gone; the dynamo one needs onnxscript
                print(f"torchscript ONNX export failed ({error}); trying dynamo=True", file=sys.stderr)
                batch_dim = torch.export.Dim("batch", min=1, max=1024)
                torch.onnx.export(visual, (dummy,), path, input_names=["pixels"], output_names=["embedding"],
                                  dynamic_shapes={"x": {0: batch_dim}}, dynamo=True)
                exporter = "dynamo"
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # ORT's workers spin between ops by default: good for wall time on an idle machine, but the spinning
            # counts as CPU time; --ort-no-spin turns it off.
            spinning = not args.ort_no_spin
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            for b in batches:
                feed = {"pixels": inputs[b].numpy()}
                got = session.run(None, feed)[0]
                diff = float(np.abs(got - reference[b]).max())
                timing = time_batches(lambda: session.run(None, feed), args.warmup, args.seconds)
                report(args, "onnxruntime", ort.__version__, b, timing,
                       {"exporter": exporter, "max_abs_diff_vs_torch": diff, "spinning": spinning}, flops)


if __name__ == "__main__":
    main()
