#!/bin/bash
# One device call: an environment setting of the runtime A/B, in alternating rounds. VAR names the variable and
# VALUES its settings ("-" leaves it unset), e.g. VAR=CLIPSERVE_LAUNCH_TURNS VALUES="- 0". Each setting runs the
# runtime over the simulated device (3 x 256, 24 us an image) and over the real ViT-B-32 engine (fp16; 3 x 256 with
# one high-priority context, as tune runs it, and 2 x 256 @2000 us; with FOUR=1 also 4 x 256) at 1,024 clients (CLIENTS),
# next to engine-only at batch 256. Logs under $OUT/logs; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
M=random:ViT-B-32; S=${SECONDS_PER_POINT:-3}; C=${CLIENTS:-1024}
timeout 60 $BIN bench engine --backend cuda --precision fp16 --model $M --batch-size 256 --seconds 3 --json \
  2>/dev/null | sed "s/^/engine /" > $L/engine.txt
run() {  # label, then bench runtime arguments
  local label=$1; shift
  timeout 120 $BIN bench runtime --json --seconds $S --concurrency $C "$@" 2>> $L/runtime.err \
    | sed "s/^/$label /" >> $L/runtime.txt
}
for round in $(seq ${ROUNDS:-2}); do for value in $VALUES; do
  if [ "$value" = - ]; then unset $VAR; else export $VAR=$value; fi
  run "sim_$value" --instances 3 --device-us-per-image 24
  run "3x256hp1_$value" --engine --backend cuda --model $M --instances 3 --high-priority-instances 1
  run "2x256d2_$value" --engine --backend cuda --model $M --instances 2 --max-queue-delay 2000
  [ -n "${FOUR:-}" ] && run "4x256_$value" --engine --backend cuda --model $M --instances 4
  echo "round $round $VAR=$value $(el)"
done; done
unset $VAR
python3 scripts/device/engine_table.py $L/engine.txt
python3 scripts/device/engine_table.py $L/runtime.txt
