#!/usr/bin/env python3
"""Prints `clipserve bench engine --json` and `clipserve bench runtime --json` results as a table, one row per line of
the files given.

Each line is `LABEL {json}` (the device scripts prefix every run with its mode); lines that are not JSON results,
such as warnings, are skipped. A runtime point over the real engine shows the GPU's utilisation (NVML), one over the
simulated device how busy that device was. Usage: python3 engine_table.py FILE...
"""
import json
import sys


def engine_row(label, d):
    return (f"{label:8s} {d['model']:16s} b{d['batch_size']:<5d} {d['images_per_second']:9.0f} img/s  "
            f"p50 {d['p50_ms']:.3f} ms  p99 {d['p99_ms']:.3f} ms")


def runtime_row(label, d):
    gpu, busy = d.get("gpu_utilization"), d.get("device_busy")
    device = f"GPU {100 * gpu:5.1f}%" if gpu is not None else (f"sim {100 * busy:5.1f}%" if busy is not None else "")
    queue, batch = d.get("mean_queue_ms"), d.get("mean_batch_ms")
    split = f"  queue {queue:4.1f}  batch {batch:4.1f} ms" if queue is not None and batch is not None else ""
    latency, admission, answer = d.get("mean_latency_ms"), d.get("mean_admission_ms"), d.get("mean_answer_ms")
    resume = d.get("mean_resume_ms", 0.0)
    if latency is not None and admission is not None and answer is not None:
        # mean latency = admission (the batcher's lock) + answer (queue, batch, bookkeeping) + resume (until the
        # continuation is resumed) + the rest (until the client runs again)
        split += (f"  mean {latency:4.1f} = lock {admission:4.1f} + answer {answer:4.1f} + resume {resume:4.1f}"
                  f" + rest {latency - admission - answer - resume:4.1f} ms")
    return (f"{label:14s} c{d['concurrency']:<5d} {d['images_per_second']:7.0f} img/s  p50 {d['p50_ms']:5.1f}  "
            f"p99 {d['p99_ms']:5.1f} ms  batch {d['mean_batch']:5.1f}  cores {d['cpu_cores']:4.2f}  {device}{split}")


for path in sys.argv[1:]:
    for line in open(path):
        label, _, rest = line.strip().partition(" ")
        if not rest.startswith("{"):
            continue
        d = json.loads(rest)
        print(runtime_row(label, d) if "concurrency" in d else engine_row(label, d))
