#!/usr/bin/env python3
"""Read a streamlib stream on stdin; print how many video frames (raw VIDEO or compressed
PACKET messages) arrived and their latency (capture time to arrival here, p50/p99/max in ms)
as one line of JSON. Used by scripts/bench-net.sh and scripts/bench-moq.sh to judge sl-net,
ssh and a MoQ relay with the same yardstick (docs/wire-format.md)."""
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


lat, lat_all, frames, ended = [], [], 0, False
try:
    read(16)  # stream header
    while True:
        kind, _flags, stream, hlen, plen = struct.unpack("<BBHIQ", read(16))
        header = read(hlen)
        inp.read(plen)
        if kind in (0x02, 0x03) and hlen >= 41:  # VIDEO or PACKET: the same timing header
            frames += 1
            if header[32] & 1:
                (cap,) = struct.unpack_from("<q", header, 33)
                ms = (time.time_ns() - cap) / 1e6
                lat_all.append(ms)
                if frames > skip:
                    lat.append(ms)
        if kind == 0x06 and stream == 0xFFFF:
            ended = True
            break
except EOFError:
    pass
lat.sort()
lat_all.sort()


def pct(xs, p):
    return round(xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))], 2) if xs else None


print(json.dumps({"frames": frames, "ended": ended, "p50_ms": pct(lat, 0.5),
                  "p99_ms": pct(lat, 0.99), "max_ms": round(lat[-1], 2) if lat else None,
                  "p99_with_start_ms": pct(lat_all, 0.99)}))
