#!/usr/bin/env bash
# sl-hls against ffmpeg doing the same work, measured in the same run:
#
#   sl-file in.mp4 | sl-hls out/          (decode in one process, encode + segment in another)
#   ffmpeg -i in.mp4 -c:v libx264 ... -f hls out/index.m3u8
#
# Same encoder settings on both sides (libx264 veryfast, crf 23, keyframe every 2 s on the
# segment grid, no scene-cut keyframes, closed GOPs; 2 s segments, live window of 6). The
# input is a 1080p30 H.264 file made with ffmpeg (testsrc2, SECONDS long). Runs alternate,
# RUNS each; the ratio is of the median wall times. Also reports glass-to-playlist latency
# from sl-hls --stats (time from a frame entering sl-hls to its segment being listed).
#
#   scripts/bench-hls.sh [SECONDS=20] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
runs=${2:-3}
work=target/bench-hls
mkdir -p "$work"
in="$work/in-1080p30-${secs}s.mp4"
if [ ! -f "$in" ]; then
  echo "making $in" >&2
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30" -t "$secs" \
    -c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p "$in"
fi
cargo build --release -q -p sl-file -p sl-hls
bin=target/release

sl_run() {
  rm -rf "$work/sl"
  "$bin/sl-file" "$in" --no-audio | "$bin/sl-hls" "$work/sl" --stats 2>"$work/sl-stats.txt"
}
ff_run() {
  rm -rf "$work/ff" && mkdir -p "$work/ff"
  ffmpeg -v error -y -i "$in" -an -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p \
    -g 60 -sc_threshold 0 -flags +cgop \
    -f hls -hls_time 2 -hls_list_size 6 \
    -hls_flags delete_segments+temp_file+independent_segments+program_date_time \
    -hls_segment_filename "$work/ff/seg_%05d.ts" "$work/ff/index.m3u8"
}
now() { date +%s.%N; }

sl_times=()
ff_times=()
lat=()
for i in $(seq "$runs"); do
  t0=$(now); ff_run; t1=$(now)
  ff_times+=("$(echo "$t1 - $t0" | bc -l)")
  t0=$(now); sl_run; t1=$(now)
  sl_times+=("$(echo "$t1 - $t0" | bc -l)")
  lat+=("$(grep -o 'glass-to-playlist.*' "$work/sl-stats.txt" || echo '(no latency line)')")
  printf 'run %d: ffmpeg %.2f s, sl-file | sl-hls %.2f s\n' "$i" "${ff_times[-1]}" "${sl_times[-1]}" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ff=$(median "${ff_times[@]}")
sl=$(median "${sl_times[@]}")
frames=$((secs * 30))
printf 'input: 1080p30 H.264, %d frames (%s)\n' "$frames" "$in"
printf 'ffmpeg -f hls        : %.2f s (%.1f fps)\n' "$ff" "$(echo "$frames / $ff" | bc -l)"
printf 'sl-file | sl-hls     : %.2f s (%.1f fps)\n' "$sl" "$(echo "$frames / $sl" | bc -l)"
printf 'ratio sl/ffmpeg      : %.3f (target <= 1.05)\n' "$(echo "$sl / $ff" | bc -l)"
for l in "${lat[@]}"; do echo "sl-hls $l"; done
# latency as a live source sees it: frames paced at 30 fps (sl-file --realtime), so the
# encoder keeps up and the figures are segment time + encoder delay, not a backlog
rm -rf "$work/sl-live"
"$bin/sl-file" "$in" --no-audio --realtime | "$bin/sl-hls" "$work/sl-live" --stats 2>"$work/sl-live-stats.txt"
echo "sl-hls realtime input $(grep -o 'glass-to-playlist.*' "$work/sl-live-stats.txt" || echo '(no latency line)')"
echo "segments: ffmpeg $(ls "$work/ff" | grep -c '\.ts$') on disk, sl-hls $(ls "$work/sl" | grep -c '\.ts$') on disk"
