#!/bin/bash
# One device call for the fused MLP GEMM (gemm_wgmma.cu) and the 16-bit residual stream: verify in fp16 (fixtures,
# random ViT-B-32, ViT-B-16, ViT-L-14, each also at a batch that takes the large-batch kernels) and bf16 (ViT-L-14);
# then batch 256 of each model under each MODE, ROUNDS rounds alternating, and ViT-L-14's stage profile per mode.
# A mode is <c_fc kernel>/<residual>: cublaslt, wgmma (at every batch) or default (the engine's choice)
# (CLIPSERVE_MLP_GEMM), f32 or f16 (CLIPSERVE_RESIDUAL). Logs in $OUT/logs.tar.xz; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
ROUNDS=${ROUNDS:-2}; MODELS=${MODELS:-ViT-L-14 ViT-B-16 ViT-B-32}
MODES=${MODES:-cublaslt/f32 cublaslt/f16 default/f16}
timeout 300 $BIN verify --precision fp16 --devices 0 --model fixtures random:ViT-B-32 random:ViT-B-16 random:ViT-L-14 > $L/verify_fp16.log 2>&1
echo "verify fp16 rc=$? $(el)"
timeout 150 $BIN verify --precision bf16 --devices 0 --model random:ViT-L-14 > $L/verify_bf16.log 2>&1
echo "verify bf16 rc=$? $(el)"
run_mode() {  # mode, command...
  local mode=$1; shift
  CLIPSERVE_MLP_GEMM=${mode%/*} CLIPSERVE_RESIDUAL=${mode#*/} "$@"
}
for round in $(seq $ROUNDS); do for model in $MODELS; do for mode in $MODES; do
  run_mode $mode timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:$model \
    --batch-size 256 --seconds 3 --json 2>/dev/null | sed "s|^|$mode |" >> $L/e.txt
done; done; done
echo "bench $(el)"
for mode in $MODES; do
  run_mode $mode timeout 200 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 \
    --bench-batches 256 > $L/profile_${mode/\//_}.log 2>&1
done
echo "profiles $(el)"
for f in $L/verify_fp16.log $L/verify_bf16.log; do grep -E "^(PASS|FAIL)|batch of [0-9]+ \(the set|engine ready" $f; done
for mode in $MODES; do
  echo "== $mode: $(grep -E '^(PASS|FAIL)' $L/profile_${mode/\//_}.log)"; grep -A14 "stage profile" $L/profile_${mode/\//_}.log
done
tar -C $OUT -cJf $OUT/logs.tar.xz logs && rm -rf $L
python3 scripts/device/engine_table.py <(tar -xJOf $OUT/logs.tar.xz logs/e.txt)
