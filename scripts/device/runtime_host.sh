#!/bin/bash
# One device call, CPU only: the serving runtime over the simulated device (`bench runtime`, 3 x 256, 24 us per
# image) on the GPU machine's host, as it is and with the host changed around it: NSPIN busy loops on other cores
# (keeps them out of idle states: does wake-up latency matter?), the process confined to 4 cores (does spreading
# over 16 cores matter?), no queue delay. Logs under $OUT/logs; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
S=${SECONDS_PER_POINT:-4}; C=${CLIENTS:-512,1024}
run() {  # label, command prefix..., then bench runtime arguments after --
  label=$1; shift
  local prefix=()
  while [ "$1" != -- ]; do prefix+=("$1"); shift; done; shift
  timeout 120 "${prefix[@]}" $BIN bench runtime --json --seconds $S --instances 3 --device-us-per-image 24 \
    --concurrency $C "$@" 2>> $L/runtime.err | sed "s/^/$label /" >> $L/runtime.txt
  echo "$label $(el)"
}
run plain env --
run plain_d0 env -- --max-queue-delay 0
run cores4 taskset -c 0-3 --
run cores8 taskset -c 0-7 --
for i in $(seq ${NSPIN:-12}); do taskset -c $((i + 3)) sh -c 'while :; do :; done' & done
run spin12 taskset -c 0-3 --
run spin12_all env --
kill $(jobs -p) 2>/dev/null
run plain_again env --
python3 scripts/device/engine_table.py $L/runtime.txt
