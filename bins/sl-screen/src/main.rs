//! sl-screen: capture a screen, a region of it, or a window.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use sl_cli::{Common, FrameLimit, Meter, Pacer};
use sl_frame::convert::to_format;
use sl_frame::{PixelFormat, Rational, now_ns};
use sl_screencap::{Region, Source, Target};
use sl_wire::StreamInfo;

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
struct Args {
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
    /// Output pixel format: rgba, bgra, rgb24, gray8, i420, nv12.
    #[arg(short, long, default_value = "rgba")]
    format: PixelFormat,
    #[command(flatten)]
    limit: FrameLimit,
    /// Leave the mouse cursor out.
    #[arg(long)]
    no_cursor: bool,
    /// Source id stamped on the stream and its frames (default: what is captured).
    #[arg(long)]
    source_id: Option<String>,
    /// Show a live progress line on stderr.
    #[arg(long)]
    progress: bool,
    /// Print a stats line on stderr at the end.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

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
    let mut out = sl_cli::frame_output()?;
    // on failure the stream stays unfinished: the next stage reports that this one failed
    let mut source = Source::open(&target)?;
    if !source.set_cursor(!args.no_cursor) && !args.no_cursor {
        log::info!("the cursor cannot be captured here (it needs X11 with XFixes)");
    }
    let what = source.describe().to_string();
    log::info!("capturing {what} at {} fps", args.fps);
    let source_id = args.source_id.clone().unwrap_or_else(|| what.clone());

    let mut meter = Meter::new("sl-screen", args.progress);
    let mut pacer = Pacer::new();
    let frame_secs = args.fps.inverse();
    let duration_us = (1e6 / args.fps.as_f64()).round() as i64;
    let mut size = None;
    let mut start: Option<Instant> = None;
    let mut n = 0u64;
    let failure = loop {
        let secs = frame_secs.ticks_to_secs(n as i64);
        if args.limit.reached(n, secs) || sl_cli::interrupted() {
            break None;
        }
        pacer.wait_until(secs);
        let t = Instant::now();
        let wall = now_ns();
        let frame = match source.grab() {
            Ok(f) => f,
            Err(e) if e.is_gone() => {
                log::warn!("{e} after {n} frames; the stream ends here");
                break None;
            }
            Err(e) => break Some(e),
        };
        let t0 = *start.get_or_insert(t);
        let mut frame = if frame.format() == args.format {
            frame
        } else {
            to_format(&frame, args.format)
        };
        let wh = (frame.width(), frame.height());
        if size != Some(wh) {
            // first frame, or the monitor or window changed size: describe the stream (again)
            size = Some(wh);
            let mut info = StreamInfo::raw_video(args.format, wh.0, wh.1, args.fps);
            // timestamps are real capture times, in microseconds since the first frame
            info.time_base = Rational::MICROS;
            info.source_id = source_id.clone();
            out.write_stream_info(0, &info)?;
        }
        frame.info.frame_number = n;
        frame.info.pts = (t - t0).as_micros() as i64;
        frame.info.time_base = Rational::MICROS;
        frame.info.duration = duration_us;
        frame.info.capture_time_ns = Some(wall);
        frame.info.source_id = source_id.clone();
        out.write_video(0, &frame)?;
        meter.frame(frame.data().len() as u64);
        n += 1;
    };
    if let Some(e) = failure {
        // the frames so far are out; the missing end-of-stream tells the next stage it failed
        let _ = out.flush();
        meter.finish(args.stats);
        return Err(e).with_context(|| {
            format!("capture stopped after {n} frames (the stages after this one finalise what they have)")
        });
    }
    out.finish()?;
    meter.finish(args.stats);
    Ok(())
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
