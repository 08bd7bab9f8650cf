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


lat, frames, ended = [], 0, False
try:
    read(16)  # stream header
    while True:
        kind, _flags, stream, hlen, plen = struct.unpack("<BBHIQ", read(16))
        header = read(hlen)
        inp.read(plen)
        if kind == 0x02 and hlen >= 41:
            frames += 1
            if header[32] & 1 and frames > skip:
                (cap,) = struct.unpack_from("<q", header, 33)
                lat.append((time.time_ns() - cap) / 1e6)
        if kind == 0x06 and stream == 0xFFFF:
            ended = True
            break
except EOFError:
    pass
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(round((len(lat) - 1) * p)))], 2) if lat else None
print(json.dumps({"frames": frames, "ended": ended, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                  "max_ms": round(lat[-1], 2) if lat else None}))
