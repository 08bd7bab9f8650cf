#!/usr/bin/env bash
# Throughput of the wire format through pipes, against `cat` (and GStreamer's GDP when
# gst-launch-1.0 is installed) moving the same frames through the same number of pipes, in the
# same run. Also the start-up time of a stage.
#
#   scripts/bench.sh [FRAMES]        (default 300 frames of 1920x1080 RGBA, ~2.5 GB)
#
# The source is `sl-test --fast` in every case; only the middle stages differ:
#   sl:   sl-test | sl-info --pass [x1 or x3] | cat >/dev/null
#   cat:  sl-test | cat            [x1 or x3] | cat >/dev/null
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
RUNS=${RUNS:-3}
cargo build --release -q -p sl-test -p sl-info
T=target/release
SRC="$T/sl-test --fast -n $N -s 1920x1080 -f rgba -p bars"
FRAME_BYTES=$((1920 * 1080 * 4))

best_time() { # best wall time of RUNS runs of a shell pipeline
  local best=999999 t0 t1 dt
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    bash -c "$1"
    t1=$(date +%s.%N)
    dt=$(echo "$t1 - $t0" | bc -l)
    if (($(echo "$dt < $best" | bc -l))); then best=$dt; fi
  done
  echo "$best"
}

mid() { # mid STAGE K: K copies of STAGE joined by pipes
  local s="" i
  for i in $(seq "$2"); do s+=" | $1"; done
  echo "$s"
}

report() { # name seconds
  local fps mbs
  fps=$(echo "$N / $2" | bc -l)
  mbs=$(echo "$N * $FRAME_BYTES / $2 / 1000000" | bc -l)
  printf '  %-34s %7.1f frames/s  %7.0f MB/s\n' "$1" "$fps" "$mbs"
}

echo "streamlib pipe throughput: $N frames of 1920x1080 rgba ($((N * FRAME_BYTES / 1000000)) MB), best of $RUNS"
declare -A secs
for k in 1 3; do
  secs[sl$k]=$(best_time "$SRC $(mid "$T/sl-info --pass --no-progress -q" $k) | cat >/dev/null")
  secs[cat$k]=$(best_time "$SRC $(mid cat $k) | cat >/dev/null")
  report "sl-info --pass x$k" "${secs[sl$k]}"
  report "cat x$k (same bytes)" "${secs[cat$k]}"
  printf '  ratio sl/cat with %d stage(s): %.2fx (floor 0.90)\n' "$k" "$(echo "${secs[cat$k]} / ${secs[sl$k]}" | bc -l)"
done

if command -v gst-launch-1.0 >/dev/null 2>&1; then
  # GStreamer's own pass-through: gdpdepay ! gdppay between pipes, fed by the same frames
  # serialised with gdppay.
  G="gst-launch-1.0 -q"
  GSRC="$G videotestsrc num-buffers=$N pattern=solid-color ! video/x-raw,format=RGBA,width=1920,height=1080,framerate=30/1 ! gdppay ! fdsink fd=1"
  GMID="$G fdsrc fd=0 blocksize=1048576 ! gdpdepay ! gdppay ! fdsink fd=1"
  secs[gsrc]=$(best_time "$GSRC | cat >/dev/null")
  secs[gst1]=$(best_time "$GSRC | $GMID | cat >/dev/null")
  report "gstreamer source alone" "${secs[gsrc]}"
  report "gstreamer gdpdepay!gdppay x1" "${secs[gst1]}"
  printf '  ratio sl/gstreamer with 1 stage: %.2fx\n' "$(echo "${secs[gst1]} / ${secs[sl1]}" | bc -l)"
else
  echo "  (gst-launch-1.0 not installed: apt-get install gstreamer1.0-tools gstreamer1.0-plugins-bad for the GStreamer comparison)"
fi

if command -v hyperfine >/dev/null 2>&1; then
  echo "start-up time (hyperfine, --version):"
  hyperfine -N --warmup 20 --runs 200 --style none --export-json /tmp/sl-startup.json \
    "$T/sl-test --version" "$T/sl-info --version" "cat --version" >/dev/null 2>&1
  python3 - <<'PY'
import json
for r in json.load(open("/tmp/sl-startup.json"))["results"]:
    print(f"  {r['command']:<40} {r['mean']*1000:6.2f} ms ± {r['stddev']*1000:.2f}")
PY
fi
