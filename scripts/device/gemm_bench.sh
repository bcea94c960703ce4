#!/bin/bash
# One device call: gemm_check.cu (the wgmma c_fc + activation kernel against cuBLASLt's c_fc and the bias_gelu pass:
# element-by-element check, then short and sustained timings at ViT-L-14's and ViT-B-16's batch-256 MLP shapes), with
# nvidia-smi logging the SM clock and power. Uses .device/gemm_check when it was built beforehand (with the nvcc line
# in gemm_check.cu's header), else builds it here. Logs in $OUT; the harness's report last.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader | tee $OUT/gpu.txt
BIN=/tmp/gemm_check
if [ -x .device/gemm_check ]; then
  cp .device/gemm_check $BIN
else
  nvcc -O3 -gencode arch=compute_90a,code=sm_90a -std=c++17 -DCLIPSERVE_F16 -DCLIPSERVE_GEMM_VARIANTS \
    -o $BIN scripts/device/gemm_check.cu -lcublasLt > $OUT/nvcc.txt 2>&1 || { echo "nvcc failed"; tail -20 $OUT/nvcc.txt; exit 1; }
fi
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv,noheader -lms 250 > $OUT/smi.csv &
smi=$!
timeout 300 $BIN ${ARGS:-} > $OUT/gemm_check.txt 2>&1; rc=$?
kill $smi
echo "rc=$rc"
cat $OUT/gemm_check.txt
# SANITIZE=1: the kernels with and without clusters on small shapes (--sanitize) under compute-sanitizer racecheck,
# memcheck and synccheck (TOOLS to choose).
if [ "${SANITIZE:-0}" = 1 ]; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  for tool in ${TOOLS:-racecheck memcheck synccheck}; do
    timeout 240 $CS --tool $tool --print-limit 20 $BIN --sanitize > $OUT/$tool.txt 2>&1; echo "== $tool rc=$?"
    grep -E "SUMMARY|PASS|FAIL|rror|hazard|cluster" $OUT/$tool.txt | head -12
  done
fi
# NCU=1: Nsight Compute on the shipped kernel's launch at ViT-L-14's shape (the third in --check mode): the warps'
# stall reasons, pipe use and the per-instruction stall samples (SASS, CSV, compressed) in $OUT.
if [ "${NCU:-0}" = 1 ]; then
  NCU_BIN=/usr/local/cuda/bin/ncu
  M=""
  for r in barrier long_scoreboard wait math_pipe_throttle short_scoreboard mio_throttle lg_throttle membar sleeping \
      dispatch_stall no_instruction selected not_selected drain branch_resolving misc; do
    M="$M,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
  done
  M="${M#,},sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active"
  M="$M,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,lts__t_sectors.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed,gpu__time_duration.sum"
  timeout 200 $NCU_BIN --kernel-name ${KERNEL:-gemm_activation_f16} --launch-skip 2 --launch-count 1 --metrics $M $BIN --check > $OUT/ncu_metrics.txt 2>&1
  timeout 200 $NCU_BIN --kernel-name ${KERNEL:-gemm_activation_f16} --launch-skip 2 --launch-count 1 --section SourceCounters \
    --page source --print-source sass --csv $BIN --check > $OUT/ncu_source.csv 2>&1
  xz -9 $OUT/ncu_source.csv
  grep -E "ratio|pct|duration" $OUT/ncu_metrics.txt | sort -k3 -n -r | head -30
fi
