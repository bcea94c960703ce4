#!/bin/bash
# One device call: the batcher with and without its intake (CLIPSERVE_BATCHER_INTAKE=1 / 0: requests that find the
# lock taken wait in a list for its holder, or their threads wait for the lock), alternating for ROUNDS rounds, each
# round after a short run over the real engine (the hosts fell into the slow state after such runs): the simulated
# device (3×256) and the real ViT-B-32 engine (2×256 @2 ms, 3×256 with one high-priority context) at 512 and 1,024
# clients, next to engine-only at batch 256. Logs under $OUT/logs; a table last (engine_table.py).
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
S=${SECONDS_PER_POINT:-3}
timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:ViT-B-32 --batch-size 256 --seconds 3 --json \
  2>/dev/null | sed "s/^/engine /" > $L/engine.txt
for round in $(seq ${ROUNDS:-2}); do
  for v in ${VALUES:-1 0}; do
    run() { local label=$1; shift
      CLIPSERVE_BATCHER_INTAKE=$v timeout 150 $BIN bench runtime --json --seconds $S "$@" 2>> $L/runtime.err \
        | sed "s/^/${label}_i$v /" >> $L/runtime.txt; }
    run gpu_2x256_d2ms --engine --backend cuda --model random:ViT-B-32 --instances 2 --max-queue-delay 2000 --concurrency 512,1024
    run sim_3x256 --instances 3 --device-us-per-image 24 --concurrency 512,1024
    run gpu_3x256_hp1 --engine --backend cuda --model random:ViT-B-32 --instances 3 --high-priority-instances 1 --concurrency 512,1024
    echo "round $round intake $v $(el)"
  done
done
python3 scripts/device/engine_table.py $L/engine.txt
python3 scripts/device/engine_table.py $L/runtime.txt | sort -s -k1,1
