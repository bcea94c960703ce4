#!/bin/bash
# One device call: ViT-L-14 at batch 256, clipserve's CUDA engine (fp16, input resident on the GPU) next to open_clip
# eager fp16 and torch.compile max-autotune on the same card in the same run (engine_bench.sh runs out of time before
# this compile when ViT-B-32's comes first). Each side is timed short and sustained: clipserve for SHORT and LONG
# seconds of batches, the peers over ITERATIONS forward passes (10 is about 1 s, 50 about 5 s), while nvidia-smi logs
# the SM clock and power every 200 ms (does a sustained run lose clock?), with `nvidia-smi -q` 3 s into each sustained
# run (throttle reasons, power limit). Logs in $OUT/logs.tar.gz; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=/tmp/logs; mkdir -p $OUT $L
source scripts/device/setup.sh > $L/setup.txt
SHORT=${SHORT:-1}; LONG=${LONG:-5}; ITERATIONS=${ITERATIONS:-10 50}
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu --format=csv,noheader -lms 200 > $L/smi.csv &
smi=$!
mark() { echo "$(date +%H:%M:%S.%N | cut -c1-12) $1" >> $L/marks.txt; }
bench() {  # label, seconds
  mark "start $1"
  # Why the clock is where it is (throttle reasons, power limit), 3 s into each sustained run.
  case $1 in long*) (sleep 3; nvidia-smi -q -d PERFORMANCE,POWER,CLOCK > $L/smi_q_$1.txt) & ;; esac
  timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:ViT-L-14 --batch-size 256 \
    --seconds $2 --json 2>> $L/engine.err | sed "s/^/$1 /" >> $L/engine.txt
  mark "end $1"
}
bench short_a $SHORT; bench long_a $LONG; bench short_b $SHORT
echo "clipserve $(el)"
mark "start peers"
timeout 420 python3 scripts/bench_gpu_peers.py --models ViT-L-14 --batches 256 --iterations $ITERATIONS > $L/peers_l14.log 2>&1
echo "peers rc=$? $(el)"
mark "end peers"
bench short_c $SHORT; bench long_c $LONG
kill $smi; wait
tar -czf $OUT/logs.tar.gz -C /tmp logs
python3 scripts/device/engine_table.py $L/engine.txt
grep -h "img/s\|FAILED" $L/peers_l14.log
python3 - $L/smi.csv $L/marks.txt <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 4: continue
    try: rows.append((parts[0].split()[-1][:12], float(parts[1].split()[0]), float(parts[2].split()[0])))
    except ValueError: pass
marks = [l.split(" ", 1) for l in open(sys.argv[2]).read().splitlines()]
spans = {}
for t, what in marks:
    kind, label = what.split(" ", 1)
    spans.setdefault(label, {})[kind] = t
for label, s in spans.items():
    inside = [r for r in rows if s.get("start", "") <= r[0] <= s.get("end", "~")]
    if inside:
        clocks = [r[1] for r in inside]; power = [r[2] for r in inside]
        print(f"{label:8s} SM clock {min(clocks):5.0f}-{max(clocks):5.0f} MHz (mean {sum(clocks)/len(clocks):5.0f}), power mean {sum(power)/len(power):5.0f} W, {len(inside)} samples")
PY
