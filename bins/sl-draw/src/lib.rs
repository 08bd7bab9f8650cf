//! sl-draw: draw on frames, or make frames, from a Rhai script. On the stage runtime it is a
//! [`Filter`] over an input stream (the reader thread checks each frame's alpha, the writer
//! thread converts formats, so the drawing thread only touches the pixels it draws on), or a
//! [`Source`] with no input (the writer thread un-multiplies and clears each canvas).
//!
//! Why the reading and writing happen on threads of their own: a 1080p RGBA frame is 8 MB;
//! reading it, checking its alpha and writing it out again pushes about 24 MB through a
//! core's caches per frame. Done on the thread that runs the script, that evicts the Rhai
//! interpreter (its AST, function tables and the font) from the 1 MB L2 between calls, and
//! each call starts cold: 0.14 ms per call at 1080p against 0.02 ms at 64x64, measured on the
//! 2-core test machine.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sl_cli::{FrameLimit, Size, StageFlags, parse_duration, parse_fps, usage};
use sl_draw_core::pixels;
use sl_draw_core::{Control, Drawer, FrameContext, FrameTiming, Limits, ScriptError};
use sl_frame::{ColorInfo, PixelFormat, Rational, VideoFrame, convert};
use sl_stage::{Ending, Filter, Flow, Output, Pace, Pool, Source, Stage};
use sl_wire::{Message, StreamInfo, StreamKind, VideoFormat};

/// Draw on every incoming frame with a Rhai script (overlays, HUDs, timecode, boxes from
/// metadata), or, with no stream piped in, make frames from the script alone.
///
/// The script defines `fn draw(canvas, ctx)` and optionally `fn init(ctx)`; see
/// docs/sl-draw.md for the whole API. Script errors never stop the stream: the frame passes
/// through undrawn and the error is shown once (unless --strict). The script is reloaded
/// when its file changes.
#[derive(Parser, Debug)]
#[command(
    name = "sl-draw",
    version,
    after_help = "Examples:\n  \
      sl-test | sl-draw overlay.rhai | sl-info               # draw on every incoming frame\n  \
      sl-draw --size 1280x720 --fps 30 clock.rhai | sl-show  # no input: the script makes frames\n  \
      sl-draw hud.rhai --set score=0 --control /tmp/hud.sock # then: echo score=3 | nc -U /tmp/hud.sock\n  \
      sl-ml detect.onnx | sl-draw examples/boxes.rhai | sl-show"
)]
pub struct Args {
    /// The Rhai script (fonts and images it loads are looked up next to it).
    script: PathBuf,
    /// Make frames of this size instead of drawing on stdin's (WIDTHxHEIGHT, 1080p, 720p...).
    /// Implied, at 1280x720, when nothing is piped into stdin (a terminal or /dev/null).
    #[arg(short, long)]
    size: Option<Size>,
    /// Frame rate of made frames (source mode).
    #[arg(short = 'r', long, default_value = "30", value_parser = parse_fps)]
    fps: Rational,
    /// Output pixel format: rgba, bgra, rgb24, gray8, i420, nv12. Default: the input's
    /// (rgba when making frames).
    #[arg(short, long, value_parser = sl_cli::pixel_format())]
    format: Option<PixelFormat>,
    /// Make frames as fast as the consumer takes them instead of in real time.
    #[arg(long)]
    fast: bool,
    #[command(flatten)]
    limit: FrameLimit,
    /// Set a script variable: --set score=0 --set team="Home" (numbers stay numbers).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = sl_draw_core::vars::parse_assignment)]
    set: Vec<(String, serde_json::Value)>,
    /// Take variable updates (`key=value` or JSON lines) from a Unix socket created at PATH,
    /// or from PATH if it is an existing FIFO.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Make script errors fatal (exit 1) instead of passing frames through undrawn.
    #[arg(long)]
    strict: bool,
    /// Do not reload the script when its file changes.
    #[arg(long)]
    no_reload: bool,
    /// Most Rhai operations one script call may run (0: no limit).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_operations)]
    max_ops: u64,
    /// Longest one script call may take (e.g. 250ms, 1s). The drawing a frame records is
    /// budgeted to fit this too: a frame over budget passes undrawn.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    time_limit: Duration,
    /// Most memory, in MB, one script call may allocate and the script's state may keep
    /// (0: no limit).
    #[arg(long, value_name = "MB", default_value_t = Limits::default().max_memory >> 20)]
    max_memory: usize,
    /// Source id of made frames.
    #[arg(long, default_value = "sl-draw")]
    source_id: String,
    /// Made frames (with --size) are stamped with this clock; incoming frames keep theirs.
    #[command(flatten)]
    clock: sl_clock::ClockArgs,
    /// (--stats adds script and render time per frame.)
    #[command(flatten)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

/// Reports script errors once per episode, and the recovery.
#[derive(Default)]
struct Errors {
    last: Option<String>,
    failing: bool,
    count: u64,
}

impl Errors {
    fn failed(&mut self, e: &ScriptError, strict: bool) -> anyhow::Result<()> {
        self.count += 1;
        if strict {
            anyhow::bail!("{e}");
        }
        let msg = e.to_string();
        if self.last.as_deref() != Some(&msg) {
            log::error!("{msg}\n  (frames pass through undrawn until the script works again)");
            self.last = Some(msg);
        }
        self.failing = true;
        Ok(())
    }

    fn succeeded(&mut self) {
        if self.failing {
            log::warn!("the script draws again");
            self.failing = false;
            self.last = None;
        }
    }
}

#[derive(Default)]
struct Stats {
    frames: u64,
    drawn: u64,
    script: Duration,
    script_max: Duration,
    render: Duration,
    /// Every script time (capped), for the median: on a shared machine the mean is dragged
    /// up by the odd call that was preempted mid-way.
    script_each: Vec<f32>,
}

impl Stats {
    fn add(&mut self, t: FrameTiming) {
        self.drawn += 1;
        self.script += t.script;
        self.script_max = self.script_max.max(t.script);
        self.render += t.render;
        if self.script_each.len() < 1 << 20 {
            self.script_each.push(t.script.as_secs_f32());
        }
    }

    fn print(&self, started: Instant, errors: u64) {
        let secs = started.elapsed().as_secs_f64();
        let per = |d: Duration| d.as_secs_f64() * 1e3 / self.drawn.max(1) as f64;
        let mut each = self.script_each.clone();
        each.sort_by(f32::total_cmp);
        let median = each.get(each.len() / 2).copied().unwrap_or(0.0) as f64 * 1e3;
        sl_cli::say(&format!(
            "sl-draw: {} frames in {:.2} s ({:.1} fps); script {:.3} ms/frame median (mean {:.3}, max {:.3}), render {:.3} ms/frame; {} script errors",
            self.frames,
            secs,
            self.frames as f64 / secs.max(1e-9),
            median,
            per(self.script),
            self.script_max.as_secs_f64() * 1e3,
            per(self.render),
            errors
        ));
    }
}

/// The drawing loop's shared state.
struct Script {
    drawer: Drawer,
    control: Option<Control>,
    errors: Errors,
    stats: Stats,
    strict: bool,
    reload: bool,
    quiet: bool,
}

impl Script {
    /// Before each frame: apply control-channel variables, reload a changed script.
    fn before_frame(&mut self) -> anyhow::Result<()> {
        if let Some(c) = &self.control {
            for (k, v) in c.drain() {
                log::debug!("control: {k} = {v}");
                self.drawer.set_var(&k, &v);
            }
        }
        if self.reload {
            match self.drawer.poll_reload() {
                Some(Ok(())) if !self.quiet => {
                    sl_cli::say(&format!(
                        "sl-draw: reloaded {}",
                        self.drawer.path().display()
                    ));
                }
                Some(Err(e)) => {
                    if self.strict {
                        anyhow::bail!("{e}");
                    }
                    log::error!(
                        "{e}\n  (the reloaded script does not compile: the previous version keeps running)"
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Overlay one frame: run the script first (so a failing script, or one that draws
    /// nothing, never touches or converts the pixels), then rasterise onto the frame.
    fn draw(
        &mut self,
        frame: &mut VideoFrame,
        opaque: Option<bool>,
        fc: &FrameContext<'_>,
    ) -> anyhow::Result<()> {
        self.stats.frames += 1;
        let script = match self.drawer.record(fc) {
            Ok(t) => t,
            Err(e) => return self.errors.failed(&e, self.strict),
        };
        let mut render = Duration::ZERO;
        if self.drawer.has_drawing() {
            match self.drawer.render_frame(frame, opaque) {
                Ok(t) => render = t,
                Err(e) => return self.errors.failed(&e, self.strict),
            }
        }
        self.errors.succeeded();
        self.stats.add(FrameTiming { script, render });
        Ok(())
    }
}

/// Is something (a pipe, file or socket) piped into stdin, rather than a terminal or /dev/null?
fn stdin_has_stream() -> bool {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return false;
    }
    let Ok(fd) = stdin.as_fd().try_clone_to_owned() else {
        return false;
    };
    use std::os::unix::fs::FileTypeExt;
    std::fs::File::from(fd).metadata().is_ok_and(|m| {
        let t = m.file_type();
        t.is_fifo() || t.is_file() || t.is_socket()
    })
}

fn run(mut args: Args) -> anyhow::Result<()> {
    let limits = Limits {
        max_operations: args.max_ops,
        time_limit: args.time_limit,
        max_memory: args.max_memory.saturating_mul(1 << 20),
        ..Limits::default()
    };
    if !args.script.exists() {
        return Err(usage(format!(
            "no script at {}: give the path of a .rhai file (examples/ has some)",
            args.script.display()
        )));
    }
    if !args.script.is_file() {
        return Err(usage(format!(
            "{} is not a regular file (a FIFO, device or folder?): give the path of a .rhai file",
            args.script.display()
        )));
    }
    let mut drawer = Drawer::new(&args.script, limits).map_err(|e| anyhow::anyhow!("{e}"))?;
    for (k, v) in &args.set {
        drawer.set_var(k, v);
    }
    let control = match &args.control {
        Some(p) => Some(
            Control::open(p)
                .with_context(|| format!("opening the control channel {}", p.display()))?,
        ),
        None => None,
    };
    let has_stream = stdin_has_stream();
    let source = args.size.is_some() || !has_stream;
    if args.size.is_some() && has_stream {
        return Err(usage(
            "--size makes frames from nothing, but a stream is piped into stdin: \
             drop --size to draw on the incoming frames",
        ));
    }
    let script = Script {
        drawer,
        control,
        errors: Errors::default(),
        stats: Stats::default(),
        strict: args.strict,
        reload: !args.no_reload,
        quiet: args.flags.common.quiet,
    };
    let stage = Stage::new(sl_cli::program())
        .limit(args.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy);
    let stats = args.flags.progress.stats.then(Instant::now);
    if source {
        let clock = std::mem::take(&mut args.clock);
        run_source(&args, stage.clock(clock)?, script, stats)
    } else {
        if args.clock.clock.is_some() {
            return Err(usage(
                "--clock stamps the frames sl-draw makes (with --size); frames drawn on keep \
                 the stamps their source gave them: drop --clock, or give it to the source",
            ));
        }
        let to = args.format;
        stage
            .on_write(Box::new(move |m, pool: &Pool| match (m, to) {
                (Message::Video { stream, frame }, Some(f)) if f != frame.format() => {
                    let converted = convert::to_format(&frame, f);
                    pool.put(frame.into_data());
                    Message::Video {
                        stream,
                        frame: converted,
                    }
                }
                (m, _) => m,
            }))
            .run_filter(Overlay {
                script,
                format: args.format,
                fps: HashMap::new(),
                warned_packets: false,
                stats,
            })
    }
}

/// Print the stats line with --stats.
fn print_stats(script: &Script, started: Option<Instant>) {
    if let Some(t) = started {
        script.stats.print(t, script.errors.count);
    }
}

/// Source mode: this thread runs the script on blank canvases; the writer thread
/// un-multiplies, converts and writes them, then clears each buffer for reuse.
fn run_source(
    args: &Args,
    stage: Stage,
    script: Script,
    stats: Option<Instant>,
) -> anyhow::Result<()> {
    let Size { width, height } = args.size.unwrap_or(Size {
        width: 1280,
        height: 720,
    });
    let format = args.format.unwrap_or(PixelFormat::Rgba);
    let mut info = StreamInfo::raw_video(format, width, height, args.fps);
    info.source_id = args.source_id.clone();
    stage
        .pace(if args.fast {
            Pace::Off
        } else {
            Pace::Frames(args.fps)
        })
        // each frame starts transparent: layers for a compositor stay see-through
        .clear_recycled(true)
        .on_write(Box::new(move |m, pool: &Pool| match m {
            Message::Video { stream, mut frame } => {
                if !pixels::is_opaque(frame.data()) {
                    pixels::demultiply(frame.data_mut());
                }
                if format == PixelFormat::Rgba {
                    return Message::Video { stream, frame };
                }
                let converted = convert::to_format(&frame, format);
                let mut buf = frame.into_data();
                buf.fill(0);
                pool.put(buf);
                Message::Video {
                    stream,
                    frame: converted,
                }
            }
            m => m,
        }))
        .run_source(Canvas {
            script,
            info,
            width,
            height,
            fps: args.fps,
            n: 0,
            stats,
        })
}

/// Frames made by the script alone.
struct Canvas {
    script: Script,
    info: StreamInfo,
    width: u32,
    height: u32,
    fps: Rational,
    n: u64,
    stats: Option<Instant>,
}

impl Source for Canvas {
    fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
        out.send(Message::Stream {
            stream: 0,
            info: self.info.clone(),
        })
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        let n = self.n;
        let time_base = self.fps.inverse();
        let secs = time_base.ticks_to_secs(n as i64);
        self.script.before_frame()?;
        let (width, height) = (self.width, self.height);
        // a cleared buffer back from the writer, or a new (zeroed) one while frames are queued
        let mut canvas = match out.buffer(width as usize * height as usize * 4) {
            Some(buf) => VideoFrame::from_packed(PixelFormat::Rgba, width, height, buf)?,
            None => VideoFrame::new(PixelFormat::Rgba, width, height)?,
        };
        canvas.info.frame_number = n;
        canvas.info.pts = n as i64;
        canvas.info.time_base = time_base;
        canvas.info.duration = 1;
        canvas.info.source_id.clone_from(&self.info.source_id);
        let info = canvas.info.clone();
        let fc = FrameContext {
            frame_number: n,
            time: secs,
            width,
            height,
            fps: self.fps.as_f64(),
            info: Some(&info),
        };
        // draw straight on the (transparent, premultiplied) buffer
        let mut failure = None;
        let script = &mut self.script;
        script.stats.frames += 1;
        let drawer = &mut script.drawer;
        let r = pixels::draw_premultiplied(&mut canvas, |pm| match drawer.draw(&fc, pm) {
            Ok(t) => Some(t),
            Err(e) => {
                failure = Some(e);
                None
            }
        });
        match (r, failure) {
            (Some(t), _) => {
                script.stats.add(t);
                script.errors.succeeded();
            }
            (None, Some(e)) => script.errors.failed(&e, script.strict)?,
            (None, None) => {}
        }
        out.send(Message::Video {
            stream: 0,
            frame: canvas,
        })?;
        self.n += 1;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        print_stats(&self.script, self.stats);
        ending.into_result()
    }
}

/// Drawing on an input stream.
struct Overlay {
    script: Script,
    format: Option<PixelFormat>,
    fps: HashMap<u16, f64>,
    warned_packets: bool,
    stats: Option<Instant>,
}

impl Filter for Overlay {
    /// For packed RGBA/BGRA frames, whether every pixel is opaque: the drawing needs to know,
    /// and the check reads the whole frame, so the reader thread does it.
    type Note = Option<bool>;

    fn note(m: &Message) -> Option<bool> {
        match m {
            Message::Video { frame, .. }
                if matches!(frame.format(), PixelFormat::Rgba | PixelFormat::Bgra)
                    && frame.is_packed() =>
            {
                Some(pixels::is_opaque(frame.data()))
            }
            _ => None,
        }
    }

    fn message(
        &mut self,
        _input: usize,
        m: Message,
        opaque: Option<bool>,
        out: &mut Output,
    ) -> anyhow::Result<Flow> {
        let m = match m {
            Message::Stream { stream, mut info } => {
                if let StreamKind::Video(v) = &mut info.kind
                    && let VideoFormat::Raw(_) = v.format
                {
                    self.fps.insert(stream, v.fps.as_f64());
                    if let Some(f) = self.format {
                        v.format = VideoFormat::Raw(f);
                        v.color = ColorInfo::default_for(f);
                    }
                }
                Message::Stream { stream, info }
            }
            Message::Video { stream, mut frame } => {
                self.script.before_frame()?;
                let info = frame.info.clone();
                let rate = self
                    .fps
                    .get(&stream)
                    .copied()
                    .filter(|f| *f > 0.0)
                    .unwrap_or_else(|| {
                        if info.duration > 0 {
                            1.0 / info.time_base.ticks_to_secs(info.duration)
                        } else {
                            0.0
                        }
                    });
                let fc = FrameContext {
                    frame_number: info.frame_number,
                    time: info.pts_secs(),
                    width: frame.width(),
                    height: frame.height(),
                    fps: rate,
                    info: Some(&info),
                };
                self.script.draw(&mut frame, opaque, &fc)?;
                Message::Video { stream, frame }
            }
            m @ Message::Packet { .. } => {
                if !self.warned_packets {
                    log::warn!(
                        "compressed video passes through undrawn: decode it first (e.g. with sl-file)"
                    );
                    self.warned_packets = true;
                }
                m
            }
            other => other,
        };
        out.send(m)?;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending, _out: &mut Output) -> anyhow::Result<()> {
        print_stats(&self.script, self.stats);
        ending.into_result()
    }
}
