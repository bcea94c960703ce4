#!/bin/bash
# One device call: `clipserve verify` on the fixture models and a small random ViT under compute-sanitizer's memcheck
# and racecheck (shared-memory races in our kernels). Full logs under $OUT; the sanitizer summaries last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source scripts/device/setup.sh
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
$CS --version | head -2
for tool in memcheck racecheck; do
  timeout 240 $CS --tool $tool --error-exitcode 9 $BIN verify --fixtures Tests/Fixtures --precision fp16 \
    --model fixtures random:ViT-B-32 --images 1 --concurrency 4 > "$OUT/$tool.log" 2>&1
  echo "== $tool rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race reported|hazard" "$OUT/$tool.log" | sort | uniq -c | head -8
  grep -E "^(PASS|FAIL)|all models passed" "$OUT/$tool.log" | tail -6
done
