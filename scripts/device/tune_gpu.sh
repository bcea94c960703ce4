#!/bin/bash
# One device call: `clipserve tune` on the GPU (ViT-B-32, 50 ms p99 budget, in-process with preprocessed pixels),
# engine-only throughput at the chosen batch size, then `clipserve serve --config` with the tuned file under
# `clipserve bench serve` (fixture JPEGs over HTTP) at concurrency 1, 16, 64 and 256. Logs packed into
# $OUT/logs.tar.gz, the chart and config copied to $OUT; a short table last. E2E=0 stops after engine-only.
set -u
D=.device
RESULTS=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$RESULTS" $L
source scripts/device/setup.sh > $L/setup.txt
MINUTES=${MINUTES:-4}
timeout $(( MINUTES * 60 + 90 )) $BIN tune --model random:ViT-B-32 --backend cuda --p99-budget-ms 50 --minutes $MINUTES --point-seconds ${POINT:-2} \
  --output $L/tuned.json --chart $L/tune-gpu.svg > $L/tune.txt 2> $L/tune.err
echo "== tune rc=$? $(el)"
cp $L/tuned.json $L/tune-gpu.svg "$RESULTS/" 2>/dev/null
B=$(python3 -c "import json; print(json.load(open('$L/tuned.json'))['max-batch-size'])" 2>/dev/null || echo 64)
timeout 60 $BIN bench engine --backend cuda --model random:ViT-B-32 --batch-size $B,16,64,256 --seconds 3 --json > $L/engine.jsonl 2>&1
echo "== engine rc=$? $(el)"
if [ "${E2E:-1}" = 0 ]; then  # tune and engine-only only
  sed -n '1,60p' $L/tune.txt; cat $L/engine.jsonl | grep -o '"batch_size":[0-9]*\|"images_per_second":[0-9.]*' | paste - -
  tar -czf "$RESULTS/logs.tar.gz" -C /tmp logs; exit 0
fi
mkdir -p /tmp/jpegs && cp Tests/Fixtures/images/*.jpg /tmp/jpegs/
$BIN serve --config $L/tuned.json --port 8000 --max-queue-size 8192 > $L/serve.log 2>&1 &
server=$!
for i in $(seq 1 90); do curl -sf localhost:8000/v2/health/ready > /dev/null && break; sleep 1; done
echo "== serve ready $(el)"
for c in 1 16 64 256; do
  top -b -d 4 -n 2 | grep "^%Cpu" | tail -1 > $L/cpu_c$c.txt &
  sampler=$!
  timeout 40 $BIN bench serve --url http://localhost:8000 --concurrency $c --seconds 8 --images /tmp/jpegs --api kserve --json \
    > $L/serve_c$c.json 2> $L/serve_c$c.err
  wait $sampler
done
curl -s localhost:8000/status.json > $L/status.json
curl -s localhost:8000/metrics > $L/metrics.txt
kill -TERM $server; wait $server; echo "== serve exit $? $(el)"
echo "==== tune"
sed -n '1,60p' $L/tune.txt
echo "==== engine only"
python3 -c "
import json
for l in open('$L/engine.jsonl'):
    if l.startswith('{'): d=json.loads(l); print(f\"b{d['batch_size']} {d['images_per_second']:.0f} img/s p50 {d['p50_ms']:.3f} ms\")"
echo "==== serve --config tuned.json (concurrency: img/s p50 p99 errors; CPU)"
for c in 1 16 64 256; do
  python3 -c "
import json,sys
d=json.loads(open('$L/serve_c$c.json').read().strip().splitlines()[-1])
print($c, {k: d.get(k) for k in ('images_per_second','p50_ms','p99_ms','errors')}, open('$L/cpu_c$c.txt').read().strip())" 2>&1 | tail -1
done
grep -E "^clipserve_(images|batches)_total|gpu_utilization" $L/metrics.txt | head -4
tar -czf "$RESULTS/logs.tar.gz" -C /tmp logs
