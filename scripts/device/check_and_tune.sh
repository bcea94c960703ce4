#!/bin/bash
# One device call: accuracy (verify fp16 / fp32 on the fixtures and random ViT-B-32 / ViT-L-14), engine-only
# throughput, stage profiles (ViT-L-14 batch 256, ViT-B-32 batch 1, also with $ALT_ENV), an nsys kernel trace of
# ViT-B-32 batch 1 when nsys is there, then scripts/device/tune_gpu.sh (tune + serve --config end to end).
# Logs packed into $OUT/logs.tar.gz and $OUT/tune-logs.tar.gz; short tables last.
set -u
D=.device
RESULTS=${OUT:-/tmp/out}
L=/tmp/logs; mkdir -p "$RESULTS" $L
source scripts/device/setup.sh > $L/setup.txt
ALT_ENV=${ALT_ENV:-CLIPSERVE_GEMM_TUNING=64}
timeout 150 $BIN verify --precision fp16 --devices 0 --images 1 --model fixtures random:ViT-B-32 random:ViT-L-14 \
  --concurrency 16 > $L/verify_fp16.log 2>&1
echo "== verify fp16 rc=$? $(el)"
timeout 100 $BIN verify --precision fp32 --devices 0 --images 1 --model fixtures random:ViT-B-32 > $L/verify_fp32.log 2>&1
echo "== verify fp32 rc=$? $(el)"
for spec in "ViT-B-32 1,8,64,256,1024" "ViT-L-14 1,64,256"; do
  set -- $spec
  timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:$1 --batch-size $2 --seconds 2 --json \
    >> $L/engine_main.jsonl 2>> $L/engine_main.err
done
env $ALT_ENV timeout 120 $BIN bench engine --backend cuda --precision fp16 --model random:ViT-B-32 --batch-size 1,8 --seconds 2 --json \
    >> $L/engine_alt.jsonl 2>> $L/engine_alt.err
echo "== engine $(el)"
timeout 100 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-L-14 --bench-batches 256 > $L/profile_l14.log 2>&1
timeout 100 $BIN verify --precision fp16 --devices 0 --images 1 --model random:ViT-B-32 --bench-batches 1 > $L/profile_b32b1.log 2>&1
NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/bin/nsys 2>/dev/null | head -1)
if [ -n "$NSYS" ]; then
  timeout 120 $NSYS profile -o /tmp/b1 --force-overwrite true --cuda-graph-trace=node \
    $BIN bench engine --backend cuda --precision fp16 --model random:ViT-B-32 --batch-size 1 --seconds 1 > $L/nsys_run.log 2>&1
  timeout 100 $NSYS stats --report cuda_gpu_kern_sum --format csv /tmp/b1.nsys-rep > $L/nsys_kern.csv 2> $L/nsys_stats.err
  timeout 100 $NSYS stats --report cuda_gpu_trace --format csv /tmp/b1.nsys-rep > $L/nsys_trace.csv 2>> $L/nsys_stats.err
fi
echo "== profiles (nsys: ${NSYS:-none}) $(el)"
OUT=$RESULTS MINUTES=${MINUTES:-3} POINT=${POINT:-2} bash scripts/device/tune_gpu.sh > $L/tune_gpu.out 2>&1
mv "$RESULTS/logs.tar.gz" "$RESULTS/tune-logs.tar.gz" 2>/dev/null
echo "== tune $(el)"
grep -E "^(PASS|FAIL)|FAILED" $L/verify_fp16.log $L/verify_fp32.log
echo "==== engine"
cat $L/engine_main.jsonl $L/engine_alt.jsonl | python3 -c "
import json,sys
for l in sys.stdin:
    if l.startswith('{'): d=json.loads(l); print(f\"{d['model']:16s} b{d['batch_size']:<5d} {d['images_per_second']:10.1f} img/s  p50 {d['p50_ms']:.3f} ms\")"
for f in $L/profile_*.log; do echo "==== $(basename $f)"; grep -A12 "stage profile" $f | head -13; done
if [ -f $L/nsys_kern.csv ]; then echo "==== nsys kernels (b1)"; head -25 $L/nsys_kern.csv | cut -c1-200; fi
echo "==== tune"; tail -40 $L/tune_gpu.out
tar -czf "$RESULTS/logs.tar.gz" -C /tmp logs
