#!/usr/bin/env bash
# The five workloads of docs/performance.md through the streamlib stages, against the same
# work through ffmpeg, in one run: pass-through, decode, transcode, draw and HLS. With
# BEFORE=DIR, the same workloads also run through the binaries in DIR (an older build: the
# "before" of a change), alternating with the others, so both sets of ratios come from the
# same minutes of the same machine.
#
#   scripts/bench-stages.sh [FRAMES=150] [RUNS=3]
#   BEFORE=/tmp/old/target/release scripts/bench-stages.sh
#
#   pass-through  sl-test --fast | sl-info --pass | cat     vs  sl-test --fast | cat | cat
#                 (and gst-launch-1.0 gdpdepay ! gdppay when GStreamer is installed)
#   decode        sl-file in.mp4 | sl-info                   vs  ffmpeg -i in.mp4 -f rawvideo -
#   transcode     sl-file in.mp4 | sl-file -o out.mp4        vs  ffmpeg -i in.mp4 -c:v libx264 out.mp4
#   draw          cat in.slv | sl-draw hud.rhai | cat        vs  cat in.rgba | ffmpeg -vf drawbox,drawtext | cat
#   hls           sl-file in.mp4 | sl-hls out/               vs  ffmpeg -i in.mp4 -f hls out/index.m3u8
#
# Input: FRAMES frames of 1920x1080 at 30 fps (ffmpeg's testsrc2 as H.264 for the file
# workloads, sl-test's colour bars for the others). Encoders on both sides: libx264
# veryfast, crf 23, a keyframe every 60 frames, no audio. Every command of a workload runs
# RUNS times, the commands taking turns, and the median wall time of each is compared.
# Ratios are ffmpeg's (or cat's) time over streamlib's: above 1, streamlib is faster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
N=${1:-150}
RUNS=${2:-3}
BEFORE=${BEFORE:-}
FONT=${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
for tool in ffmpeg bc; do
  command -v "$tool" >/dev/null || { echo "bench-stages.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
[ -f "$FONT" ] || { echo "bench-stages.sh: no $FONT: run scripts/setup.sh (fonts-dejavu-core)" >&2; exit 1; }
if [[ "${SL_NO_BUILD:-0}" != 1 ]]; then
  cargo build --release -q -p sl-test -p sl-info -p sl-file -p sl-draw -p sl-hls
fi
AFTER=target/release
if [[ -n "$BEFORE" ]]; then
  for b in sl-test sl-info sl-file sl-draw sl-hls; do
    [ -x "$BEFORE/$b" ] || { echo "bench-stages.sh: BEFORE=$BEFORE has no $b" >&2; exit 1; }
  done
fi
W=$(mktemp -d /tmp/bench-stages.XXXXXX)
trap 'rm -rf "$W"' EXIT

echo "making the inputs ($N frames of 1080p30)..." >&2
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" -frames:v "$N" \
  -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p "$W/in.mp4"
"$AFTER/sl-test" --fast -n "$N" -s 1920x1080 -f rgba -p bars | tee "$W/in.slv" |
  strip_framing $((1920 * 1080 * 4)) >"$W/in.rgba"
frame_bytes=$((1920 * 1080 * 4))
got=$(($(stat -c %s "$W/in.rgba") / frame_bytes))
[ "$got" = "$N" ] || { echo "bench-stages.sh: took $got frames out of in.slv, not $N" >&2; exit 1; }

VF=$(hud_vf "$FONT")
X264="-c:v libx264 -preset veryfast -crf 23 -g 60 -sc_threshold 0 -pix_fmt yuv420p"

# The streamlib side of each workload, for the binaries in $1.
sl_cmd() {
  local B=$1
  case $2 in
    pass) echo "$B/sl-test --fast -n $N -s 1920x1080 -f rgba -p bars | $B/sl-info --pass -q | cat >/dev/null" ;;
    decode) echo "$B/sl-file $W/in.mp4 | $B/sl-info -q >/dev/null" ;;
    transcode) echo "$B/sl-file $W/in.mp4 | $B/sl-file -o $W/sl.mp4 --preset veryfast --crf 23 -g 60" ;;
    draw) echo "cat $W/in.slv | $B/sl-draw examples/hud.rhai | cat >/dev/null" ;;
    hls) echo "rm -rf $W/slhls && $B/sl-file $W/in.mp4 --no-audio | $B/sl-hls $W/slhls -q --preset veryfast --crf 23" ;;
  esac
}
# The other tool's side.
other_cmd() {
  case $1 in
    pass) echo "$AFTER/sl-test --fast -n $N -s 1920x1080 -f rgba -p bars | cat | cat >/dev/null" ;;
    decode) echo "ffmpeg -v error -nostdin -i $W/in.mp4 -f rawvideo - >/dev/null" ;;
    transcode) echo "ffmpeg -v error -nostdin -y -i $W/in.mp4 $X264 $W/ff.mp4" ;;
    draw) echo "cat $W/in.rgba | ffmpeg -v error -nostdin -f rawvideo -pix_fmt rgba -s 1920x1080 -r 30 -i - -vf \"$VF\" -f rawvideo -pix_fmt rgba - | cat >/dev/null" ;;
    hls) echo "rm -rf $W/ffhls && mkdir -p $W/ffhls && ffmpeg -v error -nostdin -y -i $W/in.mp4 -an $X264 -flags +cgop -f hls -hls_time 2 -hls_list_size 6 -hls_flags delete_segments+temp_file+independent_segments -hls_segment_filename $W/ffhls/seg_%05d.ts $W/ffhls/index.m3u8" ;;
  esac
}
other_name() {
  case $1 in
    pass) echo "cat" ;;
    *) echo "ffmpeg" ;;
  esac
}

now() { date +%s.%N; }
timed() { # seconds one run of a shell command takes; a failing command stops the bench
  local t0 t1
  t0=$(now)
  bash -o pipefail -c "$1" || { echo "bench-stages.sh: failed: $1" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "streamlib stages vs ffmpeg: $N frames of 1920x1080, median of $RUNS runs each, taking turns; load average at the start: $load"
printf '%-12s %10s %10s %10s %8s' workload other after other/after ""
[[ -n "$BEFORE" ]] && printf '%10s %13s' before other/before
echo
for w in pass decode transcode draw hls; do
  o=() a=() b=()
  for ((i = 0; i < RUNS; i++)); do
    o+=("$(timed "$(other_cmd $w)")")
    a+=("$(timed "$(sl_cmd "$AFTER" $w)")")
    [[ -n "$BEFORE" ]] && b+=("$(timed "$(sl_cmd "$BEFORE" $w)")")
  done
  om=$(median "${o[@]}")
  am=$(median "${a[@]}")
  printf '%-12s %9.2fs %9.2fs %9.2fx %8s' "$w" "$om" "$am" "$(echo "$om / $am" | bc -l)" "($(other_name $w))"
  if [[ -n "$BEFORE" ]]; then
    bm=$(median "${b[@]}")
    printf '%9.2fs %12.2fx' "$bm" "$(echo "$om / $bm" | bc -l)"
  fi
  echo
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
