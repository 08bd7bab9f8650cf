//! An ONNX model on tract: reading and describing it (`--inspect`), resolving how frames feed
//! it (card, flags, its declared input), and running it on frames.
//!
//! Fully convolutional models often declare a fixed input shape (CenterFace says
//! `[10, 3, 32, 32]`) yet take any size that is a multiple of their stride. So the declared
//! input shape is only a default: the input fact is always set to the shape the frame gives
//! (batch 1), the declared output shapes and intermediate value-info are dropped (tract
//! infers them again; kept, they contradict the new input), and one optimised plan is kept
//! per input size.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sl_frame::VideoFrame;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::SimpleState;

use crate::card::{Card, Channels, Layout, Resize};
use crate::prep::{Geometry, Prep, Sizing};
use crate::{Backend, Engine, Error, Overrides};

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Named(String),
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Named(s) => write!(f, "{s}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

/// A declared input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub dtype: String,
    /// `None` when the model declares no shape.
    pub dims: Option<Vec<Dim>>,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.name, self.dtype)?;
        match &self.dims {
            Some(d) => {
                let d: Vec<String> = d.iter().map(|d| d.to_string()).collect();
                write!(f, " [{}]", d.join(", "))
            }
            None => write!(f, " (shape not declared)"),
        }
    }
}

/// What a model file says about itself.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub opset: i64,
    pub ir_version: i64,
    pub producer: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub nodes: usize,
}

impl ModelInfo {
    /// One line listing inputs and outputs, for error messages.
    pub fn ports(&self) -> String {
        let i: Vec<String> = self.inputs.iter().map(|p| p.to_string()).collect();
        let o: Vec<String> = self.outputs.iter().map(|p| p.to_string()).collect();
        format!("inputs {}; outputs {}", i.join(", "), o.join(", "))
    }
}

impl fmt::Display for ModelInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model: {}", self.path.display())?;
        writeln!(f, "size: {} bytes, {} nodes", self.bytes, self.nodes)?;
        writeln!(f, "opset: {} (ir version {})", self.opset, self.ir_version)?;
        if !self.producer.is_empty() {
            writeln!(f, "producer: {}", self.producer)?;
        }
        writeln!(f, "inputs:")?;
        for p in &self.inputs {
            writeln!(f, "  {p}")?;
        }
        writeln!(f, "outputs:")?;
        for p in &self.outputs {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

fn dtype_name(t: i32) -> String {
    use pb::tensor_proto::DataType;
    match DataType::try_from(t) {
        Ok(d) => d.as_str_name().to_ascii_lowercase(),
        Err(_) => format!("type {t}"),
    }
}

fn port(v: &pb::ValueInfoProto) -> Port {
    use pb::tensor_shape_proto::dimension::Value as D;
    use pb::type_proto::Value as T;
    let (dtype, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(t)) => (
            dtype_name(t.elem_type),
            t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(D::DimValue(v)) => Dim::Fixed(*v),
                        Some(D::DimParam(p)) if !p.is_empty() => Dim::Named(p.clone()),
                        _ => Dim::Unknown,
                    })
                    .collect()
            }),
        ),
        _ => ("unknown".to_string(), None),
    };
    Port {
        name: v.name.clone(),
        dtype,
        dims,
    }
}

/// Read and parse a model file (no tract graph yet).
fn read_proto(path: &Path) -> Result<(pb::ModelProto, ModelInfo), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "no such file (scripts/deps/models.sh fetches CenterFace into ~/.cache/streamlib/models)"
                .into()
        } else {
            e.to_string()
        },
    })?;
    let proto = onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| Error::Model {
            path: path.to_path_buf(),
            reason: format!("not an ONNX model ({e})"),
        })?;
    let graph = proto.graph.as_ref().ok_or_else(|| Error::Model {
        path: path.to_path_buf(),
        reason: "not an ONNX model (it has no graph)".into(),
    })?;
    // older exporters list the weights among the inputs too
    let init: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    let info = ModelInfo {
        path: path.to_path_buf(),
        bytes: bytes.len() as u64,
        opset,
        ir_version: proto.ir_version,
        producer: format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string(),
        inputs: graph
            .input
            .iter()
            .filter(|i| !init.contains(i.name.as_str()))
            .map(port)
            .collect(),
        outputs: graph.output.iter().map(port).collect(),
        nodes: graph.node.len(),
    };
    if info.inputs.is_empty() || info.outputs.is_empty() {
        return Err(Error::Model {
            path: path.to_path_buf(),
            reason: format!(
                "not a model sl-ml can run: it declares {} inputs and {} outputs",
                info.inputs.len(),
                info.outputs.len()
            ),
        });
    }
    Ok((proto, info))
}

/// What `sl-ml --inspect` prints.
pub fn inspect(path: &Path) -> Result<ModelInfo, Error> {
    read_proto(path).map(|(_, info)| info)
}

/// An output after a run, as `f32`.
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

type Plan = Arc<TypedRunnableModel>;
type PlanState = SimpleState<TypedFact, Box<dyn TypedOp>>;

/// A model ready to run at one input size, on one backend.
enum Runner {
    Tract(Box<PlanState>),
    #[cfg(feature = "ort")]
    Ort(crate::onnxruntime::Plan),
}

/// A model ready to run on frames.
pub struct Model {
    info: ModelInfo,
    prep: Prep,
    proto: pb::ModelProto,
    input_index: usize,
    threads: usize,
    backend: Backend,
    /// onnxruntime's library, with `Backend::Ort`.
    #[cfg_attr(not(feature = "ort"), allow(dead_code))]
    ort_lib: Option<PathBuf>,
    /// Optimised plans by input size (a stream rarely has more than one).
    plans: Vec<((u32, u32), Runner)>,
    buf: Vec<f32>,
    /// Where the last run's time went.
    timing: Timing,
}

/// Where a run's time went, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    /// The frame to the input tensor (resize, channel order, layout, normalisation).
    pub prep: f64,
    /// The graph, outputs to `f32` included.
    pub graph: f64,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.info.path)
            .field("prep", &self.prep)
            .field("threads", &self.threads)
            .field("backend", &self.backend)
            .finish()
    }
}

const MAX_PLANS: usize = 4;

impl Model {
    /// Load `path`, with its card (beside it, or `card`) and the flags' overrides, for the
    /// engine's backend (onnxruntime's library is loaded now, so a missing one fails early).
    pub fn load(
        path: &Path,
        card: Option<&Card>,
        over: &Overrides,
        engine: &Engine,
    ) -> Result<Model, Error> {
        let (proto, info) = read_proto(path)?;
        let default_card = Card::default();
        let card = card.unwrap_or(&default_card);
        let (prep, input_index) = resolve(&info, card, over)?;
        let ort_lib = match engine.backend {
            Backend::Tract => None,
            Backend::Ort => Some(ort_library(engine)?),
        };
        Ok(Model {
            info,
            prep,
            proto,
            input_index,
            threads: engine.threads.max(1),
            backend: engine.backend,
            ort_lib,
            plans: Vec::new(),
            buf: Vec::new(),
            timing: Timing::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the last [`Model::run`]'s time went.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn prep(&self) -> &Prep {
        &self.prep
    }

    /// The geometry a frame of this size gets.
    pub fn geometry(&self, width: u32, height: u32) -> Result<Geometry, Error> {
        self.prep.geometry(width, height)
    }

    /// Build (or reuse) the plan for an input size: fails early, naming the model's inputs
    /// and outputs, when tract cannot run the model at that size.
    pub fn prepare(&mut self, g: &Geometry) -> Result<(), Error> {
        if self.plans.iter().any(|(k, _)| *k == g.input) {
            return Ok(());
        }
        let shape = self.prep.shape(g);
        let cannot = |engine: &str, e: String| Error::Model {
            path: self.info.path.clone(),
            reason: format!(
                "{engine} cannot run it with input `{}` {} ({}): {e}",
                self.prep.input,
                crate::decode::shape_str(&shape),
                self.info.ports()
            ),
        };
        let runner = match self.backend {
            Backend::Tract => {
                let plan = self
                    .plan(&shape)
                    .map_err(|e| cannot("tract", format!("{e:#}")))?;
                Runner::Tract(Box::new(
                    plan.spawn().map_err(|e| Error::Run(format!("{e:#}")))?,
                ))
            }
            #[cfg(feature = "ort")]
            Backend::Ort => Runner::Ort(
                crate::onnxruntime::Plan::new(
                    self.ort_lib.as_deref().expect("resolved at load"),
                    &self.proto,
                    &self.prep.input,
                    &shape,
                    self.threads,
                )
                .map_err(|e| cannot("onnxruntime", e))?,
            ),
            #[cfg(not(feature = "ort"))]
            Backend::Ort => return Err(without_ort()),
        };
        if self.plans.len() >= MAX_PLANS {
            self.plans.remove(0);
        }
        self.plans.push((g.input, runner));
        Ok(())
    }

    fn plan(&self, shape: &[usize; 4]) -> TractResult<Plan> {
        let dir = self.info.path.parent().and_then(|d| d.to_str());
        let onnx = onnx().with_ignore_value_info(true);
        let mut model = onnx.parse(&self.proto, dir)?.model;
        model.set_input_fact(
            self.input_index,
            InferenceFact::dt_shape(
                f32::datum_type(),
                shape.iter().copied().collect::<TVec<_>>(),
            ),
        )?;
        for i in 0..model.outputs.len() {
            model.set_output_fact(i, InferenceFact::default())?;
        }
        let typed = model.into_optimized()?;
        let mut options = RunOptions::default();
        if self.threads > 1 {
            options.executor = Some(multithread::Executor::multithread(self.threads));
        }
        typed.into_runnable_with_options(&options)
    }

    /// Run the model on a frame: its outputs as `f32`, and the geometry that maps them back.
    pub fn run(&mut self, frame: &VideoFrame) -> Result<(Vec<Output>, Geometry), Error> {
        let g = self.prep.geometry(frame.width(), frame.height())?;
        self.prepare(&g)?;
        let shape = self.prep.shape(&g);
        let start = std::time::Instant::now();
        self.prep.fill(frame, &g, &mut self.buf);
        let filled = std::time::Instant::now();
        self.timing.prep = (filled - start).as_secs_f64() * 1e3;
        let runner = &mut self
            .plans
            .iter_mut()
            .find(|(k, _)| *k == g.input)
            .expect("prepared above")
            .1;
        // without the `ort` feature the match has one arm
        #[cfg_attr(not(feature = "ort"), allow(clippy::infallible_destructuring_match))]
        let state = match runner {
            Runner::Tract(state) => state,
            #[cfg(feature = "ort")]
            Runner::Ort(plan) => {
                let outs = plan.run(&shape, &self.buf)?;
                self.timing.graph = filled.elapsed().as_secs_f64() * 1e3;
                return Ok((outs, g));
            }
        };
        let input =
            Tensor::from_shape(&shape, &self.buf).map_err(|e| Error::Run(format!("{e:#}")))?;
        let outs = state
            .run(tvec![input.into()])
            .map_err(|e| Error::Run(format!("{e:#}")))?;
        let mut result = Vec::with_capacity(outs.len());
        for (i, t) in outs.into_iter().enumerate() {
            let name = self
                .info
                .outputs
                .get(i)
                .map_or_else(|| format!("output{i}"), |p| p.name.clone());
            let f = t
                .cast_to::<f32>()
                .map_err(|e| Error::Run(format!("output `{name}`: {e:#}")))?;
            let data: Vec<f32> = f
                .to_plain_array_view::<f32>()
                .map_err(|e| Error::Run(format!("output `{name}`: {e:#}")))?
                .iter()
                .copied()
                .collect();
            result.push(Output {
                name,
                shape: t.shape().to_vec(),
                data,
            });
        }
        self.timing.graph = filled.elapsed().as_secs_f64() * 1e3;
        Ok((result, g))
    }
}

#[cfg(feature = "ort")]
fn ort_library(engine: &Engine) -> Result<PathBuf, Error> {
    let lib = crate::onnxruntime::library(engine.ort_lib.as_deref())?;
    crate::onnxruntime::check(&lib)?;
    Ok(lib)
}

#[cfg(not(feature = "ort"))]
fn ort_library(_: &Engine) -> Result<PathBuf, Error> {
    Err(without_ort())
}

#[cfg(not(feature = "ort"))]
fn without_ort() -> Error {
    Error::Backend(
        "this sl-ml was built without onnxruntime: build it with `--features ort` (sl-ml's \
         default), or use --backend tract"
            .into(),
    )
}

/// How frames feed the model: which input, and the pre-processing, from the flags, then the
/// card, then what the model declares.
fn resolve(info: &ModelInfo, card: &Card, over: &Overrides) -> Result<(Prep, usize), Error> {
    let c = &card.input;
    let bad = |why: String| Error::Input(format!("{why} (the model's {})", info.ports()));
    let name = over.input.clone().or_else(|| c.name.clone());
    let index = match &name {
        Some(n) => info
            .inputs
            .iter()
            .position(|p| &p.name == n)
            .ok_or_else(|| bad(format!("the model has no input `{n}`")))?,
        None if info.inputs.len() == 1 => 0,
        None => {
            return Err(bad(
                "the model has several inputs: name the picture's with --input NAME".into(),
            ));
        }
    };
    let port = &info.inputs[index];
    if info.inputs.len() > 1 {
        return Err(bad(format!(
            "sl-ml feeds one picture, and this model wants {} inputs",
            info.inputs.len()
        )));
    }
    if !matches!(port.dtype.as_str(), "float" | "float32") {
        return Err(bad(format!(
            "input `{}` is {}: sl-ml feeds float32 pictures",
            port.name, port.dtype
        )));
    }
    let dims = port.dims.clone().unwrap_or_default();
    if !dims.is_empty() && dims.len() != 4 {
        return Err(bad(format!(
            "input {port} is not a picture: sl-ml feeds [1, C, H, W] (or [1, H, W, C] with \
             --layout nhwc)"
        )));
    }
    let fixed = |i: usize| match dims.get(i) {
        Some(Dim::Fixed(v)) if *v > 0 => Some(*v as u32),
        _ => None,
    };
    let layout = over
        .layout
        .or(c.layout)
        .unwrap_or_else(|| match (fixed(1), fixed(3)) {
            (Some(1 | 3), _) => Layout::Nchw,
            (_, Some(1 | 3)) => Layout::Nhwc,
            _ => Layout::Nchw,
        });
    let (ci, hi, wi) = match layout {
        Layout::Nchw => (1, 2, 3),
        Layout::Nhwc => (3, 1, 2),
    };
    let channels = match over.channels.or(c.channels) {
        Some(ch) => ch,
        None => match fixed(ci) {
            Some(1) => Channels::Gray,
            _ => Channels::Rgb,
        },
    };
    if let Some(n) = fixed(ci)
        && n as usize != channels.count()
        && over.size.is_none()
        && c.multiple_of.is_none()
    {
        return Err(bad(format!(
            "input {port} has {n} channels in {} layout, and {} pictures have {}: give \
             --layout or --channels",
            match layout {
                Layout::Nchw => "nchw",
                Layout::Nhwc => "nhwc",
            },
            match channels {
                Channels::Gray => "gray",
                Channels::Rgb => "rgb",
                Channels::Bgr => "bgr",
            },
            channels.count()
        )));
    }
    let sizing = if let Some((w, h)) = over.size {
        match c.multiple_of {
            Some(n) if w % n != 0 || h % n != 0 => {
                return Err(Error::Usage(format!(
                    "--size {w}x{h}: this model takes sizes that are multiples of {n}, such as \
                     {}x{} (the model's {})",
                    w.div_ceil(n) * n,
                    h.div_ceil(n) * n,
                    info.ports()
                )));
            }
            _ => Sizing::Fixed {
                width: w,
                height: h,
            },
        }
    } else if let Some([w, h]) = c.size {
        Sizing::Fixed {
            width: w,
            height: h,
        }
    } else if let Some(n) = c.multiple_of {
        Sizing::Multiple {
            n,
            max_side: over.max_side.or(c.max_side),
        }
    } else if let (Some(w), Some(h)) = (fixed(wi), fixed(hi)) {
        Sizing::Fixed {
            width: w,
            height: h,
        }
    } else {
        // a symbolic size: any multiple of 32 is the usual rule (every common backbone's
        // stride divides it)
        Sizing::Multiple {
            n: 32,
            max_side: over.max_side.or(c.max_side).or(Some(640)),
        }
    };
    let sizing = match (sizing, over.max_side) {
        (Sizing::Multiple { n, .. }, Some(m)) => Sizing::Multiple {
            n,
            max_side: Some(m),
        },
        (s, _) => s,
    };
    let three = |v: &Option<Vec<f32>>, d: f32| -> [f32; 3] {
        match v.as_deref() {
            Some([a]) => [*a; 3],
            Some([a, b, c]) => [*a, *b, *c],
            _ => [d; 3],
        }
    };
    let (mean, std) = (
        over.mean.unwrap_or_else(|| three(&c.mean, 0.0)),
        over.std.unwrap_or_else(|| three(&c.std, 1.0)),
    );
    if std.contains(&0.0) {
        return Err(Error::Usage("--std must not contain 0".into()));
    }
    Ok((
        Prep {
            input: port.name.clone(),
            sizing,
            resize: over.resize.or(c.resize).unwrap_or(Resize::Stretch),
            channels,
            layout,
            scale: over.scale.or(c.scale).unwrap_or(1.0 / 255.0),
            mean,
            std,
            pad: c.pad.unwrap_or(0),
        },
        index,
    ))
}
