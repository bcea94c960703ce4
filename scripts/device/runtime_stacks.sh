#!/bin/bash
# One device call: where the runtime's threads are during `bench runtime` at 1,024 clients. Three rounds of a short
# run over the real ViT-B-32 engine (2×256 @2 ms) and one over the simulated device (3×256), whose threads are
# sampled after 5 s (thread_cpu.py) and stopped once for a backtrace of every thread (cuda-gdb, or gdb); the
# backtraces are grouped by their innermost four frames. Needs a binary with its symbol table: build it with
# `swift build -c release --static-swift-stdlib`, then `strip --strip-debug -o B .build/release/clipserve` and
# `xz -T2 -6 -c B > .device/clipserve.xz` (in place of scripts/device/prepare.sh's stripped one).
# Logs under $OUT/logs.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
GDB=$(command -v gdb || echo /usr/local/cuda/bin/cuda-gdb); echo "gdb: $GDB"
for i in 1 2 3; do
  timeout 60 $BIN bench runtime --json --seconds 3 --engine --backend cuda --model random:ViT-B-32 --instances 2 \
    --max-queue-delay 2000 --concurrency 1024 2>/dev/null | sed "s/^/gpu_run$i /" >> $L/runtime.txt
  $BIN bench runtime --json --seconds 8 --instances 3 --device-us-per-image 24 --concurrency 1024 2>/dev/null \
    | sed "s/^/sim_run$i /" >> $L/runtime.txt &
  sleep 5; pid=$(pgrep -n -f "clipserve bench runtime")
  python3 scripts/device/thread_cpu.py $pid 1 > $L/threads_$i.txt 2>&1
  timeout 60 $GDB -p $pid -batch -ex "set pagination off" -ex "thread apply all bt 14" > $L/bt_$i.txt 2>&1
  wait
  echo "run $i $(el)"; tail -1 $L/runtime.txt | cut -c1-60
done
python3 scripts/device/engine_table.py $L/runtime.txt
python3 - $L <<'PY'
import sys, re, collections, glob
for path in sorted(glob.glob(sys.argv[1] + "/bt_*.txt")):
    text = open(path).read()
    threads = re.split(r"\nThread \d+ ", text)
    c = collections.Counter()
    for t in threads[1:]:
        frames = re.findall(r"#\d+\s+(?:0x[0-9a-f]+ in )?([^\s(]+)", t)
        key = " < ".join(f[:60] for f in frames[:4])
        c[key] += 1
    print("==", path.split("/")[-1], len(threads) - 1, "threads")
    for k, n in c.most_common(12): print(f"  {n:3d}  {k}")
PY
