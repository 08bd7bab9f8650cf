#!/usr/bin/env bash
# sl-draw against ffmpeg drawing similar boxes and text, on the same frames, in the same run.
#
#   scripts/bench-draw.sh [FRAMES]     (default 300 frames of 1920x1080 RGBA)
#
# Workload: examples/hud.rhai (a background panel, 10 shapes, 3 lines of text) on sl-test's
# colour bars. ffmpeg draws the same panel, 10 boxes (drawbox cannot draw circles, so the 5
# circles are filled boxes) and the same 3 lines (drawtext, DejaVu Sans) on the same frames
# (sl-test's output with the streamlib framing stripped), reading and writing raw RGBA
# through pipes like sl-draw, single-threaded like sl-draw.
#
#   sl-draw (the issue's pipeline):  sl-test --fast | sl-draw hud.rhai --stats | sl-info
#   sl-draw (same plumbing as ffmpeg): cat frames.slv | sl-draw hud.rhai | cat
#   ffmpeg:                            cat frames.rgba | ffmpeg -f rawvideo ... -vf drawbox...,drawtext... -f rawvideo - | cat
#
# The ratios compare the last two: the same frames (saved once from sl-test), fed by `cat`
# and drained by `cat`, so only the drawing stage differs. (In the first, sl-test renders
# colour bars on the same 2 cores, which slows the whole pipeline down.)
#
# Reported per tool, best of RUNS runs: pipeline frames/s (wall clock; the machine may be
# shared) and the drawing stage's CPU time per frame (user+sys, from /usr/bin/time), which
# is what "frames per second on one core" means: 1000 / (ms per frame).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
N=${1:-300}
RUNS=${RUNS:-3}
FONT=${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
[ -f "$FONT" ] || { echo "no $FONT: apt-get install fonts-dejavu-core" >&2; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg not installed: apt-get install ffmpeg" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time not installed: apt-get install time" >&2; exit 1; }

PKGS=(-p sl-test -p sl-draw)
if [ -d bins/sl-info ]; then PKGS+=(-p sl-info); fi
cargo build --release -q "${PKGS[@]}"
T=target/release
if [ -x "$T/sl-info" ]; then CONSUMER="$T/sl-info >/dev/null"; CNAME=sl-info; else CONSUMER="cat >/dev/null"; CNAME=cat; fi

TMP=$(mktemp -d /tmp/bench-draw.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
SRC="$T/sl-test --fast -n $N -s 1920x1080 -f rgba -p bars"

# the same frames for both, saved once (not timed): as a streamlib stream for sl-draw, and
# its video payloads with the framing stripped for ffmpeg
$SRC | tee "$TMP/frames.slv" | strip_framing $((1920 * 1080 * 4)) >"$TMP/frames.rgba"
got=$(($(stat -c %s "$TMP/frames.rgba") / (1920 * 1080 * 4)))
[ "$got" -eq "$N" ] || { echo "stripping gave $got frames, not $N" >&2; exit 1; }

VF=$(hud_vf "$FONT")

# run NAME PIPELINE-WITH-@TIME@: best wall time and best CPU time of the @TIME@ stage
run() {
  local best_wall=999999 best_cpu=999999 t0 t1 wall cpu
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    bash -c "${2//@TIME@//usr/bin/time -o $TMP/cpu -f %U+%S}"
    t1=$(date +%s.%N)
    wall=$(echo "$t1 - $t0" | bc -l)
    cpu=$(awk -F+ '{print $1 + $2}' "$TMP/cpu")
    if (($(echo "$wall < $best_wall" | bc -l))); then best_wall=$wall; fi
    if (($(echo "$cpu < $best_cpu" | bc -l))); then best_cpu=$cpu; fi
  done
  echo "$best_wall $best_cpu"
}

echo "sl-draw vs ffmpeg: $N frames of 1920x1080 rgba, HUD (panel, 10 shapes, 3 text lines), best of $RUNS"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
read -r sp_wall sp_cpu < <(run sl "$SRC | @TIME@ $T/sl-draw examples/hud.rhai --stats 2>>$TMP/stats | $CONSUMER")
read -r sl_wall sl_cpu < <(run sl "cat $TMP/frames.slv | @TIME@ $T/sl-draw examples/hud.rhai --stats 2>>$TMP/stats | cat >/dev/null")
read -r ff_wall ff_cpu < <(run ffmpeg "cat $TMP/frames.rgba | @TIME@ ffmpeg -v error -nostdin -threads 1 -filter_threads 1 -filter_complex_threads 1 -f rawvideo -pix_fmt rgba -s 1920x1080 -r 30 -i - -vf \"$VF\" -f rawvideo -pix_fmt rgba - | cat >/dev/null")

report() { # name wall cpu
  printf '  %-28s %7.1f frames/s in the pipeline   %6.2f ms CPU/frame = %6.1f frames/s on one core\n' \
    "$1" "$(echo "$N / $2" | bc -l)" "$(echo "$3 * 1000 / $N" | bc -l)" "$(echo "$N / $3" | bc -l)"
}
report "sl-test | sl-draw | $CNAME" "$sp_wall" "$sp_cpu"
report "cat | sl-draw | cat" "$sl_wall" "$sl_cpu"
report "cat | ffmpeg | cat" "$ff_wall" "$ff_cpu"
printf '  ratio sl-draw/ffmpeg (cat | X | cat): %.2fx pipeline fps, %.2fx CPU per frame (above 1 = sl-draw faster)\n' \
  "$(echo "$ff_wall / $sl_wall" | bc -l)" "$(echo "$ff_cpu / $sl_cpu" | bc -l)"
echo "  sl-draw --stats of every run (the Rhai call is the \"script\" time):"
grep 'frames in' "$TMP/stats" | sed 's/^/    /'
grep 'frames in' "$TMP/stats" | sed -E 's/.*script ([0-9.]+) ms\/frame median.*/\1/' | sort -n |
  awk '{a[NR]=$1} END {printf "  Rhai call: %.3f ms per frame (median of the best run; %.3f in the worst of %d runs; target < 0.1)\n", a[1], a[NR], NR}'
# the same script call with tiny frames, so no frame's pixels push the interpreter out of the
# CPU caches between calls
$T/sl-draw examples/hud.rhai --size 64x64 --fast -n 3000 --stats 2>&1 >/dev/null |
  sed -E 's/.*script ([0-9.]+) ms\/frame median.*/\1/' |
  awk '{printf "  Rhai call with 64x64 frames (warm caches): %.3f ms per frame (median)\n", $1}'
