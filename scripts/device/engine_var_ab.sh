#!/bin/bash
# One device call: engine-only throughput with an environment variable set to each of VALUES in turn ("-" leaves it
# unset), alternating for ROUNDS rounds on the same card, for each "model batch,batch" in SPECS; then an eager stage
# profile of PROFILE_MODEL at batch 256 per value. VERIFY=1 first runs verify (fp16 and bf16, head widths 64 and
# 80, large batches included) with every value (or those of VERIFY_VALUES). Logs in $OUT/logs.tar.gz; a table last.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=/tmp/logs; mkdir -p $OUT $L
source scripts/device/setup.sh > $L/setup.txt
VAR=${VAR:?name the variable}; VALUES=${VALUES:?list the values}; ROUNDS=${ROUNDS:-2}
SPECS=${SPECS:-"ViT-L-14 256;ViT-B-16 256"}; PROFILE_MODEL=${PROFILE_MODEL:-ViT-L-14}; SECONDS_EACH=${SECONDS_EACH:-2}
# With VAR=- each value is a label=ASSIGNMENT[+ASSIGNMENT...] (label "base=-" for none), e.g. "skip=A=1+B=2".
envfor() {
  if [ "$VAR" = - ]; then local a=${1#*=}; [ "$a" = - ] && echo "" || echo "${a//+/ }"
  else [ "$1" = - ] && echo "" || echo "$VAR=$1"; fi
}
label() { [ "$VAR" = - ] && echo "${1%%=*}" || echo "$1"; }
if [ "${VERIFY:-1}" = 1 ]; then
  for v in ${VERIFY_VALUES:-$VALUES}; do
    env $(envfor $v) timeout 200 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-16 \
      random:ViT-L-14 random:ViT-H-14 --concurrency 16 > $L/verify_fp16_$(label $v).log 2>&1
    echo "== verify fp16 $VAR=$v rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_fp16_$(label $v).log | head -12
    env $(envfor $v) timeout 100 $BIN verify --precision bf16 --devices 0 --images 1 --model random:ViT-L-14 random:ViT-B-16 > $L/verify_bf16_$(label $v).log 2>&1
    echo "== verify bf16 $VAR=$v rc=$? $(el)"; grep -E "^(PASS|FAIL)|FAILED" $L/verify_bf16_$(label $v).log | head -6
  done
fi
for round in $(seq $ROUNDS); do
  for v in $VALUES; do
    IFS=';' read -ra specs <<< "$SPECS"
    for spec in "${specs[@]}"; do
      set -- $spec
      env $(envfor $v) timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:$1 --batch-size $2 \
        --seconds $SECONDS_EACH --json 2>> $L/engine.err | sed "s/^/$(label $v) /" >> $L/engine.txt
    done
  done
  echo "== round $round $(el)"
done
for v in $VALUES; do
  env $(envfor $v) timeout 100 $BIN verify --precision fp16 --devices 0 --images 1 --model random:$PROFILE_MODEL \
    --bench-batches 256 > $L/profile_$(label $v).log 2>&1
done
tar -czf $OUT/logs.tar.gz -C /tmp logs
echo "==== engine img/s ($VAR), one column per round"
python3 - $L/engine.txt <<'PY'
import json, sys, collections
r = collections.defaultdict(list)
for line in open(sys.argv[1]):
    v, _, rest = line.partition(" ")
    if rest.startswith("{"):
        d = json.loads(rest); r[(d["model"], d["batch_size"], v)].append(d["images_per_second"])
for k in sorted(r): print(f"{k[0]:16s} b{k[1]:<5d} {k[2]:>8s}  " + "  ".join(f"{x:9.1f}" for x in r[k]))
PY
for v in $VALUES; do echo "==== profile $v"; grep -A8 "stage profile" $L/profile_$(label $v).log | head -9; done
