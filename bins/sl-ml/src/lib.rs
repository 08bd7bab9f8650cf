//! sl-ml: run an ONNX model on the frames of a stream and attach what it finds as metadata;
//! the frames go on untouched. A [`Filter`] on the stage runtime.
//!
//! Two ways to keep up with a live source:
//! - by default each analysed frame waits for its own results (exact, lossless); with
//!   `--policy latest` the runtime then drops frames this stage is too slow for, so lag never
//!   builds up, and `--every N` analyses one frame in N;
//! - `--live` never holds a frame: inference runs on a worker thread on the newest frame
//!   (a `latest` channel), and every frame leaves at once carrying the most recent results.
//!
//! Either way each frame says which frame its results were computed on (`ml_frame`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use sl_cli::{FrameLimit, Size, StageFlags, UsageError};
use sl_frame::{Value, VideoFrame};
use sl_ml_lib::model::Timing;
use sl_ml_lib::{
    Analyser, Backend, Channels, Decoder, Engine, Layout, OutputOverrides, Overrides, Resize,
    Results, Task, keys,
};
use sl_stage::policy::{self, Policy};
use sl_stage::{Ending, Filter, Flow, Output, Stage};
use sl_wire::{Message, StreamKind, VideoFormat};

/// Run an ONNX model on the frames of a stream and attach what it finds (boxes, landmarks,
/// classes or raw tensors) to each frame as metadata. Frames pass on untouched; audio and
/// other streams pass through.
#[derive(Parser, Debug)]
#[command(
    name = "sl-ml",
    version,
    after_help = "How frames feed the model comes from its model card (MODEL with .toml, see \
      docs/sl-ml.md) or the flags below; without either, from the model's declared input.\n\n\
      Examples:\n  \
      sl-ml --inspect centerface.onnx                       # inputs, outputs, shapes, opset\n  \
      sl-file talk.mp4 | sl-ml centerface.onnx | sl-draw examples/anonymise.rhai | sl-hls out/\n  \
      sl-cam | sl-ml --live centerface.onnx | sl-draw examples/boxes.rhai | sl-show\n  \
      sl-file in.mp4 | sl-ml yolov8n.onnx --decoder yolov8 --labels coco.txt | sl-info\n  \
      sl-file cat.jpg | sl-ml net.onnx --task classify --labels imagenet.txt --top 3 | sl-info --json\n\n\
      Results go under `detections` (boxes in frame pixels) and `landmarks`, or `classes`, \
      `label` and `score`, or `tensor.NAME`; `ml_frame` says which frame they came from."
)]
pub struct Args {
    /// The ONNX model.
    model: PathBuf,
    /// Print the model's inputs, outputs, shapes and opset, and how sl-ml would feed it; then exit.
    #[arg(long)]
    inspect: bool,
    /// The model card (default: MODEL with the extension .toml, when it exists).
    #[arg(long, value_name = "FILE")]
    card: Option<PathBuf>,
    /// What the outputs are: detect (boxes), classify (class scores) or raw (the tensors).
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// The detection layout of the outputs.
    #[arg(long, value_enum)]
    decoder: Option<DecoderArg>,
    /// Class names, one per line, in the model's order.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// Keep detections scoring above this (0..1).
    #[arg(long, value_name = "SCORE")]
    threshold: Option<f32>,
    /// Non-maximum suppression: drop a box overlapping a better one of its class by more than
    /// this IoU (0..1).
    #[arg(long, value_name = "IOU")]
    nms: Option<f32>,
    /// classify: how many of the best classes to attach.
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// The model's input size (WIDTHxHEIGHT): frames are resized to it.
    #[arg(long, value_name = "WxH")]
    size: Option<Size>,
    /// For models taking any size: scale frames down so their longer side is at most N.
    #[arg(long, value_name = "N")]
    max_side: Option<u32>,
    /// How a frame meets a different input size.
    #[arg(long, value_enum)]
    resize: Option<ResizeArg>,
    /// Channel order the model wants.
    #[arg(long, value_enum)]
    channels: Option<ChannelsArg>,
    /// Where the model wants the channel axis.
    #[arg(long, value_enum)]
    layout: Option<LayoutArg>,
    /// Input value = (pixel × SCALE - mean) / std; pixels are 0..255.
    #[arg(long)]
    scale: Option<f32>,
    /// Per-channel mean, one value or three (R,G,B order of the input's channels).
    #[arg(long, value_name = "M[,M,M]", value_parser = three)]
    mean: Option<[f32; 3]>,
    /// Per-channel standard deviation, one value or three.
    #[arg(long, value_name = "S[,S,S]", value_parser = three)]
    std: Option<[f32; 3]>,
    /// Analyse one frame in N; the frames between carry the last results.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Never hold a frame: infer on a worker thread, on the newest frame, and send every
    /// frame on at once with the most recent results (which may be a few frames old).
    #[arg(long)]
    live: bool,
    /// Threads for inference (default: every core), with either backend.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: Option<u32>,
    /// What runs the model: tract (built in) or onnxruntime (its libonnxruntime.so, loaded at
    /// run time; scripts/setup.sh fetches it).
    #[arg(long, value_enum, default_value_t = BackendArg::Tract)]
    backend: BackendArg,
    /// onnxruntime's library for --backend ort (default: ORT_DYLIB_PATH, else the one
    /// scripts/deps/models.sh puts in ~/.cache/streamlib/onnxruntime-1.32.0/).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    #[command(flatten)]
    limit: FrameLimit,
    #[command(flatten)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Tract,
    Ort,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TaskArg {
    Detect,
    Classify,
    Raw,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DecoderArg {
    Centerface,
    Yolov5,
    Yolov8,
    Ssd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ResizeArg {
    Stretch,
    Letterbox,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ChannelsArg {
    Rgb,
    Bgr,
    Gray,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LayoutArg {
    Nchw,
    Nhwc,
}

fn three(s: &str) -> Result<[f32; 3], String> {
    let v: Result<Vec<f32>, _> = s.split(',').map(|x| x.trim().parse::<f32>()).collect();
    match v.as_deref() {
        Ok([a]) => Ok([*a; 3]),
        Ok([a, b, c]) => Ok([*a, *b, *c]),
        _ => Err(format!("`{s}`: give one number or three, comma-separated")),
    }
}

impl Args {
    fn engine(&self, threads: usize) -> Engine {
        Engine {
            backend: match self.backend {
                BackendArg::Tract => Backend::Tract,
                BackendArg::Ort => Backend::Ort,
            },
            threads,
            ort_lib: self.ort_lib.clone(),
        }
    }

    fn overrides(&self) -> Overrides {
        Overrides {
            input: None,
            size: self.size.map(|s| (s.width, s.height)),
            max_side: self.max_side,
            resize: self.resize.map(|r| match r {
                ResizeArg::Stretch => Resize::Stretch,
                ResizeArg::Letterbox => Resize::Letterbox,
                ResizeArg::None => Resize::None,
            }),
            channels: self.channels.map(|c| match c {
                ChannelsArg::Rgb => Channels::Rgb,
                ChannelsArg::Bgr => Channels::Bgr,
                ChannelsArg::Gray => Channels::Gray,
            }),
            layout: self.layout.map(|l| match l {
                LayoutArg::Nchw => Layout::Nchw,
                LayoutArg::Nhwc => Layout::Nhwc,
            }),
            scale: self.scale,
            mean: self.mean,
            std: self.std,
        }
    }

    fn output_overrides(&self) -> anyhow::Result<OutputOverrides> {
        for (name, v) in [("--threshold", self.threshold), ("--nms", self.nms)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(UsageError(format!("{name} {v}: give a value in 0..1")).into());
            }
        }
        let labels = match &self.labels {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --labels {}", path.display()))?;
                Some(
                    text.lines()
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .collect(),
                )
            }
            None => None,
        };
        Ok(OutputOverrides {
            task: self.task.map(|t| match t {
                TaskArg::Detect => Task::Detect,
                TaskArg::Classify => Task::Classify,
                TaskArg::Raw => Task::Raw,
            }),
            decoder: self.decoder.map(|d| match d {
                DecoderArg::Centerface => Decoder::Centerface,
                DecoderArg::Yolov5 => Decoder::Yolov5,
                DecoderArg::Yolov8 => Decoder::Yolov8,
                DecoderArg::Ssd => Decoder::Ssd,
            }),
            threshold: self.threshold,
            nms: self.nms,
            labels,
            top: self.top,
        })
    }
}

/// The latest results and the frame they came from.
#[derive(Clone)]
struct Latest {
    frame: u64,
    millis: f64,
    results: Results,
}

/// What the worker shares back: the newest results, or the error that stopped it.
#[derive(Default)]
struct Mailbox {
    latest: Option<Latest>,
    failed: Option<String>,
    millis: Vec<(f64, Timing)>,
}

/// `--live`: inference on a thread of its own, fed through a `latest` channel so it always
/// takes the newest frame offered.
struct Worker {
    tx: Option<policy::Sender<VideoFrame>>,
    mailbox: Arc<Mutex<Mailbox>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(mut analyser: Analyser) -> Worker {
        let (tx, rx) = policy::channel::<VideoFrame>(Policy::Latest, 1);
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let shared = Arc::clone(&mailbox);
        let thread = std::thread::Builder::new()
            .name("sl-ml-infer".into())
            .spawn(move || {
                while let Some(frame) = rx.recv() {
                    let start = Instant::now();
                    let r = analyser.analyse(&frame);
                    let mut m = shared.lock().unwrap_or_else(|e| e.into_inner());
                    match r {
                        Ok(results) => {
                            m.millis.push((
                                start.elapsed().as_secs_f64() * 1e3,
                                analyser.model().timing(),
                            ));
                            m.latest = Some(Latest {
                                frame: frame.info.frame_number,
                                millis: start.elapsed().as_secs_f64() * 1e3,
                                results,
                            })
                        }
                        Err(e) => {
                            m.failed = Some(e.to_string());
                            return;
                        }
                    }
                }
            })
            .expect("spawning the inference thread");
        Worker {
            tx: Some(tx),
            mailbox,
            thread: Some(thread),
        }
    }

    fn offer(&self, frame: VideoFrame) {
        if let Some(tx) = &self.tx {
            let _ = tx.send_frame(frame);
        }
    }

    fn latest(&self) -> anyhow::Result<Option<Latest>> {
        let m = self.mailbox.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &m.failed {
            anyhow::bail!("{e}");
        }
        Ok(m.latest.clone())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // closing the channel ends the thread after its current inference
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Ml {
    /// Until the first video stream arrives (live mode then moves it to the worker).
    analyser: Option<Analyser>,
    worker: Option<Worker>,
    live: bool,
    every: u64,
    /// The stream analysed: the first raw video stream.
    stream: Option<u16>,
    seen: u64,
    latest: Option<Latest>,
    /// Milliseconds per inference and where they went, for `--stats`.
    millis: Vec<(f64, Timing)>,
    stats: bool,
    threads: usize,
    backend: &'static str,
}

impl Ml {
    fn describe(&mut self, stream: u16, info: &sl_wire::StreamInfo) -> anyhow::Result<()> {
        let StreamKind::Video(v) = &info.kind else {
            return Ok(());
        };
        if self.stream.is_some_and(|s| s != stream) {
            return Ok(());
        }
        match v.format {
            VideoFormat::Raw(_) => {}
            VideoFormat::Coded(codec) => anyhow::bail!(
                "stream {stream} is {} video, and sl-ml works on raw frames: decode it first \
                 (sl-file FILE gives raw frames)",
                codec.name()
            ),
        }
        self.stream = Some(stream);
        // build the plan now, so a frame size the model cannot take fails before any frame
        if let Some(a) = self.analyser.as_mut() {
            a.prepare(v.width, v.height)?;
            log::info!(
                "stream {stream}: {}x{} frames into {:?}",
                v.width,
                v.height,
                a.model().geometry(v.width, v.height)?.input
            );
        }
        Ok(())
    }

    fn frame(&mut self, mut frame: VideoFrame) -> anyhow::Result<VideoFrame> {
        let due = self.seen.is_multiple_of(self.every);
        self.seen += 1;
        if self.live {
            if self.worker.is_none() {
                let a = self.analyser.take().context("the analyser is gone")?;
                self.worker = Some(Worker::spawn(a));
            }
            let worker = self.worker.as_ref().expect("just made");
            if due {
                worker.offer(frame.clone());
            }
            if let Some(l) = worker.latest()? {
                self.latest = Some(l);
            }
        } else if due {
            let a = self.analyser.as_mut().context("the analyser is gone")?;
            let start = Instant::now();
            let results = a
                .analyse(&frame)
                .with_context(|| format!("frame {}", frame.info.frame_number))?;
            let millis = start.elapsed().as_secs_f64() * 1e3;
            self.millis.push((millis, a.model().timing()));
            self.latest = Some(Latest {
                frame: frame.info.frame_number,
                millis,
                results,
            });
        }
        if let Some(l) = &self.latest {
            let md = &mut frame.info.metadata;
            for (k, v) in &l.results {
                md.insert(k.clone(), v.clone());
            }
            md.insert(keys::FRAME, Value::Int(l.frame as i64));
            md.insert(keys::MILLIS, Value::Float((l.millis * 10.0).round() / 10.0));
        }
        Ok(frame)
    }
}

impl Filter for Ml {
    type Note = ();

    fn message(
        &mut self,
        _input: usize,
        m: Message,
        _: (),
        out: &mut Output,
    ) -> anyhow::Result<Flow> {
        match m {
            Message::Stream { stream, info } => {
                self.describe(stream, &info)?;
                out.send(Message::Stream { stream, info })?;
            }
            Message::Video { stream, frame } if self.stream.is_none_or(|s| s == stream) => {
                if self.stream.is_none() {
                    // frames without a description first: analyse this stream
                    self.stream = Some(stream);
                }
                let frame = self.frame(frame)?;
                out.send(Message::Video { stream, frame })?;
            }
            other => out.send(other)?,
        }
        Ok(if out.stopped() {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }

    fn finish(&mut self, ending: Ending, _out: &mut Output) -> anyhow::Result<()> {
        if let Some(w) = self.worker.take() {
            let m = std::mem::take(&mut w.mailbox.lock().unwrap_or_else(|e| e.into_inner()).millis);
            drop(w);
            self.millis.extend(m);
        }
        if self.stats && !self.millis.is_empty() {
            let sorted = |f: fn(&(f64, Timing)) -> f64| {
                let mut v: Vec<f64> = self.millis.iter().map(f).collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let v = sorted(|m| m.0);
            let prep = sorted(|m| m.1.prep);
            let graph = sorted(|m| m.1.graph);
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            sl_cli::say(&format!(
                "{}: {} inferences ({}) on {} thread{}: median {:.1} ms, mean {:.1} ms, best {:.1} ms \
                 (medians: pre-processing {:.1} ms, graph {:.1} ms)",
                sl_cli::program(),
                v.len(),
                self.backend,
                self.threads,
                if self.threads == 1 { "" } else { "s" },
                v[v.len() / 2],
                mean,
                v[0],
                prep[prep.len() / 2],
                graph[graph.len() / 2]
            ));
        }
        ending.into_result()
    }
}

/// A library error as the stage reports it: flags that cannot work with the model are usage
/// errors (exit 2).
fn stage_error(e: sl_ml_lib::Error) -> anyhow::Error {
    match e {
        sl_ml_lib::Error::Usage(m) => UsageError(m).into(),
        e => e.into(),
    }
}

fn inspect(args: &Args) -> anyhow::Result<()> {
    use std::io::Write;
    let info = sl_ml_lib::model::inspect(&args.model)?;
    let mut text = info.to_string();
    match Analyser::load(
        &args.model,
        args.card.as_deref(),
        &args.overrides(),
        &args.output_overrides()?,
        &args.engine(1),
    ) {
        Ok(a) => {
            let p = a.model().prep();
            let size = match p.sizing {
                sl_ml_lib::prep::Sizing::Fixed { width, height } => format!("{width}x{height}"),
                sl_ml_lib::prep::Sizing::Multiple { n, max_side } => format!(
                    "any multiple of {n}{}",
                    max_side.map_or(String::new(), |m| format!(", longer side at most {m}"))
                ),
            };
            text += &format!(
                "sl-ml feeds `{}`: {size}, resize {:?}, {:?} {:?}, value = (pixel × {} - {:?}) / {:?}\n\
                 task: {:?}{}\n",
                p.input,
                p.resize,
                p.channels,
                p.layout,
                p.scale,
                p.mean,
                p.std,
                a.task(),
                if a.task() == Task::Detect {
                    format!(", decoder {:?}", a.decoder())
                } else {
                    String::new()
                }
            )
            .to_lowercase();
        }
        Err(e) => text += &format!("sl-ml cannot feed it as it is: {e}\n"),
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.inspect {
        return inspect(&args);
    }
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    );
    let analyser = Analyser::load(
        &args.model,
        args.card.as_deref(),
        &args.overrides(),
        &args.output_overrides()?,
        &args.engine(threads),
    )
    .map_err(stage_error)?;
    Stage::new(sl_cli::program())
        .limit(args.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy)
        .run_filter(Ml {
            analyser: Some(analyser),
            worker: None,
            live: args.live,
            every: args.every,
            stream: None,
            seen: 0,
            latest: None,
            millis: Vec::new(),
            stats: args.flags.progress.stats,
            threads,
            backend: match args.backend {
                BackendArg::Tract => "tract",
                BackendArg::Ort => "onnxruntime",
            },
        })
}
