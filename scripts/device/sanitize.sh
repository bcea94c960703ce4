#!/bin/bash
# One device call: `clipserve verify` under compute-sanitizer. memcheck on every kernel; synccheck on clipserve's own
# kernels (cuBLASLt's `nvjet` kernels excluded); racecheck on everything, listing the kernels any hazard was reported
# in. (Racecheck with a kernel filter, to skip cuBLASLt's kernels, ends in "Internal Sanitizer Error: failed to
# handle a hardware exception" with compute-sanitizer 2025.x on sm_90, so racecheck instruments every kernel.)
# MODELS=... runs the three tools on those models instead (verify's large-batch check, at least 44 images for 12
# heads on an H100, takes the wgmma attention); TOOLS="memcheck racecheck" picks among them. Logs packed into $OUT/logs.tar.gz; the summaries last.
set -u
D=.device
RESULTS=${OUT:-/tmp/out}
OUT=/tmp/logs
mkdir -p "$RESULTS" "$OUT"
source scripts/device/setup.sh > "$OUT/setup.txt"
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
$CS --version | head -2
run() {  # name, models, then compute-sanitizer options
  local name=$1 models=$2; shift 2
  timeout 280 $CS "$@" $BIN verify --fixtures Tests/Fixtures --precision fp16 --model $models --images 1 \
    > "$OUT/$name.log" 2>&1
  echo "== $name rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/$name.log"
  grep -oE "(Read|Write) access at [A-Za-z0-9_]+" "$OUT/$name.log" | awk '{print "   hazard in", $4}' | sort | uniq -c
  grep -E "^(PASS|FAIL)|all models passed" "$OUT/$name.log" | tail -3
}
if [ -n "${MODELS:-}" ]; then  # e.g. MODELS=random:ViT-B-16: the tools (TOOLS, default all three) on those models only
  TOOLS=${TOOLS:-memcheck synccheck racecheck}
  [[ " $TOOLS " == *" memcheck "* ]] && run memcheck "$MODELS" --tool memcheck --error-exitcode 9
  [[ " $TOOLS " == *" synccheck "* ]] && run synccheck_own "$MODELS" --tool synccheck --kernel-name-exclude kns=nvjet --error-exitcode 9
  [[ " $TOOLS " == *" racecheck "* ]] && run racecheck "$MODELS" --tool racecheck --print-limit 2000
else
  run memcheck "fixtures random:ViT-B-32" --tool memcheck --error-exitcode 9
  run synccheck_own "fixtures random:ViT-B-32" --tool synccheck --kernel-name-exclude kns=nvjet --error-exitcode 9
  run racecheck_b32 random:ViT-B-32 --tool racecheck --print-limit 2000
  run racecheck_fixtures fixtures --tool racecheck --print-limit 2000
fi
tar -czf "$RESULTS/logs.tar.gz" -C /tmp logs
