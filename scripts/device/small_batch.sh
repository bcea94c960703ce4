#!/bin/bash
# One device call for the small-batch block (Kernels/small_batch.cu): verify with the path on (default bound, and
# widened to 512 rows so ViT-B-16 and ViT-L-14 at batch 1 take it too: several row tiles, K = 1024, bf16), the stage
# profile of ViT-B-32 at batch 1 with and without it, then `bench engine` at small batches with the path on, off
# (CLIPSERVE_SMALL_BATCH_ROWS=0), widened, and without programmatic dependent launch (CLIPSERVE_PDL=0), alternating.
# With PEERS=1, torch.compile max-autotune of ViT-B-32 at batch 1 last. Logs in $OUT/logs.tar.gz; a table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$OUT" $L
source scripts/device/setup.sh > $L/setup.txt
timeout 150 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 random:ViT-B-16 \
  random:ViT-L-14 --concurrency 16 > $L/verify_fp16.log 2>&1
echo "== verify fp16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED|mismatch" $L/verify_fp16.log | head -12
CLIPSERVE_SMALL_BATCH_ROWS=512 timeout 150 $BIN verify --precision fp16 --devices 0 --images 1 \
  --model random:ViT-B-16 random:ViT-L-14 --concurrency 16 > $L/verify_wide_fp16.log 2>&1
echo "== verify 512 rows fp16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED|mismatch" $L/verify_wide_fp16.log | head
CLIPSERVE_SMALL_BATCH_ROWS=512 timeout 120 $BIN verify --precision bf16 --devices 0 --images 1 \
  --model fixtures random:ViT-L-14 > $L/verify_wide_bf16.log 2>&1
echo "== verify 512 rows bf16 rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_wide_bf16.log | head
for rows in 128 0; do
  CLIPSERVE_SMALL_BATCH_ROWS=$rows timeout 60 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-B-32 \
    --bench-batches 1 > $L/profile_b32_rows$rows.log 2>&1
  echo "== profile rows=$rows"; grep -A14 "stage profile" $L/profile_b32_rows$rows.log
done
run() {  # label, env..., then model and batches
  local label=$1; shift
  env "$@" timeout 90 $BIN bench engine --backend cuda --precision fp16 --model random:$MODEL --batch-size $BATCHES \
    --seconds 2 --json 2> $L/engine_err_$label.txt | sed "s/^/$label /" >> $L/engine.txt
}
for round in 1 2; do
  MODEL=ViT-B-32 BATCHES=1,2,4,8
  run on CLIPSERVE_SMALL_BATCH_ROWS=128
  run off CLIPSERVE_SMALL_BATCH_ROWS=0
  run nopdl CLIPSERVE_SMALL_BATCH_ROWS=128 CLIPSERVE_PDL=0
  run wide CLIPSERVE_SMALL_BATCH_ROWS=512
done
for m in ViT-B-16 ViT-L-14; do
  MODEL=$m BATCHES=1
  run off CLIPSERVE_SMALL_BATCH_ROWS=0
  run wide CLIPSERVE_SMALL_BATCH_ROWS=512
done
echo "== engine $(el)"
if [ "${PEERS:-0}" = 1 ]; then
  timeout 300 python3 scripts/bench_gpu_peers.py --models ViT-B-32 --batches 1 --iterations 200 > $L/peers_b32_b1.log 2>&1
  echo "== peers rc=$? $(el)"; grep -h "img/s\|FAILED" $L/peers_b32_b1.log
fi
python3 scripts/device/engine_table.py $L/engine.txt
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
