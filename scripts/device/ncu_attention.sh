#!/bin/bash
# One device call: Nsight Compute on one launch of the wgmma attention (ViT-L-14, batch 256, eager launches so ncu
# sees each kernel): throughput, pipe utilisation and the warps' stall reasons, then the per-instruction stall samples
# as CSV (SASS). Both files land in $OUT.
set -u
D=.device; OUT=${OUT:-/tmp/out}; mkdir -p $OUT
source scripts/device/setup.sh > /dev/null
export CLIPSERVE_CUDA_GRAPHS=0
NCU=/usr/local/cuda/bin/ncu
K=${KERNEL:-attention_wgmma_d64_f16}
RUN="$BIN bench engine --backend cuda --precision fp16 --model random:ViT-L-14 --batch-size 256 --seconds 1"
M=""
for r in barrier long_scoreboard wait math_pipe_throttle short_scoreboard mio_throttle lg_throttle membar sleeping \
    dispatch_stall no_instruction selected not_selected tex_throttle drain branch_resolving imc_miss misc; do
  M="$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
done
M="${M#,},sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active"
M="$M,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active"
M="$M,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum"
timeout 300 $NCU --kernel-name $K --launch-skip 30 --launch-count 1 --metrics $M $RUN > $OUT/ncu_metrics.txt 2>&1
timeout 300 $NCU --kernel-name $K --launch-skip 30 --launch-count 1 --section SourceCounters --section WarpStateStats \
  --page source --print-source sass --csv $RUN > $OUT/ncu_source.csv 2>&1
xz -9 $OUT/ncu_source.csv
grep -E "ratio|pct|duration" $OUT/ncu_metrics.txt | sort -k3 -n -r
