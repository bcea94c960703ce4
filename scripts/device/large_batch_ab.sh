#!/bin/bash
# One device call: ViT-L-14 at batch 256, this binary against clipserve-old (both from .device/pair.tar.xz), two rounds
# alternating, then each one's stage profile (`verify --bench-batches 256`). A table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=/tmp/logs; mkdir -p $OUT $L
source scripts/device/setup.sh > $L/setup.txt
for round in 1 2; do for mode in new old; do
  bin=$BIN; [ $mode = old ] && bin=/tmp/clipserve-old
  timeout 150 $bin bench engine --backend cuda --precision fp16 --model random:ViT-L-14 --batch-size 256 --seconds 4 --json 2>/dev/null | sed "s/^/$mode /" >> $L/e.txt
done; done
for mode in new old; do
  bin=$BIN; [ $mode = old ] && bin=/tmp/clipserve-old
  timeout 200 $bin verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 --bench-batches 256 > $L/v_$mode.log 2>&1
  echo "== $mode"; grep -A12 "stage profile" $L/v_$mode.log | head -12
done
python3 scripts/device/engine_table.py $L/e.txt
