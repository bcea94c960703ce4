#!/bin/bash
# One device call for ViT-B-32 batch-1 latency: verify (fixtures + random ViT-B-32, fp16 with --concurrency 16, and
# bf16) with the small-batch block on, then `bench engine` at batch 1 alternating three rounds of the block (on, the
# default) and the cuBLASLt block (off, CLIPSERVE_SMALL_BATCH_ROWS=0); then, unless PEERS=0, open_clip eager and
# torch.compile max-autotune at batch 1 on the same card. Logs in $OUT/logs.tar.gz; a table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$OUT" $L
source scripts/device/setup.sh > $L/setup.txt
timeout 120 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 --concurrency 16 \
  --bench-batches 1 > $L/verify.log 2>&1
echo "== verify rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED|concurrency" $L/verify.log | head -12
timeout 90 $BIN verify --precision bf16 --devices 0 --images 1 --model fixtures random:ViT-B-32 > $L/verify_bf16.log 2>&1
echo "== verify bf16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_bf16.log | tail -6
for round in 1 2 3; do
  for mode in on off; do
    rows=64; [ $mode = off ] && rows=0
    CLIPSERVE_SMALL_BATCH_ROWS=$rows timeout 60 $BIN bench engine --backend cuda \
      --precision fp16 --model random:ViT-B-32 --batch-size 1 --seconds 3 --json 2> $L/engine_err_$mode.txt \
      | sed "s/^/$mode /" >> $L/engine.txt
  done
done
echo "== engine $(el)"
if [ "${PEERS:-1}" != 0 ]; then
  timeout 300 python3 scripts/bench_gpu_peers.py --models ViT-B-32 --batches 1 --iterations 200 > $L/peers.log 2>&1
  echo "== peers rc=$? $(el)"
  grep -h "img/s\|FAILED" $L/peers.log
fi
python3 scripts/device/engine_table.py $L/engine.txt
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
