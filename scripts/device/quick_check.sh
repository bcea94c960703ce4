#!/bin/bash
# One device call after a kernel change: accuracy (verify fp16 and bf16, head widths 64 and 80, sequence lengths
# 50 to 257), engine-only throughput of the main shapes, and the ViT-L-14 stage profile. Logs packed into
# $OUT/logs.tar.gz; a short table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$OUT" $L
source scripts/device/setup.sh > $L/setup.txt
timeout 200 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 random:ViT-B-16 \
  random:ViT-L-14 random:ViT-H-14 --concurrency 16 > $L/verify_fp16.log 2>&1
echo "== verify fp16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_fp16.log
timeout 100 $BIN verify --precision bf16 --devices 0 --images 1 --model fixtures random:ViT-L-14 > $L/verify_bf16.log 2>&1
echo "== verify bf16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_bf16.log
timeout 100 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 --bench-batches 256 > $L/profile_l14.log 2>&1
grep -A12 "stage profile" $L/profile_l14.log
for spec in "ViT-B-32 1,8,64,256,1024" "ViT-B-16 1,8,64,256" "ViT-L-14 1,8,64,256"; do
  set -- $spec
  timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:$1 --batch-size $2 --seconds 3 --json \
    > $L/engine_$1.jsonl 2> $L/engine_$1.err
done
echo "== engine $(el)"
cat $L/engine_*.jsonl | python3 -c "
import json,sys
for l in sys.stdin:
    if l.startswith('{'): d=json.loads(l); print(f\"{d['model']:16s} b{d['batch_size']:<5d} {d['images_per_second']:10.1f} img/s  p50 {d['p50_ms']:.3f} ms\")"
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
