#!/bin/bash
# One device call: the wgmma attention alone (attention_check.cu, built here with nvcc) against its fp64 reference,
# then under compute-sanitizer racecheck, memcheck and synccheck. Logs in $OUT; a summary last.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
nvcc -O3 -gencode arch=compute_90a,code=sm_90a -std=c++17 -DCLIPSERVE_F16 -o /tmp/attention_check scripts/device/attention_check.cu > $OUT/nvcc.txt 2>&1
echo "== nvcc rc=$?"; tail -5 $OUT/nvcc.txt
timeout 120 /tmp/attention_check > $OUT/plain.txt 2>&1; echo "== plain rc=$?"
for tool in racecheck memcheck synccheck; do
  timeout 240 $CS --tool $tool --print-limit 20 /tmp/attention_check > $OUT/$tool.txt 2>&1; echo "== $tool rc=$?"
done
cat $OUT/plain.txt
for tool in racecheck memcheck synccheck; do echo "-- $tool"; grep -E "SUMMARY|PASS|FAIL|Error|hazard" $OUT/$tool.txt | head -12; done
