#!/usr/bin/env bash
# sl-ml (tract) against onnxruntime (its PyPI wheel, from Python) running the same model on
# the same frames, in the same run: CenterFace on N copies of the 1927 Solvay photograph at
# 640x480 (input [1, 3, 480, 640]), one thread and every thread.
#
#   scripts/bench-ml.sh [FRAMES]        (default 30)
#
# Per frame, both sides time the same work: the frame to a float tensor, the model, the
# outputs (sl-ml also decodes and runs NMS: microseconds). sl-ml's figure is its own
# `--stats` median; onnxruntime's the median of session.run plus the tensor's making.
# Also the whole pipe's frames per second (sl-ml reading the stream and writing it on), and
# a cross-check: the faces sl-ml attaches against onnxruntime's outputs decoded in numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
ORT_VERSION=${ORT_VERSION:-1.32.0}
# every stage at once, as scripts/test.sh builds them (a subset unifies features differently and rebuilds tract)
[ -n "${SL_NO_BUILD:-}" ] || cargo build --release --bins -q
T=$PWD/target/release
M=$(scripts/deps/models.sh)
PY=$(scripts/test-python.sh --install-only)
# onnx (to set the model's input shape for onnxruntime) and onnxruntime, into the venv
if ! "$PY" -c "import onnxruntime, onnx" 2>/dev/null; then
  echo "bench-ml: installing onnxruntime==$ORT_VERSION and onnx into $(dirname "$(dirname "$PY")")" >&2
  "$PY" -m pip install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION" "onnx==1.17.0" >&2
fi
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
"$T/sl-file" -q "$M/solvay_conference_1927.jpg" | "$T/sl-convert" -q -s 640x480 -f rgb24 >"$DIR/one.slv"
ALL=$(nproc)

echo "sl-ml (tract) vs onnxruntime $ORT_VERSION: CenterFace, $N frames of 640x480, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" scripts/ml/bench_ort.py "$DIR/one.slv" "$DIR/in.slv" "$M/centerface.onnx" "$N" "$ALL" >"$DIR/ort.txt"
for threads in 1 "$ALL"; do
  start=$(date +%s.%N)
  "$T/sl-ml" "$M/centerface.onnx" --threads "$threads" --stats <"$DIR/in.slv" 2>"$DIR/sl.err" >"$DIR/out-$threads.slv"
  wall=$(echo "$(date +%s.%N) - $start" | bc -l)
  sl=$(sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' "$DIR/sl.err")
  ort=$(sed -n "s/^threads $threads median \([0-9.]*\)\$/\1/p" "$DIR/ort.txt")
  printf '  %2s thread(s): sl-ml %7.1f ms/frame (%5.1f fps; whole pipe %5.1f fps)   onnxruntime %7.1f ms/frame (%5.1f fps)   tract/onnxruntime %.2fx\n' \
    "$threads" "$sl" "$(echo "1000 / $sl" | bc -l)" "$(echo "$N / $wall" | bc -l)" "$ort" "$(echo "1000 / $ort" | bc -l)" "$(echo "$sl / $ort" | bc -l)"
done
"$PY" scripts/ml/bench_ort.py --compare "$DIR/out-1.slv" "$DIR/ort.txt"
