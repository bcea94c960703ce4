#!/bin/bash
# One device call: ViT-L-14 at batch 256, clipserve's CUDA engine (fp16, input resident on the GPU; twice, with
# cuBLASLt's 16 and 128 heuristic candidates timed per GEMM shape, CLIPSERVE_GEMM_TUNING) next to open_clip eager fp16
# and torch.compile max-autotune on the same card in the same run (engine_bench.sh runs out of time before this
# compile when ViT-B-32's comes first). Logs in $OUT/logs.tar.gz; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=/tmp/logs; mkdir -p $OUT $L
source scripts/device/setup.sh > $L/setup.txt
bench() {  # label, then environment assignments
  local label=$1; shift
  env "$@" timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:ViT-L-14 --batch-size 256 \
    --seconds 5 --json 2>> $L/engine.err | sed "s/^/$label /" >> $L/engine.txt
}
bench gemm16 CLIPSERVE_GEMM_TUNING=16
bench gemm128 CLIPSERVE_GEMM_TUNING=128
echo "clipserve $(el)"
timeout 420 python3 scripts/bench_gpu_peers.py --models ViT-L-14 --batches 256 --iterations 10 > $L/peers_l14.log 2>&1
echo "peers rc=$? $(el)"
bench gemm16_after CLIPSERVE_GEMM_TUNING=16
bench gemm128_after CLIPSERVE_GEMM_TUNING=128
tar -czf $OUT/logs.tar.gz -C /tmp logs
python3 scripts/device/engine_table.py $L/engine.txt
grep -h "img/s\|FAILED" $L/peers_l14.log
