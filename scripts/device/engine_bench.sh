#!/bin/bash
# One device call: clipserve's CUDA engine (`bench engine`, fp16, input resident on the GPU) and the PyTorch peers
# (open_clip eager fp16, torch.compile max-autotune) on the same card, in the same run. Full logs under $OUT.
# Run from the repository root on the GPU machine with `carry: [".device"]` (see scripts/device/prepare.sh).
set -u
D=.device
RESULTS=${OUT:-/tmp/out}
OUT=/tmp/logs  # packed into $RESULTS/logs.tar.gz at the end (only a few files come back from the device)
mkdir -p "$RESULTS" "$OUT"
source scripts/device/setup.sh
start=$(date +%s)
left() { echo $(( ${BUDGET:-570} - ($(date +%s) - start) )); }
for spec in "ViT-B-32 1,8,64,256,1024" "ViT-B-16 1,8,64,256" "ViT-L-14 1,8,64,256"; do
  set -- $spec
  timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:$1 --batch-size $2 --seconds 3 --json \
    > "$OUT/engine_$1.jsonl" 2> "$OUT/engine_$1.err"
  echo "== engine $1 rc=$? t=$(( $(date +%s) - start ))s"
done
timeout 150 python3 scripts/bench_gpu_peers.py --models ViT-B-32 ViT-B-16 ViT-L-14 --batches 1 8 64 256 --no-compile \
  > "$OUT/peers_eager.log" 2>&1
echo "== eager rc=$? t=$(( $(date +%s) - start ))s"
timeout $(left) python3 scripts/bench_gpu_peers.py --models ViT-B-32 --batches 1 256 --iterations 50 > "$OUT/peers_compile_b32.log" 2>&1
echo "== compile B-32 rc=$? t=$(( $(date +%s) - start ))s"
[ "$(left)" -gt 60 ] && timeout $(left) python3 scripts/bench_gpu_peers.py --models ViT-L-14 --batches 256 --iterations 10 \
  > "$OUT/peers_compile_l14.log" 2>&1
echo "== compile L-14 rc=$? t=$(( $(date +%s) - start ))s"
echo "==== clipserve"
cat "$OUT"/engine_*.jsonl | python3 -c "
import json,sys
for l in sys.stdin:
    d=json.loads(l); print(f\"{d['model']:10s} b{d['batch_size']:<5d} {d['images_per_second']:10.1f} img/s  p50 {d['p50_ms']:.3f} ms  p99 {d['p99_ms']:.3f} ms\")"
echo "==== peers"
grep -h "img/s\|FAILED" "$OUT"/peers_*.log
tar -czf "$RESULTS/logs.tar.gz" -C /tmp logs
