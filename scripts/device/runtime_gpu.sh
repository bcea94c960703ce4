#!/bin/bash
# One device call: the serving runtime over the real engine (`bench runtime --engine`, ViT-B-32 fp16, in-process
# closed-loop clients as tune drives them) at fixed configurations, next to engine-only images/s at batch 64, 128 and
# 256 and the simulated device on the same host. Shows where the tuned server's images/s go. When .device/pair.tar.xz
# carries clipserve-old, every runtime point also runs on it (label suffix _old), alternating. CONFIGS=short runs
# three configurations instead of six. Logs under $OUT/logs; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
# CPU limits of this container and their throttling counters, before and after (a CFS quota would stall every thread).
cgroup_stats() { echo "== $1: cpu.max $(cat /sys/fs/cgroup/cpu.max 2>/dev/null) nproc $(nproc)"; grep -E "throttled|usage_usec" /sys/fs/cgroup/cpu.stat 2>/dev/null | tr '\n' ' '; echo; }
cgroup_stats before > $L/cgroup.txt
M=random:ViT-B-32; S=${SECONDS_PER_POINT:-3}
timeout 120 $BIN bench engine --backend cuda --precision fp16 --model $M --batch-size 64,128,256 --seconds 3 --json \
  2>/dev/null | sed "s/^/engine /" > $L/engine.txt
echo "engine-only $(el)"
run() {  # label, then bench runtime arguments
  label=$1; shift
  timeout 150 $BIN bench runtime --json --seconds $S "$@" 2>> $L/runtime.err | sed "s/^/$label /" >> $L/runtime.txt
  echo "$label $(el)"
  if [ -x /tmp/clipserve-old ]; then
    timeout 150 /tmp/clipserve-old bench runtime --json --seconds $S "$@" 2>> $L/runtime.err \
      | sed "s/^/${label}_old /" >> $L/runtime.txt
    echo "${label}_old $(el)"
  fi
}
run "3x256_hp1" --engine --backend cuda --model $M --instances 3 --high-priority-instances 1 --concurrency 512,768,1024
if [ "${CONFIGS:-}" != short ]; then
  run "3x256_hp0" --engine --backend cuda --model $M --instances 3 --concurrency 512,768,1024
  CLIPSERVE_LAUNCH_TURNS=0 run "3x256_noturns" --engine --backend cuda --model $M --instances 3 --concurrency 512,1024
  run "2x256_hp0" --engine --backend cuda --model $M --instances 2 --concurrency 512,768,1024
fi
run "2x256_d2ms" --engine --backend cuda --model $M --instances 2 --max-queue-delay 2000 --concurrency 512,1024
run "sim_3x256" --instances 3 --device-us-per-image 24 --concurrency 512,1024
cgroup_stats after >> $L/cgroup.txt
cat $L/cgroup.txt
python3 scripts/device/engine_table.py $L/engine.txt
python3 scripts/device/engine_table.py $L/runtime.txt
