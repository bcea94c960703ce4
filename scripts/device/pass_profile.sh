#!/bin/bash
# One device call: the passes between ViT-L-14's GEMMs timed on their own (pass_bench.cu, built here with nvcc:
# bias + GELU and LayerNorm as shipped, variants, and copies of the same bytes as the floor), then the engine's eager
# stage profile of ViT-L-14 at batch 256 and its engine-only images/s. Logs in $OUT/logs.tar.gz; tables last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=/tmp/logs; mkdir -p $OUT $L
source scripts/device/setup.sh > $L/setup.txt
nvcc -O3 -arch=sm_90a -std=c++17 -DCLIPSERVE_F16 -o /tmp/pass_bench scripts/device/pass_bench.cu > $L/nvcc.txt 2>&1
echo "== nvcc rc=$? $(el)"; tail -5 $L/nvcc.txt
[ -x /tmp/pass_bench ] && timeout 240 /tmp/pass_bench > $L/pass_bench.txt 2>&1; echo "== pass_bench rc=$? $(el)"
timeout 150 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 --bench-batches 256 \
  > $L/profile.log 2>&1; echo "== profile rc=$? $(el)"
timeout 100 $BIN bench engine --backend cuda --precision fp16 --model random:ViT-L-14 --batch-size 256,256 --seconds 3 \
  --json 2>> $L/engine.err | sed "s/^/l14 /" > $L/engine.txt; echo "== engine rc=$? $(el)"
tar -czf $OUT/logs.tar.gz -C /tmp logs
cat $L/pass_bench.txt
grep -A12 "stage profile" $L/profile.log | head -13
python3 scripts/device/engine_table.py $L/engine.txt 2>/dev/null || cat $L/engine.txt
