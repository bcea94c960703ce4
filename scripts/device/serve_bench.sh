#!/bin/bash
# One device call: re-verify the CUDA engine on the fixtures, then `clipserve serve --backend cuda` under
# `clipserve bench serve` with the fixture JPEGs at concurrency 1, 16, 64 and 256, next to engine-only numbers and the
# GPU and CPU utilisation seen meanwhile. Full logs under $OUT; a short table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source scripts/device/setup.sh
start=$(date +%s)
[ "${SKIP_VERIFY:-0}" = 1 ] || timeout 120 $BIN verify --fixtures Tests/Fixtures --precision fp16 --model fixtures random:ViT-B-32 \
  --images 2 --concurrency 64 > "$OUT/verify_fp16.log" 2>&1
echo "== verify fp16 rc=$? t=$(( $(date +%s) - start ))s"; grep -E "^(PASS|FAIL)|passed|FAILED" "$OUT/verify_fp16.log" | tail -8
mkdir -p /tmp/jpegs && cp Tests/Fixtures/images/*.jpg /tmp/jpegs/
$BIN serve --backend cuda --model random:ViT-B-32 --port 8000 --instances 2 --max-batch-size 256 --max-queue-delay 2000 \
  --max-queue-size 8192 > "$OUT/serve.log" 2>&1 &
server=$!
for i in $(seq 1 90); do curl -sf localhost:8000/v2/health/ready > /dev/null && break; sleep 1; done
echo "== ready after $(( $(date +%s) - start ))s"
nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 500 > "$OUT/gpu_util.txt" &
smi=$!
for c in 1 16 64 256; do
  before=$(curl -s localhost:8000/metrics | awk '/^clipserve_images_total/ {i=$2} /^clipserve_batches_total/ {b=$2} END {print i, b}')
  top -b -d 5 -n 2 | grep "^%Cpu" | tail -1 > "$OUT/cpu_c$c.txt" &
  sampler=$!
  timeout 60 $BIN bench serve --url http://localhost:8000 --concurrency $c --seconds 10 --images /tmp/jpegs --api kserve --json \
    > "$OUT/serve_c$c.json" 2> "$OUT/serve_c$c.err"
  after=$(curl -s localhost:8000/metrics | awk '/^clipserve_images_total/ {i=$2} /^clipserve_batches_total/ {b=$2} END {print i, b}')
  echo "$c $before $after" >> "$OUT/batches.txt"
  wait $sampler
done
curl -s localhost:8000/metrics > "$OUT/metrics.txt"
kill $smi; kill -TERM $server; wait $server; echo "== serve exit $?"
timeout 60 $BIN bench engine --backend cuda --model random:ViT-B-32 --batch-size 1,16,64,256 --seconds 3 --json > "$OUT/engine.jsonl" 2>&1
timeout 60 $BIN bench preprocess --images /tmp/jpegs --threads 16 --seconds 5 > "$OUT/preprocess16.txt" 2>&1
echo "==== serve (concurrency, img/s, p50, p99, errors; mean batch from /metrics)"
python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
batches = {int(l.split()[0]): l.split()[1:] for l in open(f"{out}/batches.txt")}
for c in (1, 16, 64, 256):
    try: d = json.loads(open(f"{out}/serve_c{c}.json").read().strip().splitlines()[-1])
    except Exception as e: print(c, "no result", e); continue
    i0, b0, i1, b1 = map(float, batches[c])
    mean = (i1 - i0) / max(b1 - b0, 1)
    cpu = open(f"{out}/cpu_c{c}.txt").read().strip()
    print(c, {k: d.get(k) for k in ("images_per_second", "p50_ms", "p99_ms", "errors")}, f"mean batch {mean:.1f}", cpu)
for l in open(f"{out}/engine.jsonl"):
    if l.startswith("{"):
        d = json.loads(l); print("engine", d["batch_size"], round(d["images_per_second"], 1), "img/s p50", round(d["p50_ms"], 3))
u = [int(x) for x in open(f"{out}/gpu_util.txt").read().split() if x.strip().isdigit()]
print("gpu util samples: mean", sum(u) / max(len(u), 1), "max", max(u or [0]))
PY
grep -E "clipserve_gpu" "$OUT/metrics.txt" | head -6
tail -3 "$OUT/preprocess16.txt"
