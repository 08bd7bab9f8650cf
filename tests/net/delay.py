#!/usr/bin/env python3
"""Delay every packet nftables queues to NFQUEUE QUEUE by DELAY_MS milliseconds.

This kernel has no netem, so sl-net's loss tests add a fixed delay with this: it binds an
NFQUEUE over raw netlink (no libraries needed), and accepts each packet DELAY_MS after it was
queued (verdicts may be given in any order). Run it inside the network namespace whose nftables
rule says `queue num QUEUE`. It prints "ready" once bound, and runs until killed.

Usage: delay.py QUEUE DELAY_MS
"""
import heapq
import os
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def message(msg_type, queue, attrs, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                       NLM_F_REQUEST, seq, 0) + body


def main():
    queue, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    s.send(message(NFQNL_MSG_CONFIG, queue,
                   [attr(NFQA_CFG_CMD, struct.pack("=BBH", NFQNL_CFG_CMD_BIND, 0, 0))]))
    s.send(message(NFQNL_MSG_CONFIG, queue,
                   [attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META) + b"\0\0\0")]))
    s.send(message(NFQNL_MSG_CONFIG, queue,
                   [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", 16384))]))
    print("ready", flush=True)
    due = []  # (time, packet id)
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        r, _, _ = select.select([s], [], [], timeout)
        if r:
            try:
                data = s.recv(1 << 20)
            except OSError:  # ENOBUFS: the kernel dropped some; go on
                continue
            now = time.monotonic()
            off = 0
            while off + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if length < 16:
                    break
                if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    a = off + 20
                    while a + 4 <= off + length:
                        alen, akind = struct.unpack_from("=HH", data, a)
                        if alen < 4:
                            break
                        if akind & 0x7FFF == NFQA_PACKET_HDR:
                            (pid,) = struct.unpack_from(">I", data, a + 4)
                            heapq.heappush(due, (now + delay, pid))
                        a += (alen + 3) & ~3
                elif mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err != 0:
                        print(f"delay.py: netlink error {err}", file=sys.stderr, flush=True)
                off += (length + 3) & ~3
        now = time.monotonic()
        out = []
        while due and due[0][0] <= now:
            _, pid = heapq.heappop(due)
            out.append(message(NFQNL_MSG_VERDICT, queue,
                               [attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, pid))]))
        for m in out:
            s.send(m)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
