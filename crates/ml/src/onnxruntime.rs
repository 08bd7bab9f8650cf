//! The optional onnxruntime backend (cargo feature `ort`): the `ort` crate with
//! `load-dynamic`, so nothing is downloaded or linked at build time and the binary has no link
//! dependency; `libonnxruntime.so` (from the onnxruntime wheel on PyPI, which
//! scripts/deps/models.sh extracts) is loaded when the first model is, from `--ort-lib`,
//! `ORT_DYLIB_PATH` or the cache.
//!
//! The backend only runs the graph: pre-processing, decoders and metadata are the same as
//! with tract. onnxruntime cannot override a fixed input shape the way tract does, so each
//! input size gets a copy of the model with that input shape set, the declared output shapes
//! and value-info cleared, and the weights taken out of the graph's inputs (so onnxruntime
//! folds constants).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};
use prost::Message as _;
use tract_onnx::pb;

use crate::Error;
use crate::model::Output;

/// The onnxruntime release the scripts fetch and sl-ml looks for.
pub const VERSION: &str = "1.32.0";

/// Where scripts/deps/models.sh puts the library:
/// `${STREAMLIB_CACHE:-~/.cache/streamlib}/onnxruntime-1.32.0/libonnxruntime.so.1.32.0`.
pub fn default_library() -> Option<PathBuf> {
    let root = match std::env::var_os("STREAMLIB_CACHE") {
        Some(c) if !c.is_empty() => PathBuf::from(c),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache/streamlib"),
    };
    Some(
        root.join(format!("onnxruntime-{VERSION}"))
            .join(format!("libonnxruntime.so.{VERSION}")),
    )
}

/// The library to load: `flag` (--ort-lib), else `ORT_DYLIB_PATH`, else the cache's.
pub fn library(flag: Option<&Path>) -> Result<PathBuf, Error> {
    let (path, from) = if let Some(p) = flag {
        (p.to_path_buf(), "--ort-lib")
    } else if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        (PathBuf::from(p), "ORT_DYLIB_PATH")
    } else {
        let p = default_library().ok_or_else(|| {
            Error::Backend(
                "cannot find onnxruntime's library: HOME is not set; give --ort-lib PATH".into(),
            )
        })?;
        (p, "the cache")
    };
    if !path.is_file() {
        return Err(Error::Backend(format!(
            "onnxruntime's library {} ({from}) is missing: run scripts/setup.sh (its \
             scripts/deps/models.sh extracts libonnxruntime.so from the onnxruntime {VERSION} \
             wheel), or give --ort-lib PATH or ORT_DYLIB_PATH",
            path.display()
        )));
    }
    Ok(path)
}

/// One environment per process (onnxruntime allows no more), made on first use.
static ENV: OnceLock<Result<(PathBuf, Environment), String>> = OnceLock::new();

fn environment(lib: &Path) -> Result<&'static Environment, Error> {
    let got = ENV.get_or_init(|| {
        let env = ort::init_from(lib)
            .map_err(|e| format!("loading onnxruntime from {}: {e}", lib.display()))?
            .with_name("sl-ml")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("starting onnxruntime ({}): {e}", lib.display()))?;
        Ok((lib.to_path_buf(), env))
    });
    match got {
        Ok((loaded, env)) if loaded == lib => Ok(env),
        Ok((loaded, _)) => Err(Error::Backend(format!(
            "onnxruntime is already loaded from {}, not {}",
            loaded.display(),
            lib.display()
        ))),
        Err(e) => Err(Error::Backend(e.clone())),
    }
}

/// Load the library now (a missing or wrong one fails before any frame).
pub fn check(lib: &Path) -> Result<(), Error> {
    environment(lib).map(|_| ())
}

/// A model at one input size, ready to run.
pub struct Plan {
    session: Session,
    input: String,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("input", &self.input).finish()
    }
}

/// The model with input `input` fixed to `shape`, as onnxruntime can take it.
pub fn fitted(proto: &pb::ModelProto, input: &str, shape: &[usize]) -> Vec<u8> {
    use pb::tensor_shape_proto::{Dimension, dimension::Value as D};
    use pb::type_proto::Value as T;
    let mut m = proto.clone();
    if let Some(g) = m.graph.as_mut() {
        let weights: std::collections::HashSet<String> =
            g.initializer.iter().map(|t| t.name.clone()).collect();
        g.input.retain(|i| !weights.contains(&i.name));
        for i in g.input.iter_mut().filter(|i| i.name == input) {
            if let Some(T::TensorType(t)) = i.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                t.shape = Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&v| Dimension {
                            value: Some(D::DimValue(v as i64)),
                            ..Default::default()
                        })
                        .collect(),
                });
            }
        }
        for o in &mut g.output {
            if let Some(T::TensorType(t)) = o.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                t.shape = None;
            }
        }
        g.value_info.clear();
    }
    m.encode_to_vec()
}

impl Plan {
    pub fn new(
        lib: &Path,
        proto: &pb::ModelProto,
        input: &str,
        shape: &[usize],
        threads: usize,
    ) -> Result<Plan, String> {
        let env = environment(lib).map_err(|e| e.to_string())?;
        let bytes = fitted(proto, input, shape);
        let session = Session::builder(env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| e.to_string())?
            .with_intra_threads(threads)
            .map_err(|e| e.to_string())?
            .with_inter_threads(1)
            .map_err(|e| e.to_string())?
            .commit_from_memory(&bytes)
            .map_err(|e| format!("onnxruntime: {e}"))?;
        Ok(Plan {
            session,
            input: input.to_string(),
        })
    }

    /// Run on one input tensor: the outputs as `f32`, in the model's order.
    pub fn run(&mut self, shape: &[usize], data: &[f32]) -> Result<Vec<Output>, Error> {
        let run = |e: ort::Error| Error::Run(format!("onnxruntime: {e}"));
        let x = TensorRef::from_array_view((shape.to_vec(), data)).map_err(run)?;
        let outs = self
            .session
            .run(ort::inputs![self.input.as_str() => x])
            .map_err(run)?;
        let mut result = Vec::with_capacity(outs.len());
        for (name, v) in outs.iter() {
            let bad = |e: ort::Error| Error::Run(format!("output `{name}`: onnxruntime: {e}"));
            let (shape, data): (Vec<usize>, Vec<f32>) = match v.dtype() {
                ValueType::Tensor {
                    ty: TensorElementType::Float32,
                    ..
                } => {
                    let (s, d) = v.try_extract_tensor::<f32>().map_err(bad)?;
                    (dims(s), d.to_vec())
                }
                ValueType::Tensor {
                    ty: TensorElementType::Float64,
                    ..
                } => {
                    let (s, d) = v.try_extract_tensor::<f64>().map_err(bad)?;
                    (dims(s), d.iter().map(|&x| x as f32).collect())
                }
                ValueType::Tensor {
                    ty: TensorElementType::Int64,
                    ..
                } => {
                    let (s, d) = v.try_extract_tensor::<i64>().map_err(bad)?;
                    (dims(s), d.iter().map(|&x| x as f32).collect())
                }
                ValueType::Tensor {
                    ty: TensorElementType::Int32,
                    ..
                } => {
                    let (s, d) = v.try_extract_tensor::<i32>().map_err(bad)?;
                    (dims(s), d.iter().map(|&x| x as f32).collect())
                }
                other => {
                    return Err(Error::Run(format!(
                        "output `{name}` is {other}: sl-ml reads float and integer tensors"
                    )));
                }
            };
            result.push(Output {
                name: name.to_string(),
                shape,
                data,
            });
        }
        Ok(result)
    }
}

fn dims(s: &ort::value::Shape) -> Vec<usize> {
    s.iter().map(|&d| d.max(0) as usize).collect()
}
