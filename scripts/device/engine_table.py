#!/usr/bin/env python3
"""Prints `clipserve bench engine --json` results as a table, one row per line of the files given.

Each line is `LABEL {json}` (the device scripts prefix every run with its mode); lines that are not JSON results,
such as warnings, are skipped. Usage: python3 engine_table.py FILE...
"""
import json
import sys

for path in sys.argv[1:]:
    for line in open(path):
        label, _, rest = line.strip().partition(" ")
        if not rest.startswith("{"):
            continue
        d = json.loads(rest)
        print(f"{label:8s} {d['model']:16s} b{d['batch_size']:<5d} {d['images_per_second']:9.0f} img/s  "
              f"p50 {d['p50_ms']:.3f} ms  p99 {d['p99_ms']:.3f} ms")
