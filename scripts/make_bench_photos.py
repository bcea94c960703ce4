#!/usr/bin/env python3
"""Writes the 20 photo-sized JPEGs (640x480 and 480x640, quality 75-93, every fifth progressive) that
BENCHMARKS.md's preprocessing figures were measured on: smooth gradients, noise and filled ellipses, seeded.

Usage: python3 scripts/make_bench_photos.py OUT_DIR   (needs numpy and Pillow)
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/photos")
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)
for i in range(20):
    h, w = (480, 640) if i % 3 else (640, 480)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * (i + 1)) % 256, (y * 2 + i * 9) % 256, ((x + y) // 3) % 256], -1).astype(np.float32)
    base += rng.normal(0, 12, base.shape)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.integers(0, w - 50), rng.integers(0, h - 50)
        d.ellipse([x0, y0, x0 + rng.integers(20, 200), y0 + rng.integers(20, 200)],
                  fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    im.save(out / f"photo{i:02d}.jpg", quality=int(75 + i % 4 * 6), progressive=(i % 5 == 0))
