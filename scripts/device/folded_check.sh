#!/bin/bash
# One device call for LayerNorm folded into QKV / c_fc / proj (both paths): verify fp16 (--concurrency 16, stage
# profile at batch 1), bf16 and fp32 on fixtures + random ViT-B-32; the small-batch path widened to 512 rows on random
# ViT-B-16, ViT-L-14 and ViT-B-32-plus-256 (several row tiles, widths 768 / 1024 / 896); ViT-B-32 batch 1 alternating
# the small-batch block and the cuBLASLt block, and the binary clipserve-old when .device/pair.tar.xz brings one (the
# commit before, for a same-card comparison), ROUNDS rounds; ViT-L-14 and ViT-B-32 at batch 256 (old binary too); then,
# unless PEERS=0, open_clip eager and torch.compile max-autotune at batch 1. Logs in $OUT/logs.tar.gz; a table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$OUT" $L
source scripts/device/setup.sh > $L/setup.txt
OLD=; [ -x /tmp/clipserve-old ] && OLD=/tmp/clipserve-old  # from .device/pair.tar.xz (setup.sh)
v() {  # v LOG ARGS...: verify, print its verdict lines
  local log=$1; shift
  timeout 200 $BIN verify --devices 0 "$@" > $L/$log.log 2>&1
  echo "== $log rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED|differ from" $L/$log.log | tail -${TAILN:-6}
}
TAILN=7 v verify_fp16 --precision fp16 --images 1 --model fixtures random:ViT-B-32 --concurrency 16 --bench-batches 1
v verify_bf16 --precision bf16 --images 1 --model fixtures random:ViT-B-32
v verify_fp32 --precision fp32 --images 1 --model fixtures
CLIPSERVE_SMALL_BATCH_ROWS=512 v verify_wide --precision fp16 --images 1 --model random:ViT-B-16 random:ViT-L-14 \
  random:ViT-B-32-plus-256 --concurrency 4
for round in $(seq ${ROUNDS:-3}); do
  for mode in on off ${OLD:+old}; do
    rows=64; [ $mode = off ] && rows=0
    bin=$BIN; [ $mode = old ] && bin=$OLD
    CLIPSERVE_SMALL_BATCH_ROWS=$rows timeout 60 $bin bench engine --backend cuda --precision fp16 \
      --model random:ViT-B-32 --batch-size 1 --seconds 3 --json 2>> $L/engine_err.txt | sed "s/^/$mode /" >> $L/engine.txt
  done
done
echo "== batch 1 $(el)"
for model in ViT-L-14 ViT-B-32; do
  for mode in new ${OLD:+old}; do
    bin=$BIN; [ $mode = old ] && bin=$OLD
    timeout 150 $bin bench engine --backend cuda --precision fp16 --model random:$model --batch-size 256 --seconds 4 \
      --json 2>> $L/engine_err.txt | sed "s/^/$mode /" >> $L/engine.txt
  done
done
echo "== batch 256 $(el)"
if [ "${PEERS:-1}" != 0 ]; then
  timeout 300 python3 scripts/bench_gpu_peers.py --models ViT-B-32 --batches 1 --iterations 200 > $L/peers.log 2>&1
  echo "== peers rc=$? $(el)"
  grep -h "img/s\|FAILED" $L/peers.log
fi
grep -A12 "stage profile" $L/verify_fp16.log | tail -12
python3 scripts/device/engine_table.py $L/engine.txt
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
