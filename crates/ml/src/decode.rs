//! What a model's outputs mean: detections (CenterFace heatmaps, YOLO v5 and v8, SSD), class
//! scores, or the raw tensors. Decoders work on plain `f32` arrays (whatever the backend) in
//! the model's input pixels; [`Geometry`] then maps boxes back to the frame's pixels. NMS runs
//! here, outside the graph.

use sl_frame::BBox;

use crate::Error;
use crate::card::{BoxFormat, Decoder};
use crate::prep::Geometry;

/// One output tensor, as the decoders see it.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

impl Tensor<'_> {
    fn describe(&self) -> String {
        format!("`{}` {}", self.name, shape_str(self.shape))
    }

    /// The shape without leading 1s (a batch of one).
    fn squeezed(&self) -> &[usize] {
        let lead = self
            .shape
            .iter()
            .take_while(|d| **d == 1)
            .count()
            .min(self.shape.len().saturating_sub(1));
        &self.shape[lead..]
    }
}

pub fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

fn describe_all(outs: &[Tensor]) -> String {
    let v: Vec<String> = outs.iter().map(|t| t.describe()).collect();
    v.join(", ")
}

/// A detection in input pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// x1, y1, x2, y2
    pub rect: [f32; 4],
    pub score: f32,
    pub class: i32,
    /// Landmark points (x, y), e.g. CenterFace's eyes, nose and mouth corners.
    pub points: Vec<(f32, f32)>,
}

/// Settings for detection decoding.
#[derive(Clone, Debug)]
pub struct DetectSettings {
    pub decoder: Decoder,
    pub threshold: f32,
    pub nms: f32,
    pub box_format: BoxFormat,
    pub normalized: bool,
    pub background: bool,
}

/// CenterFace's landmarks, in the order the model gives them.
pub const FACE_POINTS: [&str; 5] = ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];

/// Detections in input pixels of an `input` (width, height) picture, after NMS.
pub fn detect(
    outs: &[Tensor],
    s: &DetectSettings,
    input: (u32, u32),
) -> Result<Vec<Detection>, Error> {
    let found = match s.decoder {
        Decoder::Centerface => centerface(outs, s.threshold, input)?,
        Decoder::Yolov5 => yolo(outs, s.threshold, false)?,
        Decoder::Yolov8 => yolo(outs, s.threshold, true)?,
        Decoder::Ssd => ssd(outs, s, input)?,
    };
    Ok(nms(found, s.nms))
}

/// CenterFace: a heatmap `[1,1,h,w]` (after sigmoid), log-scales `[1,2,h,w]`, offsets
/// `[1,2,h,w]` and landmarks `[1,10,h,w]`, at stride 4. Outputs are found by their channel
/// counts (1, 2, 2, 10; the two 2-channel maps scale first, as the model gives them).
fn centerface(outs: &[Tensor], threshold: f32, input: (u32, u32)) -> Result<Vec<Detection>, Error> {
    let bad = |why: &str| {
        Error::Outputs(format!(
            "the centerface decoder wants a heatmap [1,1,h,w], scale and offset maps [1,2,h,w] \
             and landmarks [1,10,h,w]; {why}; this model gives {}",
            describe_all(outs)
        ))
    };
    let by_channels = |c: usize| -> Vec<&Tensor> {
        outs.iter()
            .filter(|t| t.shape.len() == 4 && t.shape[0] == 1 && t.shape[1] == c)
            .collect()
    };
    let heat = *by_channels(1).first().ok_or_else(|| bad("no heatmap"))?;
    let two = by_channels(2);
    if two.len() != 2 {
        return Err(bad("not two 2-channel maps"));
    }
    let (scale, offset) = (two[0], two[1]);
    let marks = by_channels(10).first().copied();
    let (h, w) = (heat.shape[2], heat.shape[3]);
    for t in [scale, offset].into_iter().chain(marks) {
        if t.shape[2] != h || t.shape[3] != w {
            return Err(bad("the maps differ in size"));
        }
    }
    let plane = h * w;
    // stride 4 for CenterFace; measured rather than assumed
    let sx = input.0 as f32 / w as f32;
    let sy = input.1 as f32 / h as f32;
    let mut found = Vec::new();
    for (i, &p) in heat.data[..plane].iter().enumerate() {
        if p.is_nan() || p <= threshold {
            continue;
        }
        let (y, x) = ((i / w) as f32, (i % w) as f32);
        let bh = scale.data[i].exp() * sy;
        let bw = scale.data[plane + i].exp() * sx;
        let (oy, ox) = (offset.data[i], offset.data[plane + i]);
        let x1 = ((x + ox + 0.5) * sx - bw / 2.0).max(0.0);
        let y1 = ((y + oy + 0.5) * sy - bh / 2.0).max(0.0);
        let points = match marks {
            Some(m) => (0..5)
                .map(|j| {
                    let ly = m.data[2 * j * plane + i];
                    let lx = m.data[(2 * j + 1) * plane + i];
                    (lx * bw + x1, ly * bh + y1)
                })
                .collect(),
            None => Vec::new(),
        };
        if !(bw.is_finite() && bh.is_finite()) {
            continue;
        }
        found.push(Detection {
            rect: [x1, y1, x1 + bw, y1 + bh],
            score: p,
            class: 0,
            points,
        });
    }
    Ok(found)
}

/// YOLO: v5 `[1, N, 5 + C]` (cx, cy, w, h, objectness, class scores) or v8 `[1, 4 + C, N]`
/// (cx, cy, w, h, class scores), in input pixels. A v8 output already transposed to
/// `[1, N, 4 + C]` is taken too.
fn yolo(outs: &[Tensor], threshold: f32, v8: bool) -> Result<Vec<Detection>, Error> {
    let t = outs
        .iter()
        .find(|t| t.squeezed().len() == 2)
        .ok_or_else(|| {
            Error::Outputs(format!(
                "the yolo{} decoder wants one output of {}; this model gives {}",
                if v8 { "v8" } else { "v5" },
                if v8 {
                    "[1, 4+classes, N]"
                } else {
                    "[1, N, 5+classes]"
                },
                describe_all(outs)
            ))
        })?;
    let dims = t.squeezed();
    let (a, b) = (dims[0], dims[1]);
    let head = if v8 { 4 } else { 5 };
    // rows are boxes when the first axis is the long one
    let (n, k, transposed) = if v8 && a < b {
        (b, a, true)
    } else {
        (a, b, false)
    };
    if k <= head {
        return Err(Error::Outputs(format!(
            "output {} has {k} values per box: the yolo{} layout needs more than {head}",
            t.describe(),
            if v8 { "v8" } else { "v5" }
        )));
    }
    let at = |row: usize, col: usize| {
        if transposed {
            t.data[col * n + row]
        } else {
            t.data[row * k + col]
        }
    };
    let mut found = Vec::new();
    for r in 0..n {
        let obj = if v8 { 1.0 } else { at(r, 4) };
        if obj <= threshold {
            continue;
        }
        let (mut best, mut class) = (f32::MIN, 0);
        for c in head..k {
            let v = at(r, c);
            if v > best {
                best = v;
                class = c - head;
            }
        }
        let score = obj * best;
        if score.is_nan() || score <= threshold {
            continue;
        }
        let (cx, cy, w, h) = (at(r, 0), at(r, 1), at(r, 2), at(r, 3));
        found.push(Detection {
            rect: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
            score,
            class: class as i32,
            points: Vec::new(),
        });
    }
    Ok(found)
}

/// SSD-style: boxes `[1, N, 4]` and scores `[1, N, C]` (the best class per box, class 0
/// skipped when it is the background), or scores `[1, N]` with classes `[1, N]` (a graph
/// that post-processes itself; a `num_detections` output is ignored).
fn ssd(outs: &[Tensor], s: &DetectSettings, input: (u32, u32)) -> Result<Vec<Detection>, Error> {
    let bad = || {
        Error::Outputs(format!(
            "the ssd decoder wants boxes [1, N, 4] and scores [1, N, classes] (or scores and \
             classes [1, N]); this model gives {}",
            describe_all(outs)
        ))
    };
    let boxes = outs
        .iter()
        .find(|t| {
            let d = t.squeezed();
            d.len() == 2 && d[1] == 4
        })
        .ok_or_else(bad)?;
    let n = boxes.squeezed()[0];
    let others: Vec<&Tensor> = outs
        .iter()
        .filter(|t| !std::ptr::eq(*t, boxes) && t.data.len() >= n && t.squeezed()[0] == n)
        .collect();
    let per_box = |t: &Tensor| t.squeezed().len() == 1;
    let (scores, classes): (&Tensor, Option<&Tensor>) =
        if let Some(t) = others.iter().find(|t| t.squeezed().len() == 2) {
            (t, None)
        } else {
            let flat: Vec<&&Tensor> = others.iter().filter(|t| per_box(t)).collect();
            let is_classes = |t: &Tensor| {
                t.data[..n].iter().all(|v| v.fract() == 0.0) && t.data[..n].iter().any(|v| *v > 1.0)
            };
            match flat.as_slice() {
                [a, b] if is_classes(b) => (a, Some(b)),
                [a, b] if is_classes(a) => (b, Some(a)),
                [a] => (a, None),
                _ => return Err(bad()),
            }
        };
    let c = scores.data.len() / n;
    let (kw, kh) = if s.normalized {
        (input.0 as f32, input.1 as f32)
    } else {
        (1.0, 1.0)
    };
    let mut found = Vec::new();
    for r in 0..n {
        let (score, class) = if c == 1 {
            let class = classes.map_or(0, |t| t.data[r] as i32);
            (scores.data[r], class)
        } else {
            let first = usize::from(s.background);
            let row = &scores.data[r * c..(r + 1) * c];
            let (mut best, mut class) = (f32::MIN, first);
            for (j, v) in row.iter().enumerate().skip(first) {
                if *v > best {
                    best = *v;
                    class = j;
                }
            }
            (best, class as i32)
        };
        if score.is_nan() || score <= s.threshold {
            continue;
        }
        let b = &boxes.data[r * 4..r * 4 + 4];
        let [x1, y1, x2, y2] = match s.box_format {
            BoxFormat::Xyxy => [b[0], b[1], b[2], b[3]],
            BoxFormat::Yxyx => [b[1], b[0], b[3], b[2]],
            BoxFormat::Cxcywh => [
                b[0] - b[2] / 2.0,
                b[1] - b[3] / 2.0,
                b[0] + b[2] / 2.0,
                b[1] + b[3] / 2.0,
            ],
        };
        found.push(Detection {
            rect: [x1 * kw, y1 * kh, x2 * kw, y2 * kh],
            score,
            class,
            points: Vec::new(),
        });
    }
    Ok(found)
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy non-maximum suppression per class: best first, dropping boxes of the same class
/// that overlap a kept one by more than `threshold` IoU.
pub fn nms(mut found: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in found {
        if kept
            .iter()
            .all(|k| k.class != d.class || iou(&k.rect, &d.rect) <= threshold)
        {
            kept.push(d);
        }
    }
    kept
}

/// Detections as §3.1 boxes in frame pixels, and their landmarks as points (zero-size
/// boxes whose `class_id` is the index of their detection, labelled with the point's name).
pub fn to_boxes(
    found: &[Detection],
    g: &Geometry,
    labels: &[String],
    point_names: &[&str],
) -> (Vec<BBox>, Vec<BBox>) {
    let mut boxes = Vec::new();
    let mut points = Vec::new();
    for d in found {
        let Some([x, y, w, h]) = g.box_to_frame(d.rect) else {
            continue;
        };
        let index = boxes.len() as i32;
        boxes.push(BBox {
            x,
            y,
            w,
            h,
            score: d.score,
            class_id: d.class,
            label: labels.get(d.class as usize).cloned().unwrap_or_default(),
        });
        for (j, &(px, py)) in d.points.iter().enumerate() {
            let (fx, fy) = g.to_frame(px, py);
            points.push(BBox {
                x: fx,
                y: fy,
                w: 0.0,
                h: 0.0,
                score: d.score,
                class_id: index,
                label: point_names
                    .get(j)
                    .map_or_else(|| j.to_string(), |s| s.to_string()),
            });
        }
    }
    (boxes, points)
}

/// Class scores: the one output's values (any shape holding C numbers), softmaxed when asked
/// (by default unless they already look like probabilities), best `top` first, as
/// (class, score).
pub fn classify(
    outs: &[Tensor],
    softmax: Option<bool>,
    top: usize,
) -> Result<Vec<(usize, f32)>, Error> {
    let t = outs
        .first()
        .ok_or_else(|| Error::Outputs("the model has no outputs".into()))?;
    if t.data.is_empty() {
        return Err(Error::Outputs(format!("output {} is empty", t.describe())));
    }
    let v = t.data;
    let looks_like_probabilities =
        v.iter().all(|x| (0.0..=1.0).contains(x)) && (v.iter().sum::<f32>() - 1.0).abs() < 1e-3;
    let probs: Vec<f32> = if softmax.unwrap_or(!looks_like_probabilities) {
        let max = v.iter().copied().fold(f32::MIN, f32::max);
        let e: Vec<f32> = v.iter().map(|x| (x - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.iter().map(|x| x / sum).collect()
    } else {
        v.to_vec()
    };
    let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(top.max(1));
    Ok(ranked)
}

/// A tensor as the bytes `--task raw` attaches: `u32 rank`, `rank × u32` dimensions, then the
/// values as `f32`, all little-endian (docs/sl-ml.md).
pub fn raw_bytes(t: &Tensor) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + 4 * t.shape.len() + 4 * t.data.len());
    b.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
    for d in t.shape {
        b.extend_from_slice(&(*d as u32).to_le_bytes());
    }
    for v in t.data {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(decoder: Decoder) -> DetectSettings {
        DetectSettings {
            decoder,
            threshold: 0.5,
            nms: 0.3,
            box_format: BoxFormat::Xyxy,
            normalized: true,
            background: false,
        }
    }

    #[test]
    fn centerface_decodes_a_cell() {
        // 2x2 maps of a 8x8 input: stride 4; one face in cell (y 1, x 0)
        let heat = [0.1, 0.2, 0.9, 0.3];
        let mut scale = [0f32; 8];
        scale[2] = 1f32.ln(); // height 4
        scale[4 + 2] = 2f32.ln(); // width 8
        let mut offset = [0f32; 8];
        offset[2] = 0.25;
        let mut marks = [0f32; 40];
        marks[2] = 0.5; // point 0: y = 0.5 of the height
        marks[4 + 2] = 0.25; // point 0: x = 0.25 of the width
        let outs = [
            Tensor {
                name: "537",
                shape: &[1, 1, 2, 2],
                data: &heat,
            },
            Tensor {
                name: "538",
                shape: &[1, 2, 2, 2],
                data: &scale,
            },
            Tensor {
                name: "539",
                shape: &[1, 2, 2, 2],
                data: &offset,
            },
            Tensor {
                name: "540",
                shape: &[1, 10, 2, 2],
                data: &marks,
            },
        ];
        let found = detect(&outs, &settings(Decoder::Centerface), (8, 8)).unwrap();
        assert_eq!(found.len(), 1);
        let d = &found[0];
        // x centre (0 + 0 + 0.5) * 4 = 2, width 8 -> x1 = max(0, -2) = 0
        // y centre (1 + 0.25 + 0.5) * 4 = 7, height 4 -> y1 = 5
        assert_eq!(d.rect, [0.0, 5.0, 8.0, 9.0]);
        assert_eq!(d.points[0], (0.25 * 8.0, 0.5 * 4.0 + 5.0));
        assert!((d.score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn centerface_names_what_it_got() {
        let d = [0f32; 4];
        let outs = [Tensor {
            name: "out",
            shape: &[1, 4],
            data: &d,
        }];
        let e = detect(&outs, &settings(Decoder::Centerface), (8, 8))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`out` [1, 4]"), "{e}");
    }

    #[test]
    fn yolo_v5_and_v8_layouts_agree() {
        // two boxes, 2 classes; the second overlaps the first (same class) and is weaker
        let v5 = [
            50.0, 50.0, 20.0, 20.0, 0.9, 0.1, 1.0, //
            52.0, 50.0, 20.0, 20.0, 0.8, 0.1, 0.9,
        ];
        let found = detect(
            &[Tensor {
                name: "o",
                shape: &[1, 2, 7],
                data: &v5,
            }],
            &settings(Decoder::Yolov5),
            (100, 100),
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, 1);
        assert_eq!(found[0].rect, [40.0, 40.0, 60.0, 60.0]);
        // v8: [1, 4 + 2, 8], columns are boxes (N is larger than 4 + classes, as in every
        // real model), no objectness; only boxes 0 and 1 score
        let mut v8 = [0f32; 6 * 8];
        for (row, values) in [
            [50.0, 10.0],
            [50.0, 10.0],
            [20.0, 4.0],
            [20.0, 4.0],
            [0.2, 0.7],
            [0.9, 0.1],
        ]
        .iter()
        .enumerate()
        {
            v8[row * 8] = values[0];
            v8[row * 8 + 1] = values[1];
        }
        let found = detect(
            &[Tensor {
                name: "o",
                shape: &[1, 6, 8],
                data: &v8,
            }],
            &settings(Decoder::Yolov8),
            (100, 100),
        )
        .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].class, found[0].rect),
            (1, [40.0, 40.0, 60.0, 60.0])
        );
        assert_eq!((found[1].class, found[1].rect), (0, [8.0, 8.0, 12.0, 12.0]));
    }

    #[test]
    fn ssd_with_background_and_post_processed_graphs() {
        let boxes = [0.1, 0.2, 0.5, 0.6, 0.0, 0.0, 0.1, 0.1];
        let scores = [0.1, 0.8, 0.1, 0.95, 0.03, 0.02];
        let mut s = settings(Decoder::Ssd);
        s.background = true;
        let found = detect(
            &[
                Tensor {
                    name: "boxes",
                    shape: &[1, 2, 4],
                    data: &boxes,
                },
                Tensor {
                    name: "scores",
                    shape: &[1, 2, 3],
                    data: &scores,
                },
            ],
            &s,
            (100, 200),
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, 1);
        let close = |a: [f32; 4], b: [f32; 4]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
        assert!(
            close(found[0].rect, [10.0, 40.0, 50.0, 120.0]),
            "{:?}",
            found[0].rect
        );
        // TensorFlow's: yxyx boxes, scores and classes per box, and a count
        s.box_format = BoxFormat::Yxyx;
        s.background = false;
        let scores = [0.9, 0.2];
        let classes = [17.0, 3.0];
        let found = detect(
            &[
                Tensor {
                    name: "detection_boxes",
                    shape: &[1, 2, 4],
                    data: &boxes,
                },
                Tensor {
                    name: "detection_classes",
                    shape: &[1, 2],
                    data: &classes,
                },
                Tensor {
                    name: "detection_scores",
                    shape: &[1, 2],
                    data: &scores,
                },
                Tensor {
                    name: "num_detections",
                    shape: &[1],
                    data: &[2.0],
                },
            ],
            &s,
            (100, 100),
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].class, 17);
        assert!(
            close(found[0].rect, [20.0, 10.0, 60.0, 50.0]),
            "{:?}",
            found[0].rect
        );
    }

    #[test]
    fn nms_keeps_other_classes() {
        let d = |x: f32, class: i32, score: f32| Detection {
            rect: [x, 0.0, x + 10.0, 10.0],
            score,
            class,
            points: vec![],
        };
        let kept = nms(
            vec![
                d(0.0, 0, 0.5),
                d(1.0, 0, 0.9),
                d(1.0, 1, 0.4),
                d(50.0, 0, 0.3),
            ],
            0.3,
        );
        let got: Vec<(f32, i32)> = kept.iter().map(|k| (k.rect[0], k.class)).collect();
        assert_eq!(got, vec![(1.0, 0), (1.0, 1), (50.0, 0)]);
    }

    #[test]
    fn classify_softmaxes_logits_and_keeps_probabilities() {
        let logits = [1.0, 3.0, 2.0];
        let top = classify(
            &[Tensor {
                name: "p",
                shape: &[1, 3],
                data: &logits,
            }],
            None,
            2,
        )
        .unwrap();
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!((top[0].1 - 0.665).abs() < 1e-3);
        let probs = [0.2, 0.7, 0.1];
        let top = classify(
            &[Tensor {
                name: "p",
                shape: &[3],
                data: &probs,
            }],
            None,
            1,
        )
        .unwrap();
        assert_eq!(top, vec![(1, 0.7)]);
    }

    #[test]
    fn raw_bytes_layout() {
        let b = raw_bytes(&Tensor {
            name: "t",
            shape: &[1, 2],
            data: &[1.5, -2.0],
        });
        assert_eq!(&b[..12], &[2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&b[12..16], &1.5f32.to_le_bytes());
        assert_eq!(b.len(), 20);
    }
}
