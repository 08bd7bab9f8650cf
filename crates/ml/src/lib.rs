//! ONNX models on streamlib frames: `sl-ml`'s library.
//!
//! - [`card`]: the model card (a TOML file beside the model) saying how frames feed the
//!   model and what its outputs mean; flags override it ([`Overrides`]).
//! - [`prep`]: a frame to the input tensor (resize or letterbox, channel order, layout,
//!   normalisation) and the [`prep::Geometry`] that maps results back to frame pixels.
//! - [`model`]: loading with tract (fixed-shape but fully convolutional models included),
//!   `--inspect`, running.
//! - [`decode`]: detections (CenterFace, YOLO v5/v8, SSD) with NMS, classes, raw tensors.
//! - [`Analyser`]: all of it, from a frame to the metadata entries sl-ml attaches.
//!
//! tract is this crate's only heavy dependency, and this is the only crate that has it. With
//! the cargo feature `ort`, [`onnxruntime`] runs the graph instead when asked
//! ([`Backend::Ort`]), loading onnxruntime's library at run time.

pub mod card;
pub mod decode;
pub mod model;
#[cfg(feature = "ort")]
pub mod onnxruntime;
pub mod prep;

use std::path::{Path, PathBuf};

use sl_frame::{BBox, Value, VideoFrame};

pub use card::{BoxFormat, Card, Channels, Decoder, Layout, Resize, Task};
pub use model::{Model, ModelInfo};

/// What can go wrong, each naming what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("model card {path}: {reason}")]
    Card { path: PathBuf, reason: String },
    #[error("{0}")]
    Input(String),
    /// A flag that cannot work with this model (the binary exits with its usage code).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Outputs(String),
    #[error("{0}")]
    FrameDoesNotFit(String),
    #[error("inference failed: {0}")]
    Run(String),
    /// The backend cannot start (onnxruntime's library missing, or not built in).
    #[error("{0}")]
    Backend(String),
}

/// Which engine runs the graph; pre-processing, decoders and metadata are the same for both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// tract (pure Rust, built in): the default.
    #[default]
    Tract,
    /// onnxruntime, loaded at run time from its library (cargo feature `ort`).
    Ort,
}

impl Backend {
    /// Whether this build can run `self`.
    pub fn available(self) -> bool {
        match self {
            Backend::Tract => true,
            Backend::Ort => cfg!(feature = "ort"),
        }
    }
}

/// How the graph runs.
#[derive(Clone, Debug)]
pub struct Engine {
    pub backend: Backend,
    /// Inference threads (both backends).
    pub threads: usize,
    /// onnxruntime's library (`--ort-lib`); else `ORT_DYLIB_PATH`, else the cache's.
    pub ort_lib: Option<PathBuf>,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine {
            backend: Backend::Tract,
            threads: 1,
            ort_lib: None,
        }
    }
}

/// Pre-processing settings given as flags: each replaces the card's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub input: Option<String>,
    pub size: Option<(u32, u32)>,
    pub max_side: Option<u32>,
    pub resize: Option<Resize>,
    pub channels: Option<Channels>,
    pub layout: Option<Layout>,
    pub scale: Option<f32>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
}

/// Output settings given as flags: each replaces the card's.
#[derive(Clone, Debug, Default)]
pub struct OutputOverrides {
    pub task: Option<Task>,
    pub decoder: Option<Decoder>,
    pub threshold: Option<f32>,
    pub nms: Option<f32>,
    pub labels: Option<Vec<String>>,
    pub top: Option<usize>,
}

/// The keys sl-ml attaches (docs/sl-ml.md).
pub mod keys {
    /// §3.1 boxes, in pixels of the frame they are attached to.
    pub const DETECTIONS: &str = "detections";
    /// Landmark points: zero-size boxes; `class_id` is the index of their detection.
    pub const LANDMARKS: &str = "landmarks";
    /// `--task classify`: the best classes as whole-frame boxes, best first.
    pub const CLASSES: &str = "classes";
    /// `--task classify`: the best class's label (or number) and score.
    pub const LABEL: &str = "label";
    pub const SCORE: &str = "score";
    /// `--task raw`: `tensor.<output name>` per output.
    pub const TENSOR_PREFIX: &str = "tensor.";
    /// The frame number the results were computed on (they may be a few frames old).
    pub const FRAME: &str = "ml_frame";
    /// Milliseconds the inference took.
    pub const MILLIS: &str = "ml_ms";
}

/// The decoded results of one inference, as metadata entries.
pub type Results = Vec<(String, Value)>;

/// A header carries at most 16 MiB (wire format §8): raw tensors past this are refused.
const MAX_RAW_BYTES: usize = 15 << 20;

/// A model with its task: from frames to metadata entries.
#[derive(Debug)]
pub struct Analyser {
    model: Model,
    task: Task,
    detect: decode::DetectSettings,
    labels: Vec<String>,
    softmax: Option<bool>,
    top: usize,
    /// Output names in the order the decoder wants them, when the card says.
    order: Option<Vec<usize>>,
}

impl Analyser {
    /// Load a model with its card (`card`, or the one beside the model) and the flags.
    pub fn load(
        path: &Path,
        card: Option<&Path>,
        over: &Overrides,
        out: &OutputOverrides,
        engine: &Engine,
    ) -> Result<Analyser, Error> {
        let card = match card.map(Path::to_path_buf).or_else(|| Card::beside(path)) {
            Some(p) => Some(Card::read(&p)?),
            None => None,
        };
        let model = Model::load(path, card.as_ref(), over, engine)?;
        let c = card.map(|c| c.output).unwrap_or_default();
        let task = out.task.or(c.task).unwrap_or(Task::Detect);
        let decoder = out.decoder.or(c.decoder);
        let info = model.info();
        let decoder = match (task, decoder) {
            (Task::Detect, Some(d)) => d,
            (Task::Detect, None) => guess_decoder(info).ok_or_else(|| {
                Error::Outputs(format!(
                    "which detection layout do this model's outputs follow? give --decoder \
                     centerface|yolov5|yolov8|ssd, or a model card ({})",
                    info.ports()
                ))
            })?,
            (_, d) => d.unwrap_or(Decoder::Yolov8),
        };
        let order =
            match &c.outputs {
                Some(names) => Some(
                    names
                        .iter()
                        .map(|n| {
                            info.outputs.iter().position(|p| &p.name == n).ok_or_else(|| {
                            Error::Outputs(format!(
                                "the model card names output `{n}`, which the model does not \
                                 have ({})",
                                info.ports()
                            ))
                        })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                None => None,
            };
        let labels = out.labels.clone().or(c.labels).unwrap_or_default();
        Ok(Analyser {
            task,
            detect: decode::DetectSettings {
                decoder,
                threshold: out.threshold.or(c.threshold).unwrap_or(0.5),
                nms: out.nms.or(c.nms).unwrap_or(0.45),
                box_format: c.box_format.unwrap_or_default(),
                normalized: c.normalized.unwrap_or(decoder == Decoder::Ssd),
                background: c.background.unwrap_or(false),
            },
            labels,
            softmax: c.softmax,
            top: out.top.unwrap_or(5),
            order,
            model,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    pub fn task(&self) -> Task {
        self.task
    }

    pub fn decoder(&self) -> Decoder {
        self.detect.decoder
    }

    /// Check a frame size before frames flow: the plan is built (or the error given) now.
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<(), Error> {
        let g = self.model.geometry(width, height)?;
        self.model.prepare(&g)
    }

    /// Run on one frame and decode: the metadata entries to attach.
    pub fn analyse(&mut self, frame: &VideoFrame) -> Result<Results, Error> {
        let (outs, g) = self.model.run(frame)?;
        let tensors: Vec<decode::Tensor> = match &self.order {
            Some(order) => order
                .iter()
                .map(|&i| view(&outs[i]))
                .chain(
                    outs.iter()
                        .enumerate()
                        .filter(|(i, _)| !order.contains(i))
                        .map(|(_, o)| view(o)),
                )
                .collect(),
            None => outs.iter().map(view).collect(),
        };
        let mut results = Results::new();
        match self.task {
            Task::Detect => {
                let found = decode::detect(&tensors, &self.detect, g.input)?;
                let names: &[&str] = if self.detect.decoder == Decoder::Centerface {
                    &decode::FACE_POINTS
                } else {
                    &[]
                };
                let labels: Vec<String> =
                    if self.labels.is_empty() && self.detect.decoder == Decoder::Centerface {
                        vec!["face".to_string()]
                    } else {
                        self.labels.clone()
                    };
                let (boxes, points) = decode::to_boxes(&found, &g, &labels, names);
                results.push((keys::DETECTIONS.into(), Value::Boxes(boxes)));
                if !points.is_empty() || self.detect.decoder == Decoder::Centerface {
                    results.push((keys::LANDMARKS.into(), Value::Boxes(points)));
                }
            }
            Task::Classify => {
                let top = decode::classify(&tensors, self.softmax, self.top)?;
                let (w, h) = (frame.width() as f32, frame.height() as f32);
                let name = |c: usize| self.labels.get(c).cloned().unwrap_or_else(|| c.to_string());
                if let Some(&(c, s)) = top.first() {
                    results.push((keys::LABEL.into(), Value::Str(name(c))));
                    results.push((keys::SCORE.into(), Value::Float(f64::from(s))));
                }
                let boxes = top
                    .iter()
                    .map(|&(c, s)| BBox {
                        x: 0.0,
                        y: 0.0,
                        w,
                        h,
                        score: s,
                        class_id: c as i32,
                        label: name(c),
                    })
                    .collect();
                results.push((keys::CLASSES.into(), Value::Boxes(boxes)));
            }
            Task::Raw => {
                let mut total = 0;
                for t in &tensors {
                    let b = decode::raw_bytes(t);
                    total += b.len();
                    if total > MAX_RAW_BYTES {
                        return Err(Error::Outputs(format!(
                            "the outputs come to more than {} MiB, more than a frame's header \
                             can carry (wire format §8): use --task detect or classify, or a \
                             smaller input (--size)",
                            MAX_RAW_BYTES >> 20
                        )));
                    }
                    results.push((
                        format!("{}{}", keys::TENSOR_PREFIX, t.name),
                        Value::Bytes(b),
                    ));
                }
            }
        }
        Ok(results)
    }
}

fn view(o: &model::Output) -> decode::Tensor<'_> {
    decode::Tensor {
        name: &o.name,
        shape: &o.shape,
        data: &o.data,
    }
}

/// A detection layout from the declared outputs, when it is unmistakable.
fn guess_decoder(info: &ModelInfo) -> Option<Decoder> {
    use model::Dim;
    let channels: Vec<Option<i64>> = info
        .outputs
        .iter()
        .map(|p| match p.dims.as_deref() {
            Some([_, Dim::Fixed(c), _, _]) => Some(*c),
            _ => None,
        })
        .collect();
    let mut sorted = channels.clone();
    sorted.sort();
    if sorted == [Some(1), Some(2), Some(2), Some(10)] {
        return Some(Decoder::Centerface);
    }
    None
}
