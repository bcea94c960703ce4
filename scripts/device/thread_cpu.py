#!/usr/bin/env python3
"""CPU time of each thread of a process over an interval, busiest first, with the threads' names and context
switches: which threads of the serving runtime are busy. Usage: thread_cpu.py PID [SECONDS]"""
import os
import sys
import time

pid, seconds = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
tick = os.sysconf("SC_CLK_TCK")


def sample():
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            status = open(f"/proc/{pid}/task/{tid}/status").read().split("\n")
            switches = sum(int(l.split()[1]) for l in status if "ctxt_switches" in l)
            threads[tid] = (name, int(fields[11]) + int(fields[12]), switches, int(fields[36]))  # utime+stime, cpu
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            pass
    return threads


before = sample()
time.sleep(seconds)
after = sample()
rows = []
for tid, (name, ticks, switches, cpu) in after.items():
    if tid in before:
        rows.append(((ticks - before[tid][1]) / tick / seconds, switches - before[tid][2], tid, name, cpu))
rows.sort(reverse=True)
print(f"{len(after)} threads; busiest over {seconds:g} s (share of a core, context switches, last CPU):")
for share, switches, tid, name, cpu in rows[:12]:
    print(f"  {share * 100:5.1f}%  {switches:7d} switches  cpu {cpu:2d}  {tid:>7s}  {name}")
print(f"  total {sum(r[0] for r in rows) * 100:.0f}% of a core, {sum(r[1] for r in rows)} switches")
