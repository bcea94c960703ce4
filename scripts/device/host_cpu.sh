#!/bin/bash
# One device call: how much CPU this host really gives. /proc/stat over 3 s of N busy loops (user, system, idle and
# steal time, in cores), then the runtime over the simulated device with 4 always-spinning client threads, sampling
# the process's threads (thread_cpu.py) and /proc/stat during it. Logs under $OUT/logs.
set -u
D=.device; OUT=${OUT:-/tmp/out}; L=$OUT/logs; mkdir -p $L
source scripts/device/setup.sh > $L/setup.txt
stat_cores() {  # seconds: the cpu line of /proc/stat over that long, as cores busy in each state
  python3 - "$1" <<'PY'
import sys, time, os
def cpu():
    return [int(x) for x in open("/proc/stat").readline().split()[1:]]
s = float(sys.argv[1]); a = cpu(); time.sleep(s); b = cpu(); tick = os.sysconf("SC_CLK_TCK")
names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
print("  ".join(f"{n} {(b[i] - a[i]) / tick / s:5.2f}" for i, n in enumerate(names)), "cores")
PY
}
echo "== idle"; stat_cores 2
for n in 4 8 16; do
  for i in $(seq $n); do timeout 4 sh -c 'while :; do :; done' & done
  sleep 0.5; echo "== $n busy loops"; stat_cores 3; wait
done
export CLIPSERVE_CLIENT_THREADS=4 CLIPSERVE_CLIENT_SPIN_US=20000
$BIN bench runtime --json --seconds 6 --instances 3 --device-us-per-image 24 --concurrency 1024 2>/dev/null \
  | sed "s/^/sim_t4s20000 /" > $L/runtime.txt &
sleep 4; pid=$(pgrep -n -f "clipserve bench runtime")
echo "== runtime, 4 spinning client threads"; stat_cores 1 & python3 scripts/device/thread_cpu.py $pid 1; wait
python3 scripts/device/engine_table.py $L/runtime.txt
