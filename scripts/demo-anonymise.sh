#!/usr/bin/env bash
# The face anonymiser on a real photograph panned over time: installs what is missing,
# builds, then
#   a 10 s pan across the 1927 Solvay conference photograph (29 faces; ffmpeg makes the pan)
#   | sl-ml centerface.onnx | sl-draw examples/anonymise.rhai | sl-hls out/anonymise-hls
# and an mp4 of the same, and says where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bins -q
T=$PWD/target/release
OUT=$PWD/out
export PATH="$T:$PATH"
M=$(scripts/deps/models.sh)
mkdir -p "$OUT"
rm -rf "$OUT/anonymise-hls"

# the pan: a 1280x720 window sliding across the rows of faces (the photograph scaled to 2400 wide)
ffmpeg -v error -y -loop 1 -framerate 30 -i "$M/solvay_conference_1927.jpg" \
  -vf "scale=2400:-2,crop=1280:720:x='(in_w-out_w)*t/10':y='420+120*sin(t)',format=yuv420p" \
  -t 10 -c:v libx264 -preset veryfast "$OUT/solvay-pan.mp4"

echo "demo: sl-file out/solvay-pan.mp4 | sl-ml centerface.onnx | sl-draw examples/anonymise.rhai | sl-hls out/anonymise-hls" >&2
sl-file "$OUT/solvay-pan.mp4" \
  | sl-ml "$M/centerface.onnx" --stats \
  | sl-draw examples/anonymise.rhai \
  | sl-info --pass --no-progress \
  | sl-hls "$OUT/anonymise-hls" --playlist-type vod
ffmpeg -v error -y -i "$OUT/anonymise-hls/index.m3u8" -c copy "$OUT/anonymised.mp4"
ffmpeg -v error -y -ss 5 -i "$OUT/anonymise-hls/index.m3u8" -frames:v 1 "$OUT/anonymise-frame.png"
ffmpeg -v error -y -ss 5 -i "$OUT/solvay-pan.mp4" -frames:v 1 "$OUT/anonymise-before.png"

cat >&2 <<MSG
demo: done. Look at:
  $OUT/anonymise-hls/index.m3u8   the anonymised pan as HLS (VOD)
  $OUT/anonymised.mp4             the same as an mp4
  $OUT/anonymise-frame.png        one frame at 5 s, every face hidden
  $OUT/anonymise-before.png       the same frame before
Live, from a camera, never holding a frame back:
  sl-cam | sl-ml --live $M/centerface.onnx | sl-draw examples/anonymise.rhai | sl-show
MSG
