#!/usr/bin/env bash
# A Python pass-through of 1080p RGBA (reading and writing every frame) against `cat` and
# `sl-info --pass`, in the same run, each between the same source and sink:
#   sl-test --fast -n N -s 1920x1080 -f rgba | MIDDLE | cat >/dev/null
#
#   scripts/bench-python.sh [FRAMES]    (default 150 frames, ~1.2 GB; RUNS=3 rounds, best kept)
#
# The Python middles, each removing one cost of the one before:
#   naive       the plugins.md sketch done the obvious way: read(n) makes a new bytes object per
#               header and payload, prefix + header + payload are joined into one more (a copy
#               of every frame), then write()
#   readinto    streamlib.Reader/Writer: readinto a new numpy buffer per frame, frames as views,
#               one os.writev of header and payload (the join's copy is gone)
#   +reuse      payload buffers reused once no frame refers to them (no page faults of a fresh
#               8 MB buffer per frame)
#   +pipes      1 MiB pipes (F_SETPIPE_SZ) instead of 64 KiB, as the Rust stages ask for
#   stage       @streamlib.filter (identity): all the above, and the writer in a thread of its
#               own so the next frame is read while this one is written
#   sl-invert   python/examples/sl-invert: a stage that also touches every pixel (numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-150}
RUNS=${RUNS:-3}
T=${CARGO_TARGET_DIR:-target}/release
if [ ! -x $T/sl-test ] || [ ! -x $T/sl-info ]; then
  cargo build --release -q -p sl-test -p sl-info
fi
PY=$(scripts/test-python.sh --install-only)
SRC="$T/sl-test --fast -n $N -s 1920x1080 -f rgba -p bars"
FRAME_BYTES=$((1920 * 1080 * 4))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/naive.py" <<'PY'
import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
head = inp.read(16)
out.write(head)
while True:
    prefix = inp.read(16)
    if len(prefix) < 16:
        sys.exit("truncated stream")
    kind, flags, stream, hlen, plen = struct.unpack("<BBHIQ", prefix)
    header, payload = inp.read(hlen), inp.read(plen)
    out.write(prefix + header + payload)
    if kind == 6 and stream == 0xFFFF:
        break
out.flush()
PY
cat >"$tmp/reader.py" <<'PY'
import sys, streamlib
reuse, pipes = "reuse" in sys.argv, "pipes" in sys.argv
if pipes:
    streamlib.enlarge_pipe(0)
    streamlib.enlarge_pipe(1)
w = streamlib.Writer(sys.stdout.buffer)
for m in streamlib.Reader(sys.stdin.buffer, reuse_buffers=reuse):
    w.write(m)
w.finish()
PY
cat >"$tmp/stage.py" <<'PY'
import streamlib

@streamlib.filter
def identity(frame):
    pass

identity.main([])
PY

time_once() { # wall time of one run of a shell pipeline
  local t0 t1
  t0=$(date +%s.%N)
  bash -o pipefail -c "$1"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

declare -A secs
names=(cat sl-info naive readinto +reuse +pipes stage sl-invert)
declare -A mids=(
  [cat]="cat"
  [sl-info]="$T/sl-info --pass --no-progress -q"
  [naive]="$PY $tmp/naive.py"
  [readinto]="$PY $tmp/reader.py"
  [+reuse]="$PY $tmp/reader.py reuse"
  [+pipes]="$PY $tmp/reader.py reuse pipes"
  [stage]="$PY $tmp/stage.py"
  [sl-invert]="$PY python/examples/sl-invert"
)
echo "Python pass-through: $N frames of 1920x1080 rgba ($((N * FRAME_BYTES / 1000000)) MB), best of $RUNS, $(nproc) cores"
echo "  $($PY -c 'import sys, numpy; print("python", sys.version.split()[0], "numpy", numpy.__version__)')"
# round robin (every middle once, RUNS times), best run of each kept: a load that drifts
# during the benchmark then weighs on every middle alike
for _ in $(seq "$RUNS"); do
  for name in "${names[@]}"; do
    t=$(time_once "$SRC | ${mids[$name]} | cat >/dev/null")
    if [ -z "${secs[$name]:-}" ] || (($(echo "$t < ${secs[$name]}" | bc -l))); then secs[$name]=$t; fi
  done
done
printf '  %-10s %8s %9s %9s %12s\n' middle frames/s MB/s "vs cat" "vs sl-info"
for name in "${names[@]}"; do
  s=${secs[$name]}
  printf '  %-10s %8.1f %9.0f %8.2fx %11.2fx\n' "$name" "$(echo "$N / $s" | bc -l)" \
    "$(echo "$N * $FRAME_BYTES / $s / 1000000" | bc -l)" \
    "$(echo "${secs[cat]} / $s" | bc -l)" "$(echo "${secs[sl-info]} / $s" | bc -l)"
done
echo "  (ratios are throughput relative to that middle: above 1 is faster)"
