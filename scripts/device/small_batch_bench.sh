#!/bin/bash
# Builds scripts/device/small_batch_bench.cu with the GPU machine's nvcc and runs it: the small-batch kernels timed
# alone, chained, and phase by phase (see that file). The nvcc log goes to $OUT/nvcc.log.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvcc -O3 -arch=sm_90 -std=c++17 -DCLIPSERVE_F16 -o /tmp/sbb scripts/device/small_batch_bench.cu > $OUT/nvcc.log 2>&1 || { cat $OUT/nvcc.log | head -40; exit 1; }
nvidia-smi --query-gpu=name --format=csv,noheader
/tmp/sbb
