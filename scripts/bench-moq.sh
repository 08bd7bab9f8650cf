#!/usr/bin/env bash
# sl-net through a MoQ relay against sl-net's own serve, every figure from the same run:
# 720p30 H.264 (ffmpeg's x264, zero latency, a keyframe a second, as a PACKET stream stamped
# with its publication time) to N subscribers (default 50):
#   A. sl-net publish -> moq-relay -> N x sl-net subscribe --policy block
#   B. sl-net serve --wait-for N    -> N x sl-net recv --policy block
# Reports CPU seconds per subscriber (each subscriber process, and the serving side divided
# by N: the relay, or serve) and p50/p99 latency from publication to the subscriber's output
# (sl-info's latency, per subscriber; the worst subscriber's p99 and the median one's).
# Loopback only; the machine's load makes absolute figures noisy: compare A and B.
#
# Usage: scripts/bench-moq.sh [SUBSCRIBERS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
SECS=${2:-20}
scripts/setup.sh
cargo build --release -q --workspace --bins   # the suite's feature set: a subset would rebuild shared crates
BIN=$PWD/target/release
RELAY=${MOQ_RELAY:-${STREAMLIB_CACHE:-$HOME/.cache/streamlib}/moq-relay-0.17.10/bin/moq-relay}
[ -x "$RELAY" ] || { echo "bench-moq: $RELAY is missing: run scripts/setup.sh" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "bench-moq: ffmpeg is missing: run scripts/setup.sh" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bench-moq.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
. scripts/bench-lib.sh
cpu_of() { awk '{print ($14+$15)/100}' "/proc/$1/stat" 2>/dev/null || echo 0; }

ffmpeg -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=30" -t "$SECS" \
  -c:v libx264 -preset veryfast -tune zerolatency -x264-params "keyint=30:aud=1" \
  -bsf:v h264_mp4toannexb -f h264 "$WORK/in.h264"
PY=$(scripts/test-python.sh --install-only)   # the package's venv (numpy): the packetiser imports it
source_cmd() { "$PY" scripts/net/h264_packets.py "$WORK/in.h264" 1280 720 30; }

# Each subscriber: `sl-net ... | sl-info --json` in a bash of its own, whose `times` at the
# end gives its children's CPU (sl-net's and sl-info's; sl-info's is the same in A and B).
subscriber() { # $1 name, rest: sl-net args
  local name=$1; shift
  bash -c '"$@" 2>/dev/null | "'"$BIN"'/sl-info" --json > "'"$WORK"'/'"$name"'.json" 2>/dev/null; times > "'"$WORK"'/'"$name"'.times"' _ "$@" &
  PIDS+=($!)
}

report() { # $1 label, $2 prefix, $3 server cpu seconds
  python3 - "$WORK" "$2" "$N" "$3" "$1" <<'PY'
import json, sys, glob, statistics
work, prefix, n, server, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
p99s, p50s, frames, cpus = [], [], [], []
for i in range(n):
    try:
        j = json.load(open(f"{work}/{prefix}{i}.json"))
        s = j["streams"][0]
        frames.append(s["frames"])
        lat = s["latency"]["latency"]
        p99s.append(lat["p99_ms"]); p50s.append(lat["p50_ms"])
    except Exception:
        frames.append(0)
    try:
        # `times`: second line is the children's user and system time, e.g. 0m1.23s 0m0.45s
        line = open(f"{work}/{prefix}{i}.times").read().splitlines()[1].split()
        sec = lambda t: float(t.split("m")[0]) * 60 + float(t.split("m")[1].rstrip("s"))
        cpus.append(sec(line[0]) + sec(line[1]))
    except Exception:
        pass
cpu = statistics.mean(cpus) if cpus else float("nan")
print(f"{label:28s} subscribers {len(p99s)}/{n}, frames min {min(frames)} max {max(frames)}, "
      f"CPU/subscriber {cpu:.2f} s (+ server {server / n:.3f} s), "
      f"latency p50 {statistics.median(p50s) if p50s else float('nan'):.1f} ms, "
      f"p99 median {statistics.median(p99s) if p99s else float('nan'):.1f} ms, worst {max(p99s) if p99s else float('nan'):.1f} ms")
PY
}

# A. MoQ relay
PORT=$(free_port)
"$RELAY" --listen 127.0.0.1:$PORT --listen-tls-generate localhost --web-http-listen 127.0.0.1:$PORT \
  --auth-public '**' >/dev/null 2>&1 &
RELAY_PID=$!; PIDS+=($RELAY_PID)
until curl -sf "http://127.0.0.1:$PORT/certificate.sha256" >/dev/null; do sleep 0.2; done
FP=$(curl -sf "http://127.0.0.1:$PORT/certificate.sha256")
for i in $(seq 0 $((N - 1))); do
  subscriber "moq$i" "$BIN/sl-net" subscribe "moq://127.0.0.1:$PORT/bench" --policy block --fingerprint "$FP"
done
sleep 3
source_cmd | "$BIN/sl-net" -q publish "moq://127.0.0.1:$PORT/bench" --fingerprint "$FP"
wait "${PIDS[@]:1}" 2>/dev/null || true
RELAY_CPU=$(cpu_of $RELAY_PID)
kill $RELAY_PID 2>/dev/null || true

# B. sl-net serve, same source
PIDS=()
SPORT=$(free_port)
source_cmd | exec "$BIN/sl-net" -q serve 127.0.0.1:$SPORT --wait-for "$N" --insecure-accept-any-key &
SERVE_PID=$!; PIDS+=($SERVE_PID)
sleep 1
for i in $(seq 0 $((N - 1))); do
  subscriber "serve$i" "$BIN/sl-net" recv "127.0.0.1:$SPORT" --policy block --insecure-accept-any-key
done
SERVE_CPU=0
while kill -0 $SERVE_PID 2>/dev/null; do SERVE_CPU=$(cpu_of $SERVE_PID); sleep 0.5; done
wait 2>/dev/null || true

echo "720p30 H.264, $SECS s, $N subscribers on loopback (machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
report "moq-relay (publish/subscribe)" moq "$RELAY_CPU"
report "sl-net serve/recv" serve "$SERVE_CPU"
