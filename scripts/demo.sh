#!/usr/bin/env bash
# The main job on a built-in test source: installs what is missing, builds, runs
#   sl-test | sl-draw (clock overlay) | sl-hls
# and says where to look at the result. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bins -q
T=$PWD/target/release
OUT=$PWD/out
export PATH="$T:$PATH"
mkdir -p "$OUT"
rm -rf "$OUT/demo-hls"

echo "demo: 10 s of a moving test pattern with a timecode overlay, published as HLS:" >&2
echo "      sl-test -p box -s 1280x720 -t 10s --fast | sl-draw examples/clock.rhai | sl-info --pass | sl-hls out/demo-hls --playlist-type vod" >&2
sl-test -p box -s 1280x720 -r 30 -t 10s --fast \
  | sl-draw examples/clock.rhai \
  | sl-info --pass --no-progress \
  | sl-hls "$OUT/demo-hls" --playlist-type vod 2>&1

# an independent look at the result
ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames \
  -of default=noprint_wrappers=1 "$OUT/demo-hls/index.m3u8" | awk '!seen[$0]++' | sed 's/^/demo: ffprobe: /' >&2
ffmpeg -v error -y -ss 5 -i "$OUT/demo-hls/index.m3u8" -frames:v 1 "$OUT/demo-frame.png"

cat >&2 <<MSG
demo: done. Look at:
  $OUT/demo-hls/index.m3u8   the HLS playlist (VOD, 2 s segments)
  $OUT/demo-frame.png        one frame of it, at 5 s
To watch it live in a browser instead:
  sl-test -p box | sl-draw examples/clock.rhai | sl-hls $OUT/live --serve 127.0.0.1:8080
  then open http://127.0.0.1:8080/
MSG
