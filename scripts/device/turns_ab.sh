#!/bin/bash
# One device call: A/B of the per-GPU launch turn (CLIPSERVE_LAUNCH_TURNS, on by default) under `clipserve tune`
# (ViT-B-32, 50 ms p99 budget, $MINUTES each), after a verify with --concurrency 16; engine-only at the batch sizes
# tune picks. Logs packed into $OUT/logs.tar.gz; a short table last.
set -u
D=.device
RESULTS=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$RESULTS" $L
source scripts/device/setup.sh > $L/setup.txt
MINUTES=${MINUTES:-3}
timeout 150 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 --concurrency 16 \
  > $L/verify_fp16.log 2>&1
echo "== verify rc=$? $(el)"
for turns in 1 0; do
  CLIPSERVE_LAUNCH_TURNS=$turns timeout $(( MINUTES * 60 + 90 )) $BIN tune --model random:ViT-B-32 --backend cuda \
    --p99-budget-ms 50 --minutes $MINUTES --point-seconds 2 --output $L/tuned_$turns.json --chart $L/tune_$turns.svg \
    > $L/tune_$turns.txt 2> $L/tune_$turns.err
  echo "== tune turns=$turns rc=$? $(el)"
done
timeout 60 $BIN bench engine --backend cuda --model random:ViT-B-32 --batch-size 64,128,256,512 --seconds 3 --json > $L/engine.jsonl 2>&1
echo "== engine rc=$? $(el)"
grep -hE "RGB bytes|concurrency 16|^(PASS|FAIL)" $L/verify_fp16.log | sort | uniq -c
for turns in 1 0; do echo "==== turns=$turns"; grep -E "^ *[0-9]+ +[0-9]+ +[0-9]+ " $L/tune_$turns.txt | sort -k7 -n -r | head -6; grep -E "^chosen|vs  chosen" $L/tune_$turns.txt; done
echo "==== engine only"
python3 -c "
import json
for l in open('$L/engine.jsonl'):
    if l.startswith('{'): d=json.loads(l); print(f\"b{d['batch_size']} {d['images_per_second']:.0f} img/s p50 {d['p50_ms']:.3f} ms\")"
cp $L/tune_1.svg "$RESULTS/tune-gpu.svg" 2>/dev/null
tar -czf "$RESULTS/logs.tar.gz" -C /tmp logs
