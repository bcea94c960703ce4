#!/bin/bash
# One device call after an engine change: accuracy of the new build (verify fp16 and bf16, head widths 64 and 80),
# then engine-only throughput and stage profiles with the change (defaults) and without it (environment in
# $BASELINE_ENV, by default CLIPSERVE_GEMM_TUNING=0), alternating on the same card.
# Logs packed into $OUT/logs.tar.gz; a short table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$OUT" $L
source scripts/device/setup.sh > $L/setup.txt
BASELINE_ENV=${BASELINE_ENV:-CLIPSERVE_GEMM_TUNING=0}
timeout 200 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 random:ViT-B-16 \
  random:ViT-L-14 random:ViT-H-14 --concurrency 16 > $L/verify_fp16.log 2>&1
echo "== verify fp16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_fp16.log
timeout 100 $BIN verify --precision bf16 --devices 0 --images 1 --model fixtures random:ViT-L-14 > $L/verify_bf16.log 2>&1
echo "== verify bf16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_bf16.log
for variant in new base new base; do
  envs=""; [ $variant = base ] && envs="$BASELINE_ENV"
  for spec in "ViT-B-32 1,8,64,256,1024" "ViT-L-14 1,64,256"; do
    set -- $spec
    env $envs timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:$1 --batch-size $2 --seconds 2 --json \
      >> $L/engine_${variant}.jsonl 2>> $L/engine_${variant}.err
  done
  echo "== engine $variant $(el)"
done
for variant in new base; do
  envs=""; [ $variant = base ] && envs="$BASELINE_ENV"
  env $envs timeout 100 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 --bench-batches 256 > $L/profile_l14_$variant.log 2>&1
  env $envs timeout 100 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-B-32 --bench-batches 1 > $L/profile_b32b1_$variant.log 2>&1
done
echo "== profiles $(el)"
for variant in new base; do
  echo "==== engine ($variant; mean of the runs)"
  python3 -c "
import json,collections
r=collections.defaultdict(list)
for l in open('$L/engine_$variant.jsonl'):
    if l.startswith('{'): d=json.loads(l); r[(d['model'],d['batch_size'])].append((d['images_per_second'],d['p50_ms']))
for k,v in r.items(): print(f\"{k[0]:16s} b{k[1]:<5d} \" + '  '.join(f'{a:9.1f} img/s p50 {b:.3f} ms' for a,b in v))"
done
for f in $L/profile_*.log; do echo "==== $(basename $f)"; grep -A12 "stage profile" $f | head -13; done
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
