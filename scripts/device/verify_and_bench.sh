#!/bin/bash
# One device call: verify the CUDA engine against the CPU fp32 engine (fp32, fp16, bf16, concurrency), time it
# device-resident, then time the PyTorch peers on the same card. Full logs under $OUT; a short table last.
# Run from the repository root on the GPU machine with `carry: [".device"]`:
#   bash .device/verify_and_bench.sh [quick|full]
# .device/ holds: clipserve.xz (stripped static binary), lib.tar.xz (libjpeg, libpng16, libwebp, openblas + gfortran,
# quadmath), wheels/ (open_clip, ftfy, wcwidth), bench_gpu_peers.py, this script.
set -u
mode=${1:-full}
D=.device
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -c "import tarfile; tarfile.open('$D/lib.tar.xz').extractall('/tmp/lib')"
export LD_LIBRARY_PATH="/tmp/lib:${LD_LIBRARY_PATH:-}"
export CLIPSERVE_CACHE=/tmp/clipserve-cache
BIN=/tmp/clipserve
[ -x $BIN ] || python3 -c "import lzma,sys; open('$BIN','wb').write(lzma.open('$D/clipserve.xz').read())" && chmod +x $BIN
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
FIX=Tests/Fixtures
fixtures=""
[ -d $FIX/models ] && fixtures="fixtures"
table="$OUT/table.txt"
: > "$table"
step() {  # step NAME TIMEOUT COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name rc=$rc $(( $(date +%s) - t0 ))s" | tee -a "$table"
  grep -E "^(PASS|FAIL)|all models passed|FAILED|error|Error" "$OUT/$name.log" | head -20 | tee -a "$table"
}
if [ "$mode" = quick ]; then
  step verify_fp32 150 $BIN verify --fixtures $FIX --precision fp32 --model $fixtures random:ViT-B-32 random:ViT-H-14 --images 2
  step verify_fp16 150 $BIN verify --fixtures $FIX --precision fp16 --model $fixtures random:ViT-B-32 random:ViT-H-14 --images 2 --concurrency 16 --bench-batches 1,64,256
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $D/wheels/*.whl > "$OUT/pip.log" 2>&1
  PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 step peers_eager 90 python3 $D/bench_gpu_peers.py --models ViT-B-32 ViT-H-14 --batches 1 64 256 --no-compile
elif [ "$mode" = perf ]; then
  step verify_fp16 200 $BIN verify --fixtures $FIX --precision fp16 --model $fixtures random:ViT-B-32 random:ViT-B-16 random:ViT-L-14 random:ViT-H-14 --images 2 --concurrency 64 --bench-batches 1,64,256
  step verify_bf16 90 $BIN verify --fixtures $FIX --precision bf16 --model $fixtures random:ViT-B-16 random:ViT-H-14 --images 1 --bench-batches 256
  step verify_fp32 150 $BIN verify --fixtures $FIX --precision fp32 --model $fixtures random:ViT-B-32 random:ViT-H-14 --images 1
else
  # Budgeted to finish inside one 10-minute device command.
  step verify_fp32 150 $BIN verify --fixtures $FIX --precision fp32 --model $fixtures random:ViT-B-32 random:ViT-B-16 random:ViT-L-14 random:ViT-H-14 --images 1
  step verify_fp16 150 $BIN verify --fixtures $FIX --precision fp16 --model $fixtures random:ViT-B-32 random:ViT-B-16 random:ViT-L-14 random:ViT-H-14 --images 2 --concurrency 64 --bench-batches 1,64,256
  step verify_bf16 60 $BIN verify --fixtures $FIX --precision bf16 --model $fixtures random:ViT-B-32 random:ViT-L-14 --images 1
  step scalar_attention 60 env CLIPSERVE_SCALAR_ATTENTION=1 $BIN verify --fixtures $FIX --precision fp16 --model random:ViT-B-16 --images 1 --bench-batches 256
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $D/wheels/*.whl > "$OUT/pip.log" 2>&1
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
  step peers_eager 60 python3 $D/bench_gpu_peers.py --models ViT-B-32 ViT-B-16 ViT-L-14 --batches 1 64 256 --no-compile
  step peers_compile 100 python3 $D/bench_gpu_peers.py --models ViT-B-32 --batches 256 --compile-batches 256 --iterations 20
fi
echo; echo "==== bench lines ===="
grep -h "bench batch\|^== \|img/s\|attention\|stage\|    [a-z]" "$OUT"/verify_fp16.log "$OUT"/scalar_attention.log "$OUT"/peers_*.log 2>/dev/null | tail -120
echo; echo "==== table ===="; cat "$table"
