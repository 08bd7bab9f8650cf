#!/usr/bin/env bash
# sl-ml with tract (its default backend) and with onnxruntime (--backend ort, the wheel's
# libonnxruntime.so loaded by the `ort` crate) against onnxruntime itself (its PyPI wheel, from
# Python), running the same model on the same frames, in the same run: CenterFace on N copies
# of the 1927 Solvay photograph at 640x480 (input [1, 3, 480, 640]), one thread and every
# thread, as ms per frame, fps and ratios.
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

echo "sl-ml (tract, and onnxruntime through --backend ort) vs onnxruntime $ORT_VERSION from Python: CenterFace, $N frames of 640x480 (input [1, 3, 480, 640]), $ALL cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" scripts/ml/bench_ort.py "$DIR/one.slv" "$DIR/in.slv" "$M/centerface.onnx" "$N" "$ALL" >"$DIR/ort.txt"
# one sl-ml run: its --stats median per frame (pre-processing, graph, outputs, decoding), the
# pre-processing's and the graph's own medians, and the whole pipe's frames per second
slml() { # backend threads -> "median prep graph fps"
  local start wall
  start=$(date +%s.%N)
  "$T/sl-ml" "$M/centerface.onnx" --backend "$1" --threads "$2" --stats <"$DIR/in.slv" 2>"$DIR/sl-$1-$2.err" >"$DIR/out-$1-$2.slv"
  wall=$(echo "$(date +%s.%N) - $start" | bc -l)
  sed -n 's/.*median \([0-9.]*\) ms.*pre-processing \([0-9.]*\) ms, graph \([0-9.]*\) ms.*/\1 \2 \3/p' "$DIR/sl-$1-$2.err" | tr '\n' ' '
  echo "$N / $wall" | bc -l
}
fps() { echo "1000 / $1" | bc -l; }
for threads in 1 "$ALL"; do
  read -r tr tr_prep tr_graph tr_pipe < <(slml tract "$threads")
  read -r so so_prep so_graph so_pipe < <(slml ort "$threads")
  py=$(sed -n "s/^threads $threads median \([0-9.]*\)\$/\1/p" "$DIR/ort.txt")
  printf '%s thread(s), ms per frame (fps):\n' "$threads"
  printf '  sl-ml tract            %7.1f (%5.1f)  pre-processing %5.1f, graph %7.1f; whole pipe %5.1f fps\n' "$tr" "$(fps "$tr")" "$tr_prep" "$tr_graph" "$tr_pipe"
  printf '  sl-ml --backend ort    %7.1f (%5.1f)  pre-processing %5.1f, graph %7.1f; whole pipe %5.1f fps\n' "$so" "$(fps "$so")" "$so_prep" "$so_graph" "$so_pipe"
  printf '  onnxruntime (Python)   %7.1f (%5.1f)\n' "$py" "$(fps "$py")"
  printf '  ratios: tract / onnxruntime %.2fx   sl-ml ort / onnxruntime %.2fx   tract / sl-ml ort %.2fx (graph alone %.2fx)\n' \
    "$(echo "$tr / $py" | bc -l)" "$(echo "$so / $py" | bc -l)" "$(echo "$tr / $so" | bc -l)" "$(echo "$tr_graph / $so_graph" | bc -l)"
done
for b in tract ort; do
  printf '  %-6s' "$b"
  "$PY" scripts/ml/bench_ort.py --compare "$DIR/out-$b-1.slv" "$DIR/ort.txt"
done
