#!/usr/bin/env bash
# Where each frame's time goes on a 720p30 link over loopback, the run of scripts/bench-net.sh's
# latency part (sl-test | sl-net send  ->  sl-net listen | scripts/net/latency.py), traced with
# perf: the source's and the listener's writes into their pipes, the sender's reads and
# datagram sends, the reader's reads, and every context switch on every CPU.
# scripts/net/timeline.py then splits each frame (capture to the reader having it) into phases
# and says which process had each CPU meanwhile, idle included, for the middle half of the
# frames and for the slowest 5%.
#
# Usage: scripts/net/timeline.sh [FRAMES] [FORMAT]   (default 300 rgba; as root)
# Needs: perf (Debian: linux-perf) and the release binaries (cargo build --release --bins).
# The trace slows the run (720p RGBA p50 3.9-4.8 ms traced in four runs, against 3.4-3.9
# untraced), so what this is for is the order and split of the phases. Its idle time did not
# turn into a gain: overlapping the output with the link left the untraced p50 where it was
# (docs/sl-net.md, "the listener writing each frame out as it arrives").
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/bench-lib.sh
FRAMES=${1:-300}
FORMAT=${2:-rgba}
BIN=target/release
command -v perf >/dev/null || { echo "timeline: perf is missing: apt-get install linux-perf" >&2; exit 1; }
for b in sl-test sl-net; do
  [ -x "$BIN/$b" ] || { echo "timeline: $BIN/$b is missing: cargo build --release --bins" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/timeline.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/a" "$WORK/b"
FA=$(XDG_CONFIG_HOME=$WORK/a $BIN/sl-net key 2>/dev/null)
FB=$(XDG_CONFIG_HOME=$WORK/b $BIN/sl-net key 2>/dev/null)
P=$(free_port)

# every event but perf's own (its writes would trace themselves)
EVENTS=""
for e in sched:sched_switch syscalls:sys_enter_vmsplice syscalls:sys_enter_writev \
  syscalls:sys_exit_read syscalls:sys_enter_sendmsg; do
  EVENTS="$EVENTS -e $e --filter \"common_pid != \$\$\""
done
SECS=$(( FRAMES / 30 + 4 ))
sh -c "exec perf record -q -a -o $WORK/perf.data $EVENTS -- sleep $SECS" 2>/dev/null &
PERF=$!
sleep 1

XDG_CONFIG_HOME=$WORK/b $BIN/sl-net listen "127.0.0.1:$P" --peer "$FA" -q \
  | python3 scripts/net/latency.py --skip 30 >"$WORK/lat.json" &
LPID=$!
wait_udp "$P"
$BIN/sl-test -n "$FRAMES" -s 720p -f "$FORMAT" --fps 30 -p box \
  | XDG_CONFIG_HOME=$WORK/a $BIN/sl-net send "127.0.0.1:$P" --peer "$FB" -q
wait $LPID
wait $PERF || true
echo "timeline: $FRAMES frames of 720p $FORMAT, the judge says $(cat "$WORK/lat.json")"
perf script -i "$WORK/perf.data" -F comm,pid,tid,cpu,time,event,trace 2>/dev/null >"$WORK/trace.txt"
python3 scripts/net/timeline.py "$WORK/trace.txt"
