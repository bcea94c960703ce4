#!/bin/bash
# One device call: verify the small-batch block where it is widened to 512 rows (ViT-B-32-plus-256: width 896, MLP
# 3584 split over a cluster of 7, two row tiles; and ViT-B-32), fp16 with --concurrency 16, then the default verify
# (fixtures and ViT-B-32). Logs in $OUT/logs.tar.gz.
set -u
D=.device
OUT=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$OUT" $L
source scripts/device/setup.sh > $L/setup.txt
CLIPSERVE_SMALL_BATCH_ROWS=512 timeout 200 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-B-32-plus-256 random:ViT-B-32 --concurrency 16 > $L/v1.log 2>&1
echo "== verify 512 rows rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED|concurrency" $L/v1.log | head -8
timeout 120 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 --concurrency 16 > $L/v2.log 2>&1
echo "== verify default rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/v2.log | tail -6
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
