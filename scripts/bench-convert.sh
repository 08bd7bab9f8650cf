#!/usr/bin/env bash
# sl-convert against ffmpeg's scale filter doing the same conversion on the same frames, in
# the same run: 1080p RGBA in, 720p I420 out (bicubic), read from a file in the page cache
# and written to a pipe.
#
#   scripts/bench-convert.sh [FRAMES]      (default 100 frames of 1920x1080 RGBA, ~830 MB)
#
#   sl:     sl-convert -s 1280x720 -f i420 < in.slv | cat >/dev/null
#   ffmpeg: ffmpeg -f rawvideo -pix_fmt rgba -s 1920x1080 -i in.rgba
#                  -vf scale=1280:720:flags=bicubic,format=yuv420p -f rawvideo - | cat >/dev/null
# Also -r 15 (half the frames: ffmpeg's fps filter) for both. Wall and CPU time (user+sys
# of the whole pipeline, cat included), best of RUNS: on a shared machine CPU time is steadier.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
RUNS=${RUNS:-3}
command -v ffmpeg >/dev/null || { echo "ffmpeg is missing: run scripts/setup.sh" >&2; exit 1; }
cargo build --release -q -p sl-test -p sl-convert -p sl-file
T=$PWD/target/release
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
# the same frames for both: sl-test's moving box, as a stream and as raw pixels (sl-file
# writes the stream's frames as rawvideo in NUT, ffmpeg unwraps them, byte for byte)
"$T/sl-test" --fast -n "$N" -s 1920x1080 -f rgba -p box -q >"$DIR/in.slv"
"$T/sl-file" -q -o "$DIR/in.nut" --codec rawvideo <"$DIR/in.slv"
ffmpeg -v error -i "$DIR/in.nut" -f rawvideo -pix_fmt rgba "$DIR/in.rgba"
[ "$(stat -c %s "$DIR/in.rgba")" -eq $((N * 1920 * 1080 * 4)) ] \
  || { echo "bench-convert: the raw copy of the frames has the wrong size" >&2; exit 1; }

best_time() { # "wall cpu": best wall time and best CPU time (user+sys) of RUNS runs
  local best=999999 bcpu=999999 out wall cpu
  for _ in $(seq "$RUNS"); do
    out=$( { TIMEFORMAT='%R %U %S'; time bash -c "$1"; } 2>&1 >/dev/null | tail -1)
    read -r wall u s <<<"$out"
    cpu=$(echo "$u + $s" | bc -l)
    if (($(echo "$wall < $best" | bc -l))); then best=$wall; fi
    if (($(echo "$cpu < $bcpu" | bc -l))); then bcpu=$cpu; fi
  done
  echo "$best $bcpu"
}

FF="ffmpeg -v error -f rawvideo -pix_fmt rgba -s 1920x1080 -r 30 -i $DIR/in.rgba"
echo "sl-convert vs ffmpeg: $N frames of 1920x1080 rgba, best of $RUNS"
for case in "scale" "scale+fps"; do
  if [[ $case == scale ]]; then
    sl="$T/sl-convert -q -s 1280x720 -f i420 <$DIR/in.slv | cat >/dev/null"
    ff="$FF -vf scale=1280:720:flags=bicubic,format=yuv420p -f rawvideo - | cat >/dev/null"
  else
    sl="$T/sl-convert -q -s 1280x720 -f i420 -r 15 <$DIR/in.slv | cat >/dev/null"
    ff="$FF -vf fps=15,scale=1280:720:flags=bicubic,format=yuv420p -f rawvideo - | cat >/dev/null"
  fi
  read -r s sc <<<"$(best_time "$sl")"
  read -r f fc <<<"$(best_time "$ff")"
  printf '  %-10s sl-convert %6.1f frames in/s (%.2f s CPU)   ffmpeg %6.1f frames in/s (%.2f s CPU)   ratio ffmpeg/sl: wall %.2fx, CPU %.2fx\n' \
    "$case" "$(echo "$N / $s" | bc -l)" "$sc" "$(echo "$N / $f" | bc -l)" "$fc" "$(echo "$f / $s" | bc -l)" "$(echo "$fc / $sc" | bc -l)"
done
