#!/bin/bash
# One device call on a 2-GPU machine: verify on every GPU, then `clipserve serve` with ViT-L-14 (where host decoding
# is not the limit) on one GPU and on both, under `clipserve bench serve` with the fixture JPEGs, next to engine-only
# numbers and per-GPU utilisation. Full logs under $OUT; a short table last.
set -u
D=.device
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source scripts/device/setup.sh
timeout 150 $BIN verify --fixtures Tests/Fixtures --precision fp16 --devices all --model fixtures random:ViT-B-32 \
  --images 2 --concurrency 64 > "$OUT/verify_fp16.log" 2>&1
echo "== verify fp16 all GPUs rc=$? $(el)"; grep -E "^(PASS|FAIL)|passed|FAILED" "$OUT/verify_fp16.log" | tail -12
timeout 100 $BIN bench engine --backend cuda --precision fp16 --model random:ViT-L-14 --batch-size 8,64 --seconds 3 --json \
  > "$OUT/engine_l14.jsonl" 2> "$OUT/engine_l14.err"
echo "== engine L-14 rc=$? $(el)"
mkdir -p /tmp/jpegs && cp Tests/Fixtures/images/*.jpg /tmp/jpegs/
MODEL=${MODEL:-random:ViT-L-14}
for devices in 0 all; do
  $BIN serve --backend cuda --model $MODEL --devices $devices --port 8000 --instances 2 --max-batch-size 64 \
    --max-queue-delay 2000 --max-queue-size 8192 > "$OUT/serve_$devices.log" 2>&1 &
  server=$!
  for i in $(seq 1 120); do curl -sf localhost:8000/v2/health/ready > /dev/null && break; sleep 1; done
  echo "== serve devices=$devices ready $(el)"
  nvidia-smi --query-gpu=index,utilization.gpu --format=csv,noheader,nounits -lms 500 > "$OUT/gpu_util_$devices.txt" &
  smi=$!
  for c in 64 256; do
    top -b -d 5 -n 2 | grep "^%Cpu" | tail -1 > "$OUT/cpu_${devices}_c$c.txt" &
    sampler=$!
    timeout 60 $BIN bench serve --url http://localhost:8000 --concurrency $c --seconds 10 --images /tmp/jpegs --api kserve \
      --json > "$OUT/serve_${devices}_c$c.json" 2> "$OUT/serve_${devices}_c$c.err"
    wait $sampler
  done
  curl -s localhost:8000/metrics > "$OUT/metrics_$devices.txt"
  kill $smi; kill -TERM $server; wait $server; echo "== serve devices=$devices exit $? $(el)"
done
echo "==== engine only (GPU 0)"
cat "$OUT"/engine_l14.jsonl | python3 -c "
import json,sys
for l in sys.stdin:
    if l.startswith('{'): d=json.loads(l); print(f\"{d['model']} b{d['batch_size']} {d['images_per_second']:.1f} img/s p50 {d['p50_ms']:.3f} ms\")"
echo "==== serve (devices, concurrency: img/s p50 p99 errors; CPU; per-GPU util mean)"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for dev in ("0", "all"):
    util = {}
    try:
        for line in open(f"{out}/gpu_util_{dev}.txt"):
            i, u = [x.strip() for x in line.split(",")]
            util.setdefault(i, []).append(int(u))
    except Exception: pass
    means = {i: round(sum(v) / len(v)) for i, v in util.items()}
    for c in (64, 256):
        try: d = json.loads(open(f"{out}/serve_{dev}_c{c}.json").read().strip().splitlines()[-1])
        except Exception as e: print(dev, c, "no result", e); continue
        cpu = open(f"{out}/cpu_{dev}_c{c}.txt").read().strip()
        print(dev, c, {k: d.get(k) for k in ("images_per_second", "p50_ms", "p99_ms", "errors")}, cpu, "gpu util", means)
PY
grep -hE "^clipserve_(images|batches)_total" "$OUT"/metrics_*.txt
