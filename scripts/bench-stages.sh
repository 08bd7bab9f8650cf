#!/usr/bin/env bash
# The five workloads of docs/performance.md through the streamlib stages, against the same
# work through ffmpeg, in one run: pass-through, decode, transcode, draw and HLS. With
# --before DIR (or BEFORE=DIR), the same workloads also run through the binaries in DIR (the
# target/release of an older build: the "before" of a change), taking turns with the
# others, so both sets of ratios come from the same minutes of the same machine.
#
#   scripts/bench-stages.sh [--before DIR] [FRAMES=150] [RUNS=3]
#   WORKLOADS="draw hls" scripts/bench-stages.sh ...   # some of the workloads only
#
# For example, against the build before the stage runtime (issue 10):
#   git worktree add --detach /tmp/before d902c7e
#   (cd /tmp/before && cargo build --release --bins -p sl-test -p sl-info -p sl-file -p sl-draw -p sl-hls)
#   scripts/bench-stages.sh --before /tmp/before/target/release 150 5
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
# Ratios are ffmpeg's (or cat's) time over streamlib's: above 1, streamlib is faster. With
# --before, before/after is also given run by run (each run's before and after ran one after
# the other: the range shows how far the machine's noise moves the same comparison), and as
# CPU seconds (user + system, all processes of the pipeline: less moved by other load).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
BEFORE=${BEFORE:-}
rest=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --before) BEFORE=${2:?--before takes the folder of the older binaries}; shift 2 ;;
    --before=*) BEFORE=${1#--before=}; shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
N=${rest[0]:-150}
RUNS=${rest[1]:-3}
FONT=${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
for tool in ffmpeg bc /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-stages.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
[ -f "$FONT" ] || { echo "bench-stages.sh: no $FONT: run scripts/setup.sh (fonts-dejavu-core)" >&2; exit 1; }
if [[ "${SL_NO_BUILD:-0}" != 1 ]]; then
  cargo build --release -q -p sl-test -p sl-info -p sl-file -p sl-draw -p sl-hls
fi
AFTER=target/release
if [[ -n "$BEFORE" ]]; then
  for b in sl-test sl-info sl-file sl-draw sl-hls; do
    [ -x "$BEFORE/$b" ] || { echo "bench-stages.sh: $BEFORE has no $b: build it there (cargo build --release --bins -p $b)" >&2; exit 1; }
  done
  BEFORE=$(cd "$BEFORE" && pwd)
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

# has_flag BIN FLAG: whether the stage BIN takes FLAG (older builds may spell flags otherwise).
has_flag() { "$1" --help 2>/dev/null | grep -q -- "$2\b"; }

# The streamlib side of each workload, for the binaries in $1. The flags used here are
# spelled the same by the builds before and after the stage runtime (checked below, so a
# build that spells one otherwise stops the bench instead of measuring something else).
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

for B in "$AFTER" ${BEFORE:+"$BEFORE"}; do
  for f in "sl-test --fast" "sl-info --pass" "sl-file --crf" "sl-file --preset" "sl-file --keyint" \
    "sl-file --no-audio" "sl-hls --crf" "sl-hls --quiet"; do
    set -- $f
    has_flag "$B/$1" "$2" || { echo "bench-stages.sh: $B/$1 has no $2: adapt sl_cmd to that build" >&2; exit 1; }
  done
done

timed() { # "wall cpu": seconds one run of a shell command takes, and the CPU seconds (user +
  # system) of all its processes. Runs in $(...): a failing command stops the whole bench.
  /usr/bin/time -o "$W/time" -f '%e %U %S' bash -o pipefail -c "$1" ||
    { echo "bench-stages.sh: failed: $1" >&2; kill -TERM $$; exit 1; }
  set -- $(tail -1 "$W/time")
  echo "$1 $(echo "$2 + $3" | bc -l)"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# field K (1: wall, 2: cpu) of each "wall cpu" pair
field() { local k=$1; shift; for p in "$@"; do set -- $p; if [[ $k == 1 ]]; then echo "$1"; else echo "$2"; fi; done; }
# the ratio x/y of each run's pair (the two ran one after the other, under the same load)
ratios() { local -n xs=$1 ys=$2; local i; for ((i = 0; i < ${#xs[@]}; i++)); do
  set -- ${xs[i]}; local x=$1; set -- ${ys[i]}; echo "$x / $1" | bc -l; done; }
minmax() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "streamlib stages vs ffmpeg: $N frames of 1920x1080, median of $RUNS runs each, taking turns; load average at the start: $load"
if [[ -n "$BEFORE" ]]; then echo "after: $(cd "$AFTER" && pwd); before: $BEFORE"; fi
printf '%-12s %10s %10s %10s %8s' workload other after other/after ""
if [[ -n "$BEFORE" ]]; then printf '%10s %13s %13s' before other/before before/after; fi
echo
for w in ${WORKLOADS:-pass decode transcode draw hls}; do
  o=() a=() b=()
  for ((i = 0; i < RUNS; i++)); do
    # the order turns round every run, so neither build always runs first
    if ((i % 2 == 0)); then
      o+=("$(timed "$(other_cmd $w)")")
      a+=("$(timed "$(sl_cmd "$AFTER" $w)")")
      if [[ -n "$BEFORE" ]]; then b+=("$(timed "$(sl_cmd "$BEFORE" $w)")"); fi
    else
      if [[ -n "$BEFORE" ]]; then b+=("$(timed "$(sl_cmd "$BEFORE" $w)")"); fi
      a+=("$(timed "$(sl_cmd "$AFTER" $w)")")
      o+=("$(timed "$(other_cmd $w)")")
    fi
  done
  om=$(median $(field 1 "${o[@]}"))
  am=$(median $(field 1 "${a[@]}"))
  printf '%-12s %9.2fs %9.2fs %9.2fx %8s' "$w" "$om" "$am" "$(echo "$om / $am" | bc -l)" "($(other_name $w))"
  if [[ -n "$BEFORE" ]]; then
    bm=$(median $(field 1 "${b[@]}"))
    mapfile -t pr < <(ratios b a)
    printf '%9.2fs %12.2fx %12.2fx' "$bm" "$(echo "$om / $bm" | bc -l)" "$(echo "$bm / $am" | bc -l)"
    cb=$(median $(field 2 "${b[@]}")); ca=$(median $(field 2 "${a[@]}"))
    printf '   run by run %s (median %.2fx); CPU s before %.2f, after %.2f (%.2fx)' \
      "$(minmax "${pr[@]}")" "$(median "${pr[@]}")" "$cb" "$ca" "$(echo "$cb / $ca" | bc -l)"
  fi
  echo
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
