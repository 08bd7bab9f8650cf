//! sl-composite: several streams into one, as layers. A [`Source`] on the stage runtime:
//! the output runs on its own clock at the output rate (`Pace::Frames`), and each input is
//! read on a thread of its own through the runtime's policy channel (`latest`), so the
//! output never waits for an input: a layer whose input has not started is absent, a
//! stalled one shows its last frame (then, after `--stale`, is hidden or kept), an ended one
//! is removed or frozen. The output ends with the main (first) input, or on Ctrl-C.
//!
//! With `--sync pts` or `--sync ptp` the output follows the main input's frames instead, and
//! every other layer shows its frame of the same time (by timestamp or PTP time), waiting
//! for it at most `--latency`: for recordings of several cameras.
//!
//! Pixels: each layer is converted, cropped and scaled once per input frame or geometry
//! change and cached (`Cache`); each output frame only blends (`sl-blend`). An I420 or NV12
//! canvas takes RGBA layers straight into its Y, U and V planes.

mod compose;
mod control;
mod input;
mod layout;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use sl_blend::Rect;
use sl_blend::yuv::YuvLayer;
use sl_cli::{Common, FrameLimit, Progress, Size, parse_duration, parse_fps, usage};
use sl_frame::{ColorInfo, PixelFormat, Rational, VideoFrame, convert};
use sl_stage::policy::{Bell, Policy, TryRecv};
use sl_stage::{Ending, Flow, Output, Pace, Pool, Source, Stage};
use sl_wire::{Message, StreamInfo, VideoFormat};

use control::{Batch, Control};
use input::{Feed, InputReader, Origin, Prep};
use layout::{LayoutFile, OnEnd, Patch, Placement, Props, parse_layer_arg, place};

/// Blend several streams into one, as layers: picture-in-picture, overlays, multi-camera
/// mixes. Each input is NAME=PATH (`-` is stdin; FIFOs, files and `<(...)` work); the first
/// is the main input: the output ends with it, its audio passes through, and by default the
/// output takes its size, format and rate. The output runs on its own clock and never waits
/// for an input. See docs/sl-composite.md.
#[derive(Parser, Debug)]
#[command(
    name = "sl-composite",
    version,
    after_help = "Layer properties (--layer NAME:KEY=VALUE,..., layout files, `set` commands):\n  \
      z, x, y, w, h (pixels or % of the canvas; w or h alone keeps the aspect), crop=WxH+X+Y,\n  \
      opacity=0..1, visible=true|false, anchor=tl|t|tr|l|c|r|bl|b|br, fit=contain|cover|stretch,\n  \
      blend=over|add|multiply, stale=keep|hide, end=freeze|remove\n\n\
      Control commands (--control PATH; one batch per line, `;` between commands,\n  \
      or begin ... commit): set NAME:KEY=VALUE,... [over 500ms] | show NAME | hide NAME |\n  \
      scene NAME [over 1s] | at 12.5s (the batch applies at that stream time)\n\n\
      Examples:\n  \
      sl-test | sl-composite main=- cam=<(sl-test -p box) --layer cam:x=70%,y=5%,w=25% | sl-show\n  \
      sl-file talk.mp4 | sl-composite main=- hud=<(sl-draw -s 720p hud.rhai) | sl-file -o mix.mp4\n  \
      sl-test | sl-composite main=- cam=<(sl-test -p box) --layout examples/pip.toml --scene pip\n  \
      sl-test | sl-composite main=- cam=<(sl-test -p box) --control mix.sock\n  \
      (then: echo 'set cam:opacity=0 over 500ms' | nc -U mix.sock)"
)]
pub struct Args {
    /// Inputs as NAME=PATH (a bare PATH is named in0, in1, ...); the first is the main one.
    #[arg(required = true, value_name = "NAME=PATH")]
    inputs: Vec<String>,
    /// Output size, WIDTHxHEIGHT or 1080p, 720p... Default: the main input's.
    #[arg(short, long)]
    size: Option<Size>,
    /// Output frame rate. Default: the main input's (30 if it has none).
    #[arg(short = 'r', long, value_parser = parse_fps)]
    fps: Option<Rational>,
    /// Output pixel format: rgba, bgra, rgb24, gray8, i420, nv12. Default: the main input's.
    /// i420 and nv12 blend RGBA layers straight into their planes.
    #[arg(short, long, value_parser = sl_cli::pixel_format())]
    format: Option<PixelFormat>,
    /// Colour under every layer (opaque): #rrggbb or a name.
    #[arg(long, default_value = "black", value_parser = sl_pattern::parse_colour)]
    background: [u8; 4],
    /// Layer properties: NAME:KEY=VALUE,... (e.g. cam:x=1440,y=60,w=400,opacity=0.8,z=2).
    /// Repeatable; applied over the layout file's [layers].
    #[arg(long = "layer", value_name = "NAME:PROPS")]
    layers: Vec<String>,
    /// A layout file (TOML, or JSON if it ends in .json): [layers.NAME] and [scenes.SCENE.NAME].
    #[arg(long, value_name = "FILE")]
    layout: Option<PathBuf>,
    /// The scene to start in (from --layout).
    #[arg(long, value_name = "NAME", requires = "layout")]
    scene: Option<String>,
    /// Take live commands from a Unix socket created at PATH (it answers each batch), or
    /// from PATH if it is an existing FIFO.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// An input silent for this long (in stream time) is stale: layers with stale=hide are
    /// hidden until it sends again.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    stale: Duration,
    /// latest: each layer shows its newest frame (live). pts / ptp: the output follows the
    /// main input's frames, each layer shows its frame of the same timestamp / PTP time.
    #[arg(long, value_enum, default_value_t = Sync::Latest)]
    sync: Sync,
    /// With --sync pts|ptp: how long (wall time) to wait for each layer's frame of the main
    /// frame's time (frames less than half an output frame apart count as the same time).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    latency: Duration,
    /// Threads that blend each output frame, each a horizontal band of it (0: one per core,
    /// up to 4). The result is the same, bit for bit, with any number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    #[command(flatten)]
    limit: FrameLimit,
    #[command(flatten)]
    progress: Progress,
    #[command(flatten)]
    common: Common,
}

sl_cli::stage_main!(Args, run);

/// How layers are matched in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Sync {
    Latest,
    Pts,
    Ptp,
}

/// `NAME=PATH` or a bare path.
fn parse_input(i: usize, s: &str) -> anyhow::Result<(String, Origin)> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let (name, path) = match s.split_once('=') {
        Some((n, p)) if valid(n) => (n.to_string(), p.to_string()),
        _ => (format!("in{i}"), s.to_string()),
    };
    if path.is_empty() {
        return Err(usage(format!(
            "input `{s}` has no path: give NAME=PATH, e.g. cam=/tmp/cam.fifo, or NAME=- for stdin"
        )));
    }
    let origin = if path == "-" {
        Origin::Stdin
    } else {
        let p = PathBuf::from(&path);
        if std::fs::metadata(&p).is_err() {
            return Err(usage(format!(
                "input {name}: no such file {path}: give a stream file, a FIFO (mkfifo), `-` for stdin, or <(command)"
            )));
        }
        Origin::Path(p)
    };
    Ok((name, origin))
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut names = Vec::new();
    let mut origins = Vec::new();
    for (i, s) in args.inputs.iter().enumerate() {
        let (name, origin) = parse_input(i, s)?;
        if names.contains(&name) {
            return Err(usage(format!(
                "two inputs are named {name}: give each NAME=PATH a name of its own"
            )));
        }
        if matches!(origin, Origin::Stdin) && origins.iter().any(|o| matches!(o, Origin::Stdin)) {
            return Err(usage("stdin (`-`) can be only one input"));
        }
        names.push(name);
        origins.push(origin);
    }
    let file = match &args.layout {
        Some(p) => LayoutFile::load(p)?,
        None => LayoutFile::default(),
    };
    file.check_names(&names).map_err(|e| {
        usage(format!(
            "layout file {}: {e}",
            args.layout
                .as_deref()
                .unwrap_or_else(|| "".as_ref())
                .display()
        ))
    })?;
    // base: defaults, then the file's [layers], then --layer flags
    let mut base: Vec<Patch> = names
        .iter()
        .map(|n| file.layers.get(n).cloned().unwrap_or_default())
        .collect();
    for l in &args.layers {
        let (name, patch) = parse_layer_arg(l).map_err(|e| usage(format!("--layer {l}: {e}")))?;
        let i = names.iter().position(|n| *n == name).ok_or_else(|| {
            usage(format!(
                "--layer {l}: no input is named {name} (the inputs are: {})",
                names.join(", ")
            ))
        })?;
        base[i].then(&patch);
    }
    let scene = args.scene.clone().or(file.scene.clone());
    if let Some(s) = &scene
        && !file.scenes.contains_key(s)
    {
        return Err(usage(format!(
            "--scene {s}: the layout has no such scene (it has: {})",
            file.scenes.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let control = match &args.control {
        Some(p) => Some(
            Control::open(p)
                .with_context(|| format!("opening the control channel {}", p.display()))?,
        ),
        None => None,
    };
    let bell = Bell::new();
    let policy = match args.sync {
        Sync::Latest => Policy::Latest,
        Sync::Pts | Sync::Ptp => Policy::Block,
    };
    let layers = names
        .iter()
        .zip(origins)
        .enumerate()
        .map(|(i, (name, origin))| {
            Layer::new(
                name.clone(),
                i,
                input::spawn(name, origin, policy, Arc::clone(&bell)),
            )
        })
        .collect();
    let mut comp = Compositor {
        layers,
        base,
        scenes: file.scenes,
        scene,
        control,
        pending: Vec::new(),
        bell,
        sync: args.sync,
        latency: args.latency,
        stale_secs: args.stale.as_secs_f64(),
        want_size: args.size,
        want_fps: args.fps,
        want_format: args.format,
        background: [args.background[0], args.background[1], args.background[2]],
        canvas: CanvasSpec::default(),
        early: Vec::new(),
        streams: HashMap::new(),
        n: 0,
        now: 0.0,
        main_frame_new: false,
        out_pts: None,
        threads: match args.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            n => n.min(64),
        },
    };
    // the output's size, format and rate, from the flags or the main input
    comp.describe()?;
    let spec = comp.canvas;
    let stage = Stage::new(sl_cli::program())
        .limit(args.limit)
        .progress(args.progress, false)
        .pace(match args.sync {
            Sync::Latest => Pace::Frames(spec.fps),
            _ => Pace::Off,
        });
    let out_format = spec.out_format;
    let stage = if out_format != spec.format {
        // an RGB canvas written as bgra/rgb24/gray8: converted on the writer thread
        stage.on_write(Box::new(move |m, pool: &Pool| match m {
            Message::Video { stream, frame } if frame.format() != out_format => {
                let converted = convert::to_format(&frame, out_format);
                pool.put(frame.into_data());
                Message::Video {
                    stream,
                    frame: converted,
                }
            }
            m => m,
        }))
    } else {
        stage.write_on_thread(true)
    };
    stage.run_source(comp)
}

/// The canvas: what is composed, and what is written.
#[derive(Clone, Copy, Debug)]
struct CanvasSpec {
    width: u32,
    height: u32,
    fps: Rational,
    /// Composed in: rgba, i420 or nv12.
    format: PixelFormat,
    /// Written as.
    out_format: PixelFormat,
    color: ColorInfo,
}

impl Default for CanvasSpec {
    fn default() -> Self {
        CanvasSpec {
            width: 1280,
            height: 720,
            fps: Rational::new(30, 1),
            format: PixelFormat::Rgba,
            out_format: PixelFormat::Rgba,
            color: ColorInfo::BT601_LIMITED,
        }
    }
}

/// A layer's pixels, ready to blend, for one input frame and geometry.
#[derive(Default)]
struct Cache {
    /// (frame seq, source rect, size, for a YUV `over`)
    key: Option<(u64, Rect, u32, u32, bool)>,
    /// The input frame as RGBA, when it is not RGBA already (per frame seq).
    rgba_of: Option<u64>,
    rgba: Vec<u8>,
    opaque_of: Option<u64>,
    opaque: bool,
    /// Cropped and scaled; empty when the frame's own RGBA pixels are used as they are.
    scaled: Vec<u8>,
    use_frame: bool,
    /// The layer as YUV planes for a YUV canvas (`yuv_ready`): made for a YUV input, or for
    /// an RGBA one shown unchanged on a second output frame (a still overlay converts once
    /// and then only mixes); a layer new each frame is blended straight from its RGBA.
    yuv: YuvLayer,
    yuv_ready: bool,
}

struct Anim {
    from: Placement,
    from_opacity: f64,
    start: u64,
    frames: u64,
}

struct Layer {
    name: String,
    input: InputReader,
    /// The picture's stream id (the first raw video stream described).
    stream: Option<u16>,
    frame: Option<VideoFrame>,
    seq: u64,
    /// Stream time (output) when the current frame arrived.
    arrived: f64,
    ended: bool,
    props: Props,
    anim: Option<Anim>,
    cache: Cache,
    warned_packets: bool,
    /// Under pts/ptp sync: a frame read ahead, not yet due.
    ahead: Option<(VideoFrame, Prep)>,
    /// What the reader thread prepared for the current frame.
    prep: Prep,
}

impl Layer {
    fn new(name: String, index: usize, input: InputReader) -> Layer {
        Layer {
            name,
            input,
            stream: None,
            frame: None,
            seq: 0,
            arrived: 0.0,
            ended: false,
            props: Props::defaults(index),
            anim: None,
            cache: Cache::default(),
            warned_packets: false,
            ahead: None,
            prep: Prep::default(),
        }
    }

    fn show(&mut self, (frame, prep): (VideoFrame, Prep), now: f64) {
        self.prep = prep;
        if let Some(old) = self.frame.replace(frame) {
            self.input.pool.put(old.into_data());
        }
        self.seq += 1;
        self.arrived = now;
    }

    /// Where the layer is and how opaque, at output frame `n` (animations included).
    fn placement(&self, n: u64, canvas: (u32, u32)) -> Option<(Placement, f64)> {
        let f = self.frame.as_ref()?;
        let target = place(&self.props, (f.width(), f.height()), canvas);
        match &self.anim {
            Some(a) if n < a.start + a.frames => {
                let t = (n - a.start) as f64 / a.frames as f64;
                let o = a.from_opacity + (self.props.opacity - a.from_opacity) * t;
                Some((Placement::lerp(&a.from, &target, t), o))
            }
            _ => Some((target, self.props.opacity)),
        }
    }

    /// New properties, animated from where the layer is now over `frames` output frames.
    fn set(&mut self, props: Props, frames: u64, n: u64, canvas: (u32, u32)) {
        self.anim = None;
        if frames > 0
            && let Some((from, mut from_opacity)) = self.placement(n, canvas)
        {
            if !self.props.visible && props.visible {
                from_opacity = 0.0;
            }
            self.anim = Some(Anim {
                from,
                from_opacity,
                start: n,
                frames,
            });
        }
        self.props = props;
    }
}

/// One parsed control command.
enum Cmd {
    Set {
        layer: usize,
        patch: Patch,
        over: Option<Duration>,
    },
    Scene {
        name: String,
        over: Option<Duration>,
    },
    At(Duration),
}

struct Scheduled {
    at: f64,
    cmds: Vec<Cmd>,
    reply: Option<std::sync::mpsc::Sender<String>>,
}

struct Compositor {
    layers: Vec<Layer>,
    base: Vec<Patch>,
    scenes: BTreeMap<String, BTreeMap<String, Patch>>,
    scene: Option<String>,
    control: Option<Control>,
    pending: Vec<Scheduled>,
    bell: Arc<Bell>,
    sync: Sync,
    latency: Duration,
    stale_secs: f64,
    want_size: Option<Size>,
    want_fps: Option<Rational>,
    want_format: Option<PixelFormat>,
    background: [u8; 3],
    canvas: CanvasSpec,
    /// The main input's messages read while waiting for its description.
    early: Vec<Feed>,
    /// The main input's other streams (audio, data): their ids on the output.
    streams: HashMap<u16, u16>,
    n: u64,
    /// Stream time of the frame being made.
    now: f64,
    main_frame_new: bool,
    /// Under pts/ptp sync: the output frame's timestamp (the main frame's, in 1/fps).
    out_pts: Option<i64>,
    /// Bands each output frame is blended in, at the same time.
    threads: usize,
}

impl Compositor {
    /// Settle the canvas: from the flags, or the main input's video description (waited for).
    fn describe(&mut self) -> anyhow::Result<()> {
        let mut main_video = None;
        if self.want_size.is_none() || self.want_fps.is_none() || self.want_format.is_none() {
            loop {
                if sl_cli::interrupted() {
                    break;
                }
                let item = match self.layers[0]
                    .input
                    .rx
                    .recv_timeout(Duration::from_millis(100))
                {
                    Err(()) => continue,
                    Ok(None) => anyhow::bail!("the main input's reader stopped"),
                    Ok(Some(i)) => i,
                };
                match &item {
                    Feed::Msg(Message::Stream { info, .. }) => {
                        if let Some(v) = info.video() {
                            main_video = Some(v.clone());
                            self.early.push(item);
                            break;
                        }
                    }
                    Feed::End => anyhow::bail!(
                        "the main input ({}) ended before describing a video stream: give -s, -r and -f, or a main input with video",
                        self.layers[0].name
                    ),
                    Feed::Failed(e) => anyhow::bail!("{e}"),
                    _ => {}
                }
                self.early.push(item);
            }
        }
        let (mw, mh, mfps, mfmt) = match &main_video {
            Some(v) => (
                v.width,
                v.height,
                v.fps,
                match v.format {
                    VideoFormat::Raw(f) => f,
                    _ => PixelFormat::I420,
                },
            ),
            None => (1280, 720, Rational::new(30, 1), PixelFormat::Rgba),
        };
        let size = self.want_size.unwrap_or(Size {
            width: mw,
            height: mh,
        });
        let fps = self
            .want_fps
            .unwrap_or(if mfps.is_valid() && mfps.as_f64() <= 1000.0 {
                mfps
            } else {
                Rational::new(30, 1)
            });
        let out_format = self.want_format.unwrap_or(mfmt);
        let format = match out_format {
            PixelFormat::I420 | PixelFormat::Nv12 => out_format,
            _ => PixelFormat::Rgba,
        };
        self.canvas = CanvasSpec {
            width: size.width,
            height: size.height,
            fps,
            format,
            out_format,
            color: ColorInfo::default_for(format),
        };
        // the starting scene
        if let Some(s) = self.scene.clone() {
            self.apply(&[Cmd::Scene {
                name: s,
                over: None,
            }]);
        } else {
            for i in 0..self.layers.len() {
                let mut p = Props::defaults(i);
                p.apply(&self.base[i]);
                self.layers[i].props = p;
            }
        }
        Ok(())
    }

    fn dims(&self) -> (u32, u32) {
        (self.canvas.width, self.canvas.height)
    }

    fn frames_of(&self, d: Duration) -> u64 {
        (d.as_secs_f64() * self.canvas.fps.as_f64()).round() as u64
    }

    /// Apply checked commands now (between two frames).
    fn apply(&mut self, cmds: &[Cmd]) {
        let (n, dims) = (self.n, self.dims());
        for c in cmds {
            match c {
                Cmd::Set { layer, patch, over } => {
                    let frames = over.map_or(0, |d| self.frames_of(d));
                    let mut p = self.layers[*layer].props.clone();
                    p.apply(patch);
                    self.layers[*layer].set(p, frames, n, dims);
                }
                Cmd::Scene { name, over } => {
                    let frames = over.map_or(0, |d| self.frames_of(d));
                    let scene = self.scenes.get(name);
                    for i in 0..self.layers.len() {
                        let mut p = Props::defaults(i);
                        p.apply(&self.base[i]);
                        if let Some(patch) = scene.and_then(|s| s.get(&self.layers[i].name)) {
                            p.apply(patch);
                        }
                        self.layers[i].set(p, frames, n, dims);
                    }
                    self.scene = Some(name.clone());
                }
                Cmd::At(_) => {}
            }
        }
    }

    /// Parse and check one batch: every line, every command, or an error naming the first bad one.
    fn parse_batch(&self, lines: &[String]) -> Result<(Option<f64>, Vec<Cmd>), String> {
        let mut cmds = Vec::new();
        let mut at = None;
        for line in lines {
            for text in line.split(';').map(str::trim).filter(|t| !t.is_empty()) {
                let c = self
                    .parse_command(text)
                    .map_err(|e| format!("`{text}`: {e}"))?;
                if let Cmd::At(d) = &c {
                    at = Some(d.as_secs_f64());
                }
                cmds.push(c);
            }
        }
        Ok((at, cmds))
    }

    fn layer_index(&self, name: &str) -> Result<usize, String> {
        self.layers
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| {
                format!(
                    "no layer is named {name} (the layers are: {})",
                    self.layers
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    fn parse_command(&self, text: &str) -> Result<Cmd, String> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        // a trailing `over DURATION` animates
        let mut over = None;
        if words.len() >= 2 && words[words.len() - 2] == "over" {
            over = Some(parse_duration(words[words.len() - 1])?);
            words.truncate(words.len() - 2);
        }
        let verb = words.first().copied().unwrap_or("");
        let args = &words[1.min(words.len())..];
        match (verb, args) {
            ("set", [target, rest @ ..]) => {
                let (name, list) = match target.split_once(':') {
                    Some((n, l)) => (n.to_string(), format!("{l}{}", rest.join(""))),
                    None => (target.to_string(), rest.join("")),
                };
                let layer = self.layer_index(&name)?;
                let patch = Patch::parse_list(&list)?;
                if patch == Patch::default() {
                    return Err(format!("nothing to set: give KEY=VALUE,... ({})", layout::KEYS));
                }
                Ok(Cmd::Set { layer, patch, over })
            }
            ("show" | "hide", [name]) => Ok(Cmd::Set {
                layer: self.layer_index(name)?,
                patch: Patch { visible: Some(verb == "show"), ..Patch::default() },
                over,
            }),
            ("scene", [name]) => {
                if !self.scenes.contains_key(*name) {
                    return Err(format!(
                        "no scene is named {name} (the scenes are: {})",
                        if self.scenes.is_empty() {
                            "none: give --layout".to_string()
                        } else {
                            self.scenes.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ));
                }
                Ok(Cmd::Scene { name: name.to_string(), over })
            }
            ("at", [t]) if over.is_none() => Ok(Cmd::At(parse_duration(t)?)),
            _ => Err(
                "not a command: use set NAME:KEY=VALUE,... [over D], show NAME, hide NAME, scene NAME [over D], at TIME"
                    .into(),
            ),
        }
    }

    /// Take control batches and apply those due, before frame `self.n`.
    fn control(&mut self) {
        let batches: Vec<Batch> = match &self.control {
            Some(c) => c.drain().collect(),
            None => Vec::new(),
        };
        for b in batches {
            match self.parse_batch(&b.lines) {
                Ok((at, cmds)) => self.pending.push(Scheduled {
                    at: at.unwrap_or(f64::NEG_INFINITY),
                    cmds,
                    reply: b.reply,
                }),
                Err(e) => {
                    let msg = format!("error: {e}: nothing in this batch was applied");
                    log::error!("control: {msg}");
                    if let Some(r) = b.reply {
                        let _ = r.send(msg);
                    }
                }
            }
        }
        let now = self.now + 1e-9;
        let due: Vec<Scheduled> = {
            let (due, later) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|s| s.at <= now);
            self.pending = later;
            due
        };
        for s in due {
            self.apply(&s.cmds);
            if let Some(r) = s.reply {
                let _ = r.send(format!("ok frame {}", self.n));
            }
        }
    }

    /// Handle one message from input `i`; returns false when the main input ended.
    fn take(&mut self, i: usize, feed: Feed, out: &mut Output) -> anyhow::Result<bool> {
        let now = self.now;
        let layer = &mut self.layers[i];
        match feed {
            Feed::Msg(Message::Stream { stream, info }) => {
                if let Some(v) = info.video() {
                    if layer.stream.is_none() && matches!(v.format, VideoFormat::Raw(_)) {
                        layer.stream = Some(stream);
                    }
                } else if i == 0 {
                    let next = self.streams.len() as u16 + 1;
                    let id = *self.streams.entry(stream).or_insert(next);
                    out.send(Message::Stream { stream: id, info })?;
                }
            }
            Feed::Video {
                stream,
                frame,
                prep,
            } => {
                if layer.stream.is_none() {
                    layer.stream = Some(stream);
                }
                if layer.stream == Some(stream) {
                    let frame = (frame, prep);
                    if self.sync == Sync::Latest {
                        layer.show(frame, now);
                        if i == 0 {
                            self.main_frame_new = true;
                        }
                    } else if layer.ahead.is_none() {
                        layer.ahead = Some(frame);
                    } else {
                        unreachable!("a frame is only read when none is ahead");
                    }
                }
            }
            Feed::Msg(Message::Packet { .. }) => {
                if !layer.warned_packets {
                    log::warn!(
                        "input {}: compressed video is not shown: decode it first (e.g. with sl-file)",
                        layer.name
                    );
                    layer.warned_packets = true;
                }
            }
            Feed::Msg(m @ (Message::Audio { .. } | Message::Data { .. })) if i == 0 => {
                let mut m = m;
                let id = match &mut m {
                    Message::Audio { stream, .. } | Message::Data { stream, .. } => stream,
                    _ => unreachable!("matched above"),
                };
                if let Some(new) = self.streams.get(id) {
                    *id = *new;
                    out.send(m)?;
                }
            }
            Feed::Msg(Message::End { stream }) if i == 0 => {
                if let Some(new) = self.streams.get(&stream) {
                    out.send(Message::End { stream: *new })?;
                }
            }
            Feed::Msg(_) => {}
            Feed::End => {
                layer.ended = true;
                if i == 0 {
                    return Ok(false);
                }
                log::info!("input {} ended", layer.name);
            }
            Feed::Failed(e) => {
                layer.ended = true;
                if i == 0 {
                    anyhow::bail!("{e}");
                }
                log::error!(
                    "{e} (the layer is {} from now on)",
                    match layer.props.end {
                        OnEnd::Freeze => "frozen",
                        OnEnd::Remove => "removed",
                    }
                );
            }
        }
        Ok(true)
    }

    /// Under `latest`: take everything every input has sent. False once the main input ended.
    fn drain_all(&mut self, out: &mut Output) -> anyhow::Result<bool> {
        for f in std::mem::take(&mut self.early) {
            if !self.take(0, f, out)? {
                return Ok(false);
            }
        }
        for i in 0..self.layers.len() {
            if self.layers[i].ended {
                continue;
            }
            loop {
                match self.layers[i].input.rx.try_recv() {
                    TryRecv::Item(f) => {
                        if !self.take(i, f, out)? {
                            return Ok(false);
                        }
                    }
                    TryRecv::Empty => break,
                    TryRecv::Closed => {
                        self.layers[i].ended = true;
                        if i == 0 {
                            return Ok(false);
                        }
                        break;
                    }
                }
            }
        }
        Ok(true)
    }

    /// A frame's time under `--sync pts|ptp`, in seconds.
    fn key(&self, f: &VideoFrame) -> Option<f64> {
        match self.sync {
            Sync::Ptp => f.info.ptp_time_ns.map(|t| t as f64 * 1e-9),
            _ => Some(f.info.pts_secs()),
        }
    }

    /// Read input `i` until a frame is ahead, it ends, or (when `deadline` passes) nothing came.
    fn read_ahead(
        &mut self,
        i: usize,
        deadline: Option<Instant>,
        out: &mut Output,
    ) -> anyhow::Result<bool> {
        while self.layers[i].ahead.is_none() && !self.layers[i].ended {
            if sl_cli::interrupted() {
                return Ok(true);
            }
            let seen = self.bell.count();
            match self.layers[i].input.rx.try_recv() {
                TryRecv::Item(f) => {
                    if !self.take(i, f, out)? {
                        return Ok(false);
                    }
                }
                TryRecv::Closed => {
                    self.layers[i].ended = true;
                    return Ok(i != 0);
                }
                TryRecv::Empty => {
                    let wait = match deadline {
                        None => Duration::from_millis(100),
                        Some(d) => {
                            let now = Instant::now();
                            if now >= d {
                                return Ok(true);
                            }
                            (d - now).min(Duration::from_millis(100))
                        }
                    };
                    self.bell.wait(seen, wait);
                }
            }
        }
        Ok(true)
    }

    /// Under `pts`/`ptp`: wait for the main input's next frame, then bring every other layer
    /// to its frame of that time. False once the main input ended.
    fn step_synced(&mut self, out: &mut Output) -> anyhow::Result<bool> {
        for f in std::mem::take(&mut self.early) {
            if !self.take(0, f, out)? {
                return Ok(false);
            }
        }
        if !self.read_ahead(0, None, out)? {
            return Ok(false);
        }
        let Some(main) = self.layers[0].ahead.take() else {
            return Ok(!sl_cli::interrupted() && !self.layers[0].ended);
        };
        let Some(t) = self.key(&main.0) else {
            anyhow::bail!(
                "--sync ptp: the main input's frame {} has no PTP time: stamp it with `--clock ptp` at its source, or use --sync pts",
                main.0.info.frame_number
            );
        };
        self.now = t;
        let info = &main.0.info;
        let pts = info.time_base.rescale(info.pts, self.canvas.fps.inverse());
        self.layers[0].show(main, t);
        self.main_frame_new = true;
        self.out_pts = Some(pts);
        // two frames less than half an output frame apart are of the same time
        let half = 0.5 / self.canvas.fps.as_f64();
        let deadline = Instant::now() + self.latency;
        for i in 1..self.layers.len() {
            loop {
                if !self.read_ahead(i, Some(deadline), out)? {
                    return Ok(false);
                }
                let Some(f) = self.layers[i].ahead.as_ref() else {
                    break;
                };
                let k = self.key(&f.0);
                match k {
                    // due (or without a time under ptp: shown as it comes)
                    Some(k) if k > t + half => break,
                    _ => {
                        let f = self.layers[i].ahead.take().expect("checked");
                        self.layers[i].show(f, t);
                    }
                }
            }
        }
        Ok(true)
    }
}

impl Source for Compositor {
    fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
        let c = self.canvas;
        let mut info = StreamInfo::raw_video(c.out_format, c.width, c.height, c.fps);
        info.source_id = "sl-composite".into();
        out.send(Message::Stream { stream: 0, info })
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        self.main_frame_new = false;
        let go_on = match self.sync {
            Sync::Latest => {
                self.now = self.canvas.fps.inverse().ticks_to_secs(self.n as i64);
                self.drain_all(out)?
            }
            _ => self.step_synced(out)?,
        };
        if !go_on || sl_cli::interrupted() {
            return Ok(Flow::Stop);
        }
        self.control();
        let frame = self.compose(
            out.buffer(
                self.canvas
                    .format
                    .frame_size(self.canvas.width, self.canvas.height),
            ),
        )?;
        out.send(Message::Video { stream: 0, frame })?;
        self.n += 1;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        ending.into_result()
    }
}
