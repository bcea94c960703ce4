#!/usr/bin/env python3
"""Decode + preprocess throughput of PIL + open_clip's eval transform, one thread.

The counterpart of `clipserve bench preprocess`: the same files are read into memory first, then each iteration
does `Image.open(BytesIO(bytes))` and open_clip's `image_transform(size, is_train=False)` (Resize, CenterCrop,
convert('RGB'), ToTensor, Normalize), which is what open_clip runs per image.

    python scripts/bench_preprocess_pil.py DIR [--seconds 5] [--size 224] [--resize-mode shortest] [--json]
"""

import argparse
import io
import json
import os
import sys
import time

import torch
from PIL import Image
from open_clip.transform import image_transform


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of JPEG/PNG/WebP files")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--resize-mode", default="shortest", choices=["shortest", "longest", "squash"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(1)
    transform = image_transform(args.size, is_train=False, resize_mode=args.resize_mode)
    signatures = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
    files = []
    for name in sorted(os.listdir(args.images)):
        path = os.path.join(args.images, name)
        if not os.path.isfile(path):
            continue
        data = open(path, "rb").read()
        if data.startswith(signatures) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            files.append((name, data))

    usable, rejected = [], []
    for name, data in files:  # warm-up pass; files PIL cannot preprocess are skipped
        try:
            transform(Image.open(io.BytesIO(data)))
            usable.append(data)
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            rejected.append(f"{name}: {error}")
    if not usable:
        print(f"no usable images in {args.images}: {rejected}", file=sys.stderr)
        return 1

    count = 0
    cpu_start = time.thread_time()  # CPU time: the fair single-thread comparison on a shared machine
    start = time.perf_counter()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        transform(Image.open(io.BytesIO(usable[count % len(usable)])))
        count += 1
    elapsed = time.perf_counter() - start
    cpu_ms = 1000 * (time.thread_time() - cpu_start) / count
    rate = count / elapsed
    if args.json:
        print(json.dumps({"images_per_second": rate, "images": count, "seconds": elapsed, "threads": 1,
                          "files": len(usable), "rejected": len(rejected), "size": args.size,
                          "resize_mode": args.resize_mode, "ms_per_image_per_thread": 1000 * elapsed / count,
                          "cpu_ms_per_image": cpu_ms, "images_per_cpu_second": 1000 / cpu_ms},
                         sort_keys=True))
    else:
        print(f"files: {len(usable)} ({len(rejected)} rejected), threads: 1, size: {args.size}, mode: {args.resize_mode}")
        for line in rejected:
            print(f"  rejected {line}")
        print(f"{rate:.1f} images/s ({count} images in {elapsed:.2f} s, {1000 * elapsed / count:.3f} ms/image); "
              f"CPU {cpu_ms:.3f} ms/image = {1000 / cpu_ms:.1f} images/CPU-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
