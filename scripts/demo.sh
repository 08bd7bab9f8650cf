#!/usr/bin/env bash
# The main job on a built-in test source: installs what is missing, builds, runs a pipeline,
# and says where to look at the result. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bins -q
T=$PWD/target/release
OUT=$PWD/out
mkdir -p "$OUT"
export PATH="$T:$PATH"

echo "demo: 5 seconds of a moving test pattern through a metering stage" >&2
echo "      sl-test -p box -s 1280x720 -r 30 -t 5s | sl-info --pass | sl-info" >&2
sl-test -p box -s 1280x720 -r 30 -t 5s | sl-info --pass | sl-info | tee "$OUT/demo-report.txt"

if [ -x "$T/sl-hls" ]; then
  echo "demo: the same pattern with an overlay, published as HLS" >&2
  rm -rf "$OUT/demo-hls"
  if [ -x "$T/sl-draw" ] && [ -f examples/clock.rhai ]; then
    sl-test -p box -s 1280x720 -r 30 -t 10s --fast | sl-draw examples/clock.rhai | sl-hls "$OUT/demo-hls" --playlist-type vod
  else
    sl-test -p box -s 1280x720 -r 30 -t 10s --fast | sl-hls "$OUT/demo-hls" --playlist-type vod
  fi
  echo "demo: HLS playlist: $OUT/demo-hls/index.m3u8 (serve it with: sl-hls --help, or any HTTP server)" >&2
elif [ -x "$T/sl-file" ]; then
  echo "demo: the same pattern written to an MP4" >&2
  sl-test -p box -s 1280x720 -r 30 -t 5s --fast -f i420 | sl-file -o "$OUT/demo.mp4"
  echo "demo: video: $OUT/demo.mp4" >&2
fi
echo "demo: report: $OUT/demo-report.txt" >&2
