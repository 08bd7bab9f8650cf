//! sl-screen: capture a screen, a region of it, or a window. A [`Source`] on the stage
//! runtime: each grab is made when its frame is due, and carries its real capture time.

use std::io::Write;
use std::time::Instant;

use clap::Parser;
use sl_cli::{SourceArgs, StageFlags};
use sl_frame::convert::to_format;
use sl_frame::{PixelFormat, Rational, now_ns};
use sl_screencap::{Region, Target};
use sl_stage::{Ending, Flow, Output, Pace, Source, Stage};
use sl_wire::{Message, StreamInfo};

/// Capture a monitor (default: the primary), a region of one, or a window, at a steady rate.
/// Frames carry their real capture times. A window that closes ends the stream cleanly; if
/// the capture fails (display gone), the frames so far are written and the stream is left
/// unfinished, so the stages after this one know it failed (and still finalise what they
/// write). The mouse cursor is drawn in (X11).
#[derive(Parser, Debug)]
#[command(
    name = "sl-screen",
    version,
    after_help = "Examples:\n  \
      sl-screen --list                                   # monitors and windows\n  \
      sl-screen --fps 30 | sl-hls out/                   # the primary monitor\n  \
      sl-screen --region 0,0,1280,720 -t 10s | sl-file -o clip.mkv\n  \
      sl-screen --window firefox | sl-show\n\n\
      Needs a display: DISPLAY (X11). On Wayland, xcap asks the desktop portal."
)]
#[command(mut_arg("format", |a| a.default_value("rgba")))]
#[command(mut_arg("source_id", |a| a.help(
    "Source id stamped on the stream and its frames (default: what is captured).")))]
pub struct Args {
    /// List monitors and windows (id, name, geometry) and exit.
    #[arg(long)]
    list: bool,
    /// Monitor to capture, by id or name (default: the primary).
    #[arg(short, long, value_name = "ID|NAME", conflicts_with = "window")]
    monitor: Option<String>,
    /// Capture a window, by id (decimal or 0x hex) or part of its title.
    #[arg(short, long, value_name = "ID|TITLE")]
    window: Option<String>,
    /// Capture only this rectangle of the monitor: X,Y,WIDTH,HEIGHT.
    #[arg(long, value_name = "X,Y,W,H", conflicts_with = "window")]
    region: Option<Region>,
    /// Capture rate.
    #[arg(short = 'r', long, default_value = "30", value_parser = sl_cli::parse_fps)]
    fps: Rational,
    /// Leave the mouse cursor out.
    #[arg(long)]
    no_cursor: bool,
    /// Frames keep the time their grab started; with `--clock ptp` they also get the PTP time
    /// of that instant.
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        return list();
    }
    let target = match &args.window {
        Some(w) => Target::Window(w.clone()),
        None => Target::Monitor {
            wanted: args.monitor.clone(),
            region: args.region,
        },
    };
    // opened before anything is written: a bad argument or no display fails with nothing on
    // stdout, not with a stream the next stage finds cut short
    let mut source = sl_screencap::Source::open(&target)?;
    if !source.set_cursor(!args.no_cursor) && !args.no_cursor {
        log::info!("the cursor cannot be captured here (it needs X11 with XFixes)");
    }
    let what = source.describe().to_string();
    log::info!("capturing {what} at {} fps", args.fps);
    let source_id = args
        .source
        .source_id
        .clone()
        .unwrap_or_else(|| what.clone());
    Stage::new(sl_cli::program())
        .limit(args.source.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy)
        .clock(args.source.clock)?
        .pace(Pace::Frames(args.fps))
        .run_source(Screen {
            source,
            format: args.source.format.expect("--format has a default"),
            fps: args.fps,
            source_id,
            size: None,
            start: None,
            n: 0,
        })
}

/// Grabs of one monitor, region or window.
struct Screen {
    source: sl_screencap::Source,
    format: PixelFormat,
    fps: Rational,
    source_id: String,
    size: Option<(u32, u32)>,
    start: Option<Instant>,
    n: u64,
}

impl Source for Screen {
    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        let t = Instant::now();
        let wall = now_ns();
        let frame = match self.source.grab() {
            Ok(f) => f,
            Err(e) if e.is_gone() => {
                log::warn!("{e} after {} frames; the stream ends here", self.n);
                return Ok(Flow::Stop);
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "capture stopped after {} frames (the stages after this one finalise what they have)",
                    self.n
                )));
            }
        };
        let t0 = *self.start.get_or_insert(t);
        let mut frame = if frame.format() == self.format {
            frame
        } else {
            to_format(&frame, self.format)
        };
        let wh = (frame.width(), frame.height());
        if self.size != Some(wh) {
            // first frame, or the monitor or window changed size: describe the stream (again)
            self.size = Some(wh);
            let mut info = StreamInfo::raw_video(self.format, wh.0, wh.1, self.fps);
            // timestamps are real capture times, in microseconds since the first frame
            info.time_base = Rational::MICROS;
            info.source_id = self.source_id.clone();
            out.send(Message::Stream { stream: 0, info })?;
        }
        frame.info.frame_number = self.n;
        frame.info.pts = (t - t0).as_micros() as i64;
        frame.info.time_base = Rational::MICROS;
        frame.info.duration = (1e6 / self.fps.as_f64()).round() as i64;
        // the grab's own time, more exact than when the frame leaves
        frame.info.capture_time_ns = Some(wall);
        frame.info.source_id = self.source_id.clone();
        out.send(Message::Video { stream: 0, frame })?;
        self.n += 1;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        ending.into_result()
    }
}

fn list() -> anyhow::Result<()> {
    let (monitors, windows) = sl_screencap::list()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "monitors:")?;
    if monitors.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for m in &monitors {
        writeln!(
            out,
            "  {:<10} {:<16} {}x{}+{}+{}{}",
            m.id,
            m.name,
            m.width,
            m.height,
            m.x,
            m.y,
            if m.primary { "  primary" } else { "" }
        )?;
    }
    writeln!(out, "windows:")?;
    if windows.is_empty() {
        writeln!(out, "  (none: windows are found through a window manager)")?;
    }
    for w in &windows {
        writeln!(
            out,
            "  {:<10} {}x{}+{}+{}  \"{}\"{}{}",
            format!("{:#x}", w.id),
            w.width,
            w.height,
            w.x,
            w.y,
            w.title,
            if w.app.is_empty() {
                String::new()
            } else {
                format!(" ({})", w.app)
            },
            if w.minimized { "  minimized" } else { "" }
        )?;
    }
    Ok(())
}
