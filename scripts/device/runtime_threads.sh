#!/bin/bash
# One device call: where the serving runtime's host time goes. `bench runtime` over the simulated device (3×256,
# 1,024 clients) and over the real ViT-B-32 engine (2×256 @2 ms), each as it is and confined with taskset to 2 and
# 4 cores; during each run, the busiest threads of the process over one second (thread_cpu.py). Logs under
# $OUT/logs; a table last (engine_table.py's split: mean latency = batcher lock + answer + the rest).
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
S=${SECONDS_PER_POINT:-6}
run() {  # label, cpu list ("" for all), seconds before sampling the threads, then bench runtime arguments
  local label=$1 cpus=$2 delay=$3; shift 3
  local prefix=""; [ -n "$cpus" ] && prefix="taskset -c $cpus"
  $prefix $BIN bench runtime --json --seconds $S "$@" 2>> $L/runtime.err | sed "s/^/$label /" >> $L/runtime.txt &
  sleep $delay
  local pid=$(pgrep -n -f "clipserve bench runtime")
  { echo "== $label (pid $pid)"; python3 scripts/device/thread_cpu.py $pid 1; } >> $L/threads.txt 2>&1
  wait
  echo "$label $(el)"
}
SIM="--instances 3 --device-us-per-image 24 --concurrency 1024"
GPU="--engine --backend cuda --model random:ViT-B-32 --instances 2 --max-queue-delay 2000 --concurrency 1024"
for round in $(seq ${ROUNDS:-2}); do
  run sim_all "" 4 $SIM
  [ "${CONFINED:-1}" = 1 ] && { run sim_2cores 0-1 4 $SIM; run sim_4cores 0-3 4 $SIM; }
  run gpu_all "" 20 $GPU
  [ "${CONFINED:-1}" = 1 ] && run gpu_4cores 0-3 20 $GPU
done
which perf > $L/perf.txt 2>&1
python3 scripts/device/engine_table.py $L/runtime.txt
cat $L/threads.txt
