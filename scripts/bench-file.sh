#!/usr/bin/env bash
# sl-file against ffmpeg doing the same work, measured in the same run.
#
#   decode:    sl-file in.mp4 [-f rgba] | sl-info   vs  ffmpeg -i in.mp4 -f rawvideo -pix_fmt X - >/dev/null
#   transcode: sl-file in.mp4 | sl-file -o out.mp4  vs  ffmpeg -i in.mp4 -c:v libx264 (same settings) out.mp4
#
# The two commands of a pair run alternately (RUNS times each) and the median wall time of
# each is compared, so a load change on a shared machine hits both about equally. Ratios are
# frames per second of sl-file over ffmpeg's: above 1.0, sl-file is faster.
#
# Usage: scripts/bench-file.sh [RUNS] (default 3). Needs ffmpeg; builds the release binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
SECONDS_OF_VIDEO=${BENCH_SECONDS:-10}
FRAMES=$((SECONDS_OF_VIDEO * 30))
PRESET=veryfast
CRF=23
GOP=60

cargo build --release -q -p sl-file -p sl-info
BIN=target/release
DIR=$(mktemp -d /tmp/bench-file.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
IN=$DIR/in.mp4

echo "generating a ${SECONDS_OF_VIDEO} s 1080p30 H.264 file ($FRAMES frames)..." >&2
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
  -t "$SECONDS_OF_VIDEO" -c:v libx264 -preset medium -pix_fmt yuv420p "$IN"

now() { date +%s.%N; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# compare NAME SL_CMD FF_CMD: runs both RUNS times, alternating, prints fps and ratio
compare() {
  local name=$1 sl=$2 ff=$3 sl_t=() ff_t=() t0 t1
  for ((i = 0; i < RUNS; i++)); do
    t0=$(now); bash -c "$sl"; t1=$(now); sl_t+=("$(awk "BEGIN {print $t1 - $t0}")")
    t0=$(now); bash -c "$ff"; t1=$(now); ff_t+=("$(awk "BEGIN {print $t1 - $t0}")")
  done
  local sl_m ff_m
  sl_m=$(median "${sl_t[@]}")
  ff_m=$(median "${ff_t[@]}")
  awk -v n="$name" -v f="$FRAMES" -v s="$sl_m" -v g="$ff_m" 'BEGIN {
    printf "%-22s sl-file %7.1f fps (%.2f s)   ffmpeg %7.1f fps (%.2f s)   ratio %.2f\n",
      n, f / s, s, f / g, g, g / s }'
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs each, medians" >&2
compare "decode (i420, native)" \
  "$BIN/sl-file $IN | $BIN/sl-info >/dev/null" \
  "ffmpeg -v error -i $IN -f rawvideo -pix_fmt yuv420p - >/dev/null"
compare "decode to rgba" \
  "$BIN/sl-file $IN -f rgba | $BIN/sl-info >/dev/null" \
  "ffmpeg -v error -i $IN -f rawvideo -pix_fmt rgba - >/dev/null"
# where the rgba gap comes from: the same decode and conversion without the pipe and consumer
compare "  rgba, no pipe" \
  "$BIN/sl-file $IN -f rgba >/dev/null" \
  "ffmpeg -v error -i $IN -f rawvideo -pix_fmt rgba - >/dev/null"
compare "transcode (x264 $PRESET)" \
  "$BIN/sl-file $IN | $BIN/sl-file -o $DIR/sl.mp4 --preset $PRESET --crf $CRF -g $GOP" \
  "ffmpeg -v error -y -i $IN -c:v libx264 -preset $PRESET -crf $CRF -g $GOP -pix_fmt yuv420p $DIR/ff.mp4"
for f in sl ff; do
  n=$(ffprobe -v error -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$DIR/$f.mp4")
  [ "$n" = "$FRAMES" ] || { echo "bench: $f.mp4 has $n frames, expected $FRAMES" >&2; exit 1; }
done
