#!/usr/bin/env python3
"""Prints `clipserve bench runtime --json` results as a table, one row per line of the files given.

Each line is `LABEL {json}` (the device scripts prefix every run with its setting); other lines are skipped. A point
over the real engine shows the GPU's utilisation (NVML), one over the simulated device how busy that device was.
Usage: python3 runtime_table.py FILE...
"""
import json
import sys

for path in sys.argv[1:]:
    for line in open(path):
        label, _, rest = line.strip().partition(" ")
        if not rest.startswith("{"):
            continue
        d = json.loads(rest)
        gpu, busy = d.get("gpu_utilization"), d.get("device_busy")
        device = f"GPU {100 * gpu:5.1f}%" if gpu is not None else (f"sim {100 * busy:5.1f}%" if busy is not None else "")
        queue, batch = d.get("mean_queue_ms"), d.get("mean_batch_ms")
        split = f"  queue {queue:4.1f}  batch {batch:4.1f} ms" if queue is not None and batch is not None else ""
        print(f"{label:14s} c{d['concurrency']:<5d} {d['images_per_second']:7.0f} img/s  p50 {d['p50_ms']:5.1f}  "
              f"p99 {d['p99_ms']:5.1f} ms  batch {d['mean_batch']:5.1f}  cores {d['cpu_cores']:4.2f}  {device}{split}")
