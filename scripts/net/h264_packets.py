#!/usr/bin/env python3
"""Turn an H.264 Annex B file (with access unit delimiters) into a streamlib PACKET stream on
stdout, paced at FPS, each packet stamped with its capture time as it is written (so a
subscriber's sl-info measures latency from publication). Used by scripts/bench-moq.sh.

Usage: h264_packets.py FILE.h264 WIDTH HEIGHT FPS
"""
import array
import fcntl
import sys
import termios
import time
from fractions import Fraction

sys.path.insert(0, __file__.rsplit("/scripts/", 1)[0] + "/python")
from streamlib.codec import encode  # noqa: E402
from streamlib.messages import End, Packet, StreamInfo  # noqa: E402

MAGIC = b"\x89SLV\r\n\x1a\n" + bytes([1, 0, 0, 0, 0, 0, 0, 0])


def nals(data):
    """(start, type) of every NAL unit (after its start code)."""
    i, out = 0, []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            return out
        out.append((j + 3, data[j + 3] & 0x1F))
        i = j + 3


def main():
    path, width, height, fps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = open(path, "rb").read()
    units = nals(data)
    # access units start at each AUD (type 9)
    starts = [s for s, t in units if t == 9]
    aus = []
    for k, s in enumerate(starts):
        begin = data.rfind(b"\x00\x00\x01", 0, s) if k else 0
        end = data.rfind(b"\x00\x00\x01", 0, starts[k + 1]) if k + 1 < len(starts) else len(data)
        if end > 0 and data[end - 1] == 0:
            end -= 1
        if begin > 0 and data[begin - 1] == 0:
            begin -= 1
        aus.append(data[begin:end])
    sps_pps = b"".join(b"\x00\x00\x00\x01" + data[s:data.find(b"\x00\x00\x01", s) if data.find(b"\x00\x00\x01", s) > 0 else len(data)]
                       for s, t in units[:8] if t in (7, 8))
    out = sys.stdout.buffer
    out.write(MAGIC)

    def send(msg):
        head, parts, _ = encode(msg)
        out.write(head)
        for p in parts:
            out.write(p)

    tb = Fraction(1, fps)
    send(StreamInfo("video", format="h264", width=width, height=height, fps=Fraction(fps, 1),
                    time_base=tb, extradata=sps_pps, source_id="bench"))
    out.flush()
    # A live source starts when its consumer reads: `sl-net serve --wait-for N` reads nothing
    # until N receivers are in, and frames stamped while the pipe was full would count that
    # wait as latency. So wait until the pipe has been drained (FIONREAD on a pipe).
    pending = array.array("i", [0])
    while True:
        try:
            fcntl.ioctl(out.fileno(), termios.FIONREAD, pending)
        except OSError:
            break  # not a pipe
        if pending[0] == 0:
            break
        time.sleep(0.01)
    t0 = time.monotonic()
    for n, au in enumerate(aus):
        delay = t0 + n / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        key = any(t == 5 for _, t in nals(au))
        send(Packet(au, "h264", width, height, frame_number=n, pts=n, time_base=tb,
                    capture_time=time.time_ns(), keyframe=key, source_id="bench"))
        out.flush()
    send(End())
    out.flush()


if __name__ == "__main__":
    main()
