#!/usr/bin/env python3
"""Split each frame of a traced link run into phases (see scripts/net/timeline.sh).

Input: `perf script -F comm,pid,tid,cpu,time,event,trace` of a run of
`sl-test | sl-net send` -> `sl-net listen | latency.py`. A frame starts when the source starts
putting it into its pipe (the capture stamp is taken just before) and ends with the reader's
last read of it. Its phases:

  input   until the sender has read the whole frame from its stdin
  handoff until the sender's first datagram
  link    until the listener starts writing the frame to its stdout
  output  until the reader has read all of it

and, over the whole frame, the milliseconds each process had one of the CPUs, idle included.
"""
import bisect
import collections
import re
import statistics
import sys

LINE = re.compile(r"\s*(.+?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\w+):(\w+):\s*(.*)")
NEXT = re.compile(r"next_comm=(.*?) next_pid=(\d+)")

calls, switches = [], []
tid_pid = {}
for line in open(sys.argv[1], errors="replace"):
    m = LINE.match(line)
    if not m:
        continue
    comm, pid, tid, cpu, t, cat, event, rest = m.groups()
    t, pid, tid = float(t), int(pid), int(tid)
    if cat == "sched":
        n = NEXT.search(rest)
        if n:
            switches.append((t, int(cpu), n.group(1), int(n.group(2))))
        continue
    tid_pid[tid] = pid
    ret = None
    if event.startswith("sys_exit"):
        try:
            ret = int(rest, 16)
            ret = ret - (1 << 64) if ret >= 1 << 63 else ret
        except ValueError:
            pass
    calls.append((t, comm, pid, tid, event, ret))
calls.sort()
switches.sort()


def most(pred):
    c = collections.Counter(p for (_, comm, p, _, e, r) in calls if pred(comm, e, r))
    return c.most_common(1)[0][0] if c else None


BIG = 4096
source = most(lambda c, e, r: c == "sl-test" and e in ("sys_enter_vmsplice", "sys_enter_writev"))
listener = most(lambda c, e, r: c == "sl-net" and e == "sys_enter_writev")
reader = most(lambda c, e, r: c.startswith("python") and e == "sys_exit_read" and (r or 0) >= BIG)
sender = most(lambda c, e, r: c == "sl-net" and e == "sys_exit_read" and (r or 0) >= BIG)
if None in (source, listener, reader, sender):
    sys.exit("timeline: the trace does not show all four processes (source, send, listen, reader)")
role = {source: "source", sender: "send", listener: "listen", reader: "reader"}

# frames: the source's first write after a pause
starts, last = [], -1.0
for t, comm, p, tid, e, r in calls:
    if p == source and e in ("sys_enter_vmsplice", "sys_enter_writev"):
        if t - last > 0.010:
            starts.append(t)
        last = t
times = [c[0] for c in calls]
runs = collections.defaultdict(list)
for t, cpu, comm, tid in switches:
    runs[cpu].append((t, comm, tid))
run_times = {cpu: [x[0] for x in r] for cpu, r in runs.items()}


def who(tid, comm):
    if tid == 0:
        return "idle"
    p = tid_pid.get(tid)
    if p in role:
        return role[p]
    return {"tokio-rt-worker": "send/listen (unattributed thread)"}.get(comm, "other")


def cpu_use(a, b):
    out = collections.Counter()
    for cpu, r in runs.items():
        i = max(0, bisect.bisect_right(run_times[cpu], a) - 1)
        while i < len(r) and r[i][0] < b:
            s = max(a, r[i][0])
            e = min(b, r[i + 1][0] if i + 1 < len(r) else b)
            if e > s:
                out[who(r[i][2], r[i][1])] += (e - s) * 1e3
            i += 1
    return out


frames = []
for i, s in enumerate(starts):
    limit = min(starts[i + 1] if i + 1 < len(starts) else s + 0.030, s + 0.030)
    seg = calls[bisect.bisect_left(times, s):bisect.bisect_left(times, limit)]
    read = [t for (t, c, p, tid, e, r) in seg if p == sender and e == "sys_exit_read" and (r or 0) >= BIG]
    sent = [t for (t, c, p, tid, e, r) in seg if p == sender and e == "sys_enter_sendmsg"]
    write = [t for (t, c, p, tid, e, r) in seg if p == listener and e == "sys_enter_writev"]
    got = [t for (t, c, p, tid, e, r) in seg if p == reader and e == "sys_exit_read" and (r or 0) >= BIG]
    if not (read and sent and write and got):
        continue
    end = got[-1]
    if not (s < read[-1] <= sent[0] <= write[0] <= end):
        continue
    ms = lambda a, b: (b - a) * 1e3
    frames.append({
        "total": ms(s, end),
        "input": ms(s, read[-1]),
        "handoff": ms(read[-1], sent[0]),
        "link": ms(sent[0], write[0]),
        "output": ms(write[0], end),
        "cpu": cpu_use(s, end),
    })
if len(frames) < 20:
    sys.exit(f"timeline: only {len(frames)} frames could be followed through the trace")
frames.sort(key=lambda f: f["total"])
n = len(frames)
print(f"timeline: {n} frames followed from capture to the reader; "
      f"ms per frame, the mean over each group")
for label, group in (("middle half", frames[n // 4: 3 * n // 4]), ("slowest 5%", frames[-max(1, n // 20):])):
    mean = lambda k: statistics.fmean(f[k] for f in group)
    print(f"  {label:12s} total {mean('total'):5.2f} = input {mean('input'):4.2f} + handoff "
          f"{mean('handoff'):4.2f} + link {mean('link'):4.2f} + output {mean('output'):4.2f}")
    cpu = collections.Counter()
    for f in group:
        cpu.update(f["cpu"])
    cores = sum(cpu.values()) / len(group)
    print(f"  {'':12s} the {len(runs)} CPUs meanwhile ({cores:.2f} CPU-ms): "
          + ", ".join(f"{k} {v / len(group):.2f}" for k, v in cpu.most_common() if v / len(group) >= 0.01))
