#!/usr/bin/env python3
"""Read a streamlib stream on stdin; print how many video frames arrived and their latency
(capture time to arrival here, p50/p99/max in ms) as one line of JSON. Used by
scripts/bench-net.sh to judge sl-net and ssh with the same yardstick (docs/wire-format.md)."""
import json
import struct
import sys
import time

# --skip N: leave the first N frames out of the latency figures (connection set-up)
skip = int(sys.argv[sys.argv.index("--skip") + 1]) if "--skip" in sys.argv else 0
inp = sys.stdin.buffer


def read(n):
    b = inp.read(n)
    if len(b) < n:
        raise EOFError
    return b


def skip_payload(n, scratch=bytearray(1 << 20)):
    """Read and discard n bytes into one reused buffer (the judge allocates nothing per frame,
    so its own cost stays out of the latency it measures)."""
    view = memoryview(scratch)
    while n > 0:
        k = inp.readinto(view[: min(n, len(scratch))])
        if not k:
            raise EOFError
        n -= k


lat, frames, ended = [], 0, False
arrivals = []  # arrival time of every frame after the skipped ones (s)
try:
    read(16)  # stream header
    while True:
        kind, _flags, stream, hlen, plen = struct.unpack("<BBHIQ", read(16))
        header = read(hlen)
        skip_payload(plen)
        if kind == 0x02 and hlen >= 41:
            frames += 1
            if frames > skip:
                now = time.time_ns()
                arrivals.append(now / 1e9)
                if header[32] & 1:
                    (cap,) = struct.unpack_from("<q", header, 33)
                    lat.append((now - cap) / 1e6)
        if kind == 0x06 and stream == 0xFFFF:
            ended = True
            break
except EOFError:
    pass
# keeping up: frames per second between the first and the last arrival counted, and the
# median latency of the first and of the last 30 of them (a link slower than its source
# falls further behind every second: its latency grows)
span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0
rate = round((len(arrivals) - 1) / span, 2) if span > 0 else None
med = lambda v: round(sorted(v)[len(v) // 2], 2) if v else None
first_p50, last_p50 = med(lat[:30]), med(lat[-30:])
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))], 2) if lat else None
print(json.dumps({"frames": frames, "ended": ended, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                  "max_ms": round(lat[-1], 2) if lat else None, "rate_fps": rate,
                  "first_p50_ms": first_p50, "last_p50_ms": last_p50}))
