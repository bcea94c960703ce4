#!/bin/bash
# One device call for the wgmma attention (attention_wgmma.cu): verify in fp16 (fixtures, random ViT-B-32, ViT-B-16,
# ViT-L-14; each also at a batch large enough to take it) and bf16 (ViT-L-14); batch 256 with it and without it
# (CLIPSERVE_WGMMA_ATTENTION=0, the mma.sync kernel) and, when .device/pair.tar.xz carries one, clipserve-old's,
# ROUNDS rounds alternating; ViT-L-14's stage profile each way.
# Logs under $OUT/logs; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
ROUNDS=${ROUNDS:-2}; MODELS=${MODELS:-ViT-L-14 ViT-B-16 ViT-B-32}
timeout 300 $BIN verify --precision fp16 --devices 0 --model fixtures random:ViT-B-32 random:ViT-B-16 random:ViT-L-14 > $L/verify_fp16.log 2>&1
echo "verify fp16 rc=$? $(el)"
timeout 150 $BIN verify --precision bf16 --devices 0 --model random:ViT-L-14 > $L/verify_bf16.log 2>&1
echo "verify bf16 rc=$? $(el)"
MODES="wgmma mma"; [ -x /tmp/clipserve-old ] && MODES="wgmma old mma"  # old: the binary packed with this one
for round in $(seq $ROUNDS); do for model in $MODELS; do for mode in $MODES; do
  flag=1; [ $mode = mma ] && flag=0
  bin=$BIN; [ $mode = old ] && bin=/tmp/clipserve-old
  CLIPSERVE_WGMMA_ATTENTION=$flag timeout 120 $bin bench engine --backend cuda --precision fp16 --model random:$model \
    --batch-size 256 --seconds 3 --json 2>/dev/null | sed "s/^/$mode /" >> $L/e.txt
done; done; done
echo "bench $(el)"
for mode in $MODES; do
  flag=1; [ $mode = mma ] && flag=0
  bin=$BIN; [ $mode = old ] && bin=/tmp/clipserve-old
  CLIPSERVE_WGMMA_ATTENTION=$flag timeout 200 $bin verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 \
    --bench-batches 256 > $L/profile_$mode.log 2>&1
done
echo "profiles $(el)"
for f in $L/verify_fp16.log $L/verify_bf16.log; do grep -E "^(PASS|FAIL)|batch of [0-9]+ \(the set|engine ready" $f; done
for mode in $MODES; do echo "== stage profile, $mode"; grep -A12 "stage profile" $L/profile_$mode.log | grep -i "attention\|stage profile"; done
python3 scripts/device/engine_table.py $L/e.txt
