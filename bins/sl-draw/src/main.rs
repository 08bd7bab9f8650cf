//! sl-draw: draw on frames, or make frames, from a Rhai script.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sl_cli::{Common, FrameLimit, Meter, Pacer, Size, parse_duration, parse_fps, usage};

mod io;
use io::WriterThread;

/// mimalloc instead of glibc's malloc: the script call allocates many small objects (Rhai's
/// maps, strings and caches, recorded paths), and between frames other work evicts the
/// allocator's bookkeeping from the caches. Measured on the 2-core test machine, 1080p HUD
/// in `sl-test --fast | sl-draw hud.rhai | sl-info`: the Rhai call from 0.12-0.13 ms to
/// about 0.10 ms (median), and 64x64 frames at 250 fps from 0.09 to 0.05 ms.
///
/// Wrapped in a per-thread allocation counter, which bounds a script's memory (--max-memory).
#[global_allocator]
static ALLOC: sl_draw_core::memory::Counting<mimalloc::MiMalloc> =
    sl_draw_core::memory::Counting(mimalloc::MiMalloc);
use sl_draw_core::pixels;
use sl_draw_core::{Control, Drawer, FrameContext, FrameTiming, Limits, ScriptError};
use sl_frame::{ColorInfo, PixelFormat, Rational, VideoFrame, convert, now_ns};
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
struct Args {
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
    #[arg(short, long)]
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
    /// Show a live progress line on stderr.
    #[arg(long)]
    progress: bool,
    /// Print a stats line on stderr at the end: fps, script and render time per frame.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

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
        eprintln!(
            "sl-draw: {} frames in {:.2} s ({:.1} fps); script {:.3} ms/frame median (mean {:.3}, max {:.3}), render {:.3} ms/frame; {} script errors",
            self.frames,
            secs,
            self.frames as f64 / secs.max(1e-9),
            median,
            per(self.script),
            self.script_max.as_secs_f64() * 1e3,
            per(self.render),
            errors
        );
    }
}

/// The drawing loop's shared state.
struct Stage {
    drawer: Drawer,
    control: Option<Control>,
    errors: Errors,
    stats: Stats,
    strict: bool,
    reload: bool,
    quiet: bool,
}

impl Stage {
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
                    eprintln!("sl-draw: reloaded {}", self.drawer.path().display());
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
            let drawer = &mut self.drawer;
            match pixels::draw_on(frame, opaque, |pm| Some(drawer.render(pm))) {
                Some(Ok(t)) => render = t,
                Some(Err(e)) => return self.errors.failed(&e, self.strict),
                None => {}
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

fn run(args: Args) -> anyhow::Result<()> {
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
    let mut stage = Stage {
        drawer,
        control,
        errors: Errors::default(),
        stats: Stats::default(),
        strict: args.strict,
        reload: !args.no_reload,
        quiet: args.common.quiet,
    };
    let started = Instant::now();
    let result = if source {
        run_source(&args, &mut stage)
    } else {
        run_overlay(&args, &mut stage)
    };
    if args.stats {
        stage.stats.print(started, stage.errors.count);
    }
    result
}

/// Source mode: this thread runs the script on blank canvases; a writer thread un-multiplies,
/// converts and writes them, then clears each buffer for reuse (see `io`).
fn run_source(args: &Args, stage: &mut Stage) -> anyhow::Result<()> {
    let Size { width, height } = args.size.unwrap_or(Size {
        width: 1280,
        height: 720,
    });
    let format = args.format.unwrap_or(PixelFormat::Rgba);
    let mut out = sl_cli::frame_output()?;
    let mut info = StreamInfo::raw_video(format, width, height, args.fps);
    info.source_id = args.source_id.clone();
    out.write_stream_info(0, &info)?;
    let (back_tx, back) = sync_channel::<Vec<u8>>(4);
    let writer = WriterThread::start(
        out,
        Meter::new("sl-draw", args.progress),
        back_tx,
        Box::new(move |out, stream, mut canvas| {
            if !pixels::is_opaque(canvas.data()) {
                pixels::demultiply(canvas.data_mut());
            }
            if format == PixelFormat::Rgba {
                out.write_video(stream, &canvas)?;
            } else {
                out.write_video(stream, &convert::to_format(&canvas, format))?;
            }
            // each frame starts transparent: layers for a compositor stay see-through
            let mut buf = canvas.into_data();
            buf.fill(0);
            Ok(buf)
        }),
    );
    let time_base = args.fps.inverse();
    let mut pacer = Pacer::new();
    let mut n = 0u64;
    let result = loop {
        let secs = time_base.ticks_to_secs(n as i64);
        if args.limit.reached(n, secs) || sl_cli::interrupted() {
            break Ok(());
        }
        if !args.fast {
            pacer.wait_until(secs);
        }
        if let Err(e) = stage.before_frame() {
            break Err(e);
        }
        // a cleared buffer back from the writer, or a new (zeroed) one while frames are queued
        let mut canvas = match back.try_recv() {
            Ok(buf) => VideoFrame::from_packed(PixelFormat::Rgba, width, height, buf)?,
            Err(_) => VideoFrame::new(PixelFormat::Rgba, width, height)?,
        };
        canvas.info.frame_number = n;
        canvas.info.pts = n as i64;
        canvas.info.time_base = time_base;
        canvas.info.duration = 1;
        canvas.info.source_id.clone_from(&args.source_id);
        canvas.info.capture_time_ns = Some(now_ns());
        let fc = FrameContext {
            frame_number: n,
            time: secs,
            width,
            height,
            fps: args.fps.as_f64(),
            info: Some(&canvas.info.clone()),
        };
        // draw straight on the (transparent, premultiplied) buffer
        let mut failure = None;
        stage.stats.frames += 1;
        let drawer = &mut stage.drawer;
        let r = pixels::draw_premultiplied(&mut canvas, |pm| match drawer.draw(&fc, pm) {
            Ok(t) => Some(t),
            Err(e) => {
                failure = Some(e);
                None
            }
        });
        match (r, failure) {
            (Some(t), _) => {
                stage.stats.add(t);
                stage.errors.succeeded();
            }
            (None, Some(e)) => {
                if let Err(e) = stage.errors.failed(&e, stage.strict) {
                    break Err(e);
                }
            }
            (None, None) => {}
        }
        if !writer.send(Message::Video {
            stream: 0,
            frame: canvas,
        }) {
            break Ok(()); // the writer stopped: its error comes from `end`
        }
        n += 1;
    };
    finish(writer, result)
}

/// End the writer after the drawing loop: a clean loop ends the stream, a failed one leaves
/// it truncated and reports the loop's error rather than the writer's.
fn finish(writer: WriterThread, result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Ok(()) => writer.end(true),
        Err(e) => {
            let _ = writer.end(false);
            Err(e)
        }
    }
}

/// Overlay mode: a reader thread takes frames from stdin, this thread runs the script and
/// draws, a writer thread (converting with --format) writes them (see `io`).
fn run_overlay(args: &Args, stage: &mut Stage) -> anyhow::Result<()> {
    let input = sl_cli::frame_input()?;
    let out = sl_cli::frame_output()?;
    let (back_tx, back) = sync_channel::<Vec<u8>>(4);
    let incoming = io::spawn_reader(input, back);
    let to = args.format;
    let writer = WriterThread::start(
        out,
        Meter::new("sl-draw", args.progress),
        back_tx,
        Box::new(move |out, stream, frame| {
            match to {
                Some(f) if f != frame.format() => {
                    out.write_video(stream, &convert::to_format(&frame, f))?
                }
                _ => out.write_video(stream, &frame)?,
            }
            Ok(frame.into_data())
        }),
    );
    let mut fps: HashMap<u16, f64> = HashMap::new();
    let mut n = 0u64;
    let mut warned_packets = false;
    let result = (|| -> anyhow::Result<()> {
        for item in incoming {
            let (msg, opaque) = item?;
            if sl_cli::interrupted() {
                break;
            }
            let msg = match msg {
                Message::Stream { stream, mut info } => {
                    if let StreamKind::Video(v) = &mut info.kind
                        && let VideoFormat::Raw(_) = v.format
                    {
                        fps.insert(stream, v.fps.as_f64());
                        if let Some(f) = args.format {
                            v.format = VideoFormat::Raw(f);
                            v.color = ColorInfo::default_for(f);
                        }
                    }
                    Message::Stream { stream, info }
                }
                Message::Video { stream, mut frame } => {
                    let secs = frame.info.pts_secs();
                    if args.limit.reached(n, secs) {
                        break;
                    }
                    stage.before_frame()?;
                    let info = frame.info.clone();
                    let rate = fps
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
                        time: secs,
                        width: frame.width(),
                        height: frame.height(),
                        fps: rate,
                        info: Some(&info),
                    };
                    stage.draw(&mut frame, opaque, &fc)?;
                    n += 1;
                    Message::Video { stream, frame }
                }
                m @ Message::Packet { .. } => {
                    if !warned_packets {
                        log::warn!(
                            "compressed video passes through undrawn: decode it first (e.g. with sl-file)"
                        );
                        warned_packets = true;
                    }
                    m
                }
                other => other,
            };
            if !writer.send(msg) {
                break; // the writer stopped: its error comes from `end`
            }
        }
        Ok(())
    })();
    finish(writer, result)
}
