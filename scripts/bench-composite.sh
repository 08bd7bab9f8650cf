#!/usr/bin/env bash
# sl-composite against GStreamer's compositor and ffmpeg's overlay filter doing the same work
# on the same frames, in the same run: a 1920x1080 background with 2 and 4 full-frame RGBA
# layers at 50% alpha blended over it, out as RGBA and as I420, read from files in the page
# cache and written to /dev/null, as fast as each tool goes.
#
#   scripts/bench-composite.sh [FRAMES]      (default 60 frames; each input file ~500 MB)
#
#   sl:     sl-composite bg=bg.slv ov1=ov.slv ... --sync pts -f rgba|i420 >/dev/null
#           (--sync pts: every layer's frame of each time, lossless, not paced: the same
#           work as the others)
#   gst:    gst-launch-1.0 filesrc ! rawvideoparse ! compositor ! video/x-raw,format=... ! filesink
#   ffmpeg: ffmpeg -f rawvideo ... -filter_complex "[0][1]overlay=format=rgb|yuv420[a];..."
#
# Reports frames per second (wall time, best of RUNS), CPU time (user+sys) and peak memory
# (maximum resident set size from /usr/bin/time -v), and the ratios in the same run. On a
# shared machine the wall ratio moves with the load; CPU time is steadier.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-60}
RUNS=${RUNS:-3}
for tool in ffmpeg gst-launch-1.0 /usr/bin/time bc; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/setup.sh (scripts/deps/composite.apt)" >&2; exit 1; }
done
gst-inspect-1.0 compositor >/dev/null 2>&1 || { echo "GStreamer's compositor is missing: run scripts/setup.sh" >&2; exit 1; }
# the build at low priority (a shared machine); the measurements at normal priority
nice -n 19 cargo build --release -q -p sl-composite -p sl-file
T=$PWD/target/release
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

# the same frames for every tool: raw files for ffmpeg and GStreamer, the same frames through
# a rawvideo NUT file into streamlib's format for sl-composite
FF_SRC="ffmpeg -v error -f lavfi -i testsrc2=s=1920x1080:r=30 -frames:v $N"
$FF_SRC -vf format=rgba -f rawvideo "$DIR/bg.rgba"
$FF_SRC -vf format=yuv420p -f rawvideo "$DIR/bg.i420"
$FF_SRC -vf "hflip,format=rgba,colorchannelmixer=aa=0.5" -f rawvideo "$DIR/ov.rgba"
for f in bg.rgba:rgba bg.i420:yuv420p ov.rgba:rgba; do
  name=${f%%:*} pix=${f##*:}
  ffmpeg -v error -f rawvideo -pix_fmt "$pix" -s 1920x1080 -r 30 -i "$DIR/$name" -c:v rawvideo -f nut "$DIR/$name.nut"
  "$T/sl-file" -q "$DIR/$name.nut" >"$DIR/$name.slv"
  rm "$DIR/$name.nut"
done

# "wall cpu peak_kB": best wall time, best CPU time and the largest peak RSS of RUNS runs
measure() {
  local best=999999 bcpu=999999 peak=0 wall u s rss
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%e %U %S %M' -o "$DIR/time" bash -c "$1" >/dev/null 2>"$DIR/err" || {
      echo "failed: $1" >&2; cat "$DIR/err" >&2; exit 1; }
    read -r wall u s rss <"$DIR/time"
    local cpu; cpu=$(echo "$u + $s" | bc -l)
    if (($(echo "$wall < $best" | bc -l))); then best=$wall; fi
    if (($(echo "$cpu < $bcpu" | bc -l))); then bcpu=$cpu; fi
    if ((rss > peak)); then peak=$rss; fi
  done
  echo "$best $bcpu $peak"
}

echo "sl-composite vs GStreamer compositor vs ffmpeg overlay: $N frames of 1920x1080, best of $RUNS"
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg))"
for out in rgba i420; do
  for layers in 2 4; do
    if [[ $out == rgba ]]; then
      bg=bg.rgba gst_fmt=RGBA ff_fmt=rgb ff_pix=rgba gst_in=rgba ff_in=rgba
    else
      bg=bg.i420 gst_fmt=I420 ff_fmt=yuv420 ff_pix=yuv420p gst_in=i420 ff_in=yuv420p
    fi
    sl="$T/sl-composite -q bg=$DIR/$bg.slv"
    gst="gst-launch-1.0 -q compositor name=c ! video/x-raw,format=$gst_fmt ! filesink location=/dev/null \
      filesrc location=$DIR/$bg ! rawvideoparse width=1920 height=1080 format=$gst_in framerate=30/1 ! c.sink_0"
    ff="ffmpeg -v error -y -f rawvideo -pix_fmt $ff_in -s 1920x1080 -r 30 -i $DIR/$bg"
    graph="" prev="0"
    for i in $(seq "$layers"); do
      sl+=" ov$i=$DIR/ov.rgba.slv"
      gst+=" filesrc location=$DIR/ov.rgba ! rawvideoparse width=1920 height=1080 format=rgba framerate=30/1 ! c.sink_$i"
      ff+=" -f rawvideo -pix_fmt rgba -s 1920x1080 -r 30 -i $DIR/ov.rgba"
      graph+="[$prev][$i]overlay=format=$ff_fmt[v$i];"
      prev="v$i"
    done
    sl+=" --sync pts --latency 10s -f $out >/dev/null"
    ff+=" -filter_complex '${graph%;}' -map '[$prev]' -f rawvideo -pix_fmt $ff_pix /dev/null"
    read -r sw sc sm <<<"$(measure "$sl")"
    read -r gw gc gm <<<"$(measure "$gst")"
    read -r fw fc fm <<<"$(measure "$ff")"
    fps() { echo "$N / $1" | bc -l; }
    printf '  %s out, %d layers: sl-composite %6.1f fps (%5.2f s CPU, %4d MB)  gst %6.1f fps (%5.2f s CPU, %4d MB)  ffmpeg %6.1f fps (%5.2f s CPU, %4d MB)\n' \
      "$out" "$layers" "$(fps "$sw")" "$sc" $((sm / 1024)) "$(fps "$gw")" "$gc" $((gm / 1024)) "$(fps "$fw")" "$fc" $((fm / 1024))
    printf '      throughput ratio sl/gst %.2fx (CPU %.2fx), sl/ffmpeg %.2fx (CPU %.2fx)\n' \
      "$(echo "$gw / $sw" | bc -l)" "$(echo "$gc / $sc" | bc -l)" "$(echo "$fw / $sw" | bc -l)" "$(echo "$fc / $sc" | bc -l)"
  done
done
