//! sl-test: test patterns at any size, rate and pixel format.

use std::process::ExitCode;

use clap::Parser;
use sl_cli::{Common, FrameLimit, Meter, Pacer, Size, parse_fps};
use sl_frame::{PixelFormat, Rational};
use sl_pattern::{Generator, Pattern, parse_colour};
use sl_wire::StreamInfo;

/// Generate test-pattern video: colour bars, gradient, moving box, counter and clock, noise
/// or a solid colour. Paced in real time like a camera unless --fast.
#[derive(Parser, Debug)]
#[command(
    name = "sl-test",
    version,
    after_help = "Examples:\n  \
      sl-test | sl-info                                  # 720p30 colour bars, forever\n  \
      sl-test -p box -s 1080p -r 60 -n 600 | sl-show\n  \
      sl-test --fast -n 300 -f i420 | sl-file -o bars.mp4\n  \
      sl-test -p solid --color '#ff8000' -t 5s | sl-hls out/"
)]
struct Args {
    /// Pattern: bars, gradient, box, counter, noise, solid.
    #[arg(short, long, default_value = "bars")]
    pattern: Pattern,
    /// Frame size, WIDTHxHEIGHT or 4k, 1080p, 720p, 480p, 360p.
    #[arg(short, long, default_value = "1280x720")]
    size: Size,
    /// Frame rate: 30, 29.97, 30000/1001...
    #[arg(short = 'r', long, default_value = "30", value_parser = parse_fps)]
    fps: Rational,
    /// Pixel format: rgba, bgra, rgb24, gray8, i420, nv12.
    #[arg(short, long, default_value = "rgba")]
    format: PixelFormat,
    #[command(flatten)]
    limit: FrameLimit,
    /// As fast as the consumer takes frames, instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Colour of the solid pattern: #rrggbb, #rrggbbaa or a name.
    #[arg(long, default_value = "black", value_parser = parse_colour)]
    color: [u8; 4],
    /// Source id stamped on the stream and its frames.
    #[arg(long, default_value = "sl-test")]
    source_id: String,
    /// Seed for the noise pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Show a live progress line on stderr.
    #[arg(long)]
    progress: bool,
    /// Print a stats line on stderr at the end.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    clock: sl_clock::ClockArgs,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

fn run(args: Args) -> anyhow::Result<()> {
    let Size { width, height } = args.size;
    let mut generator = Generator::new(
        args.pattern,
        args.format,
        width,
        height,
        args.color,
        args.seed,
    )?;
    let mut out = sl_cli::frame_output()?;
    let mut info = StreamInfo::raw_video(args.format, width, height, args.fps);
    info.source_id = args.source_id.clone();
    out.write_stream_info(0, &info)?;

    let time_base = args.fps.inverse();
    let mut frame = generator.blank();
    frame.info.time_base = time_base;
    frame.info.duration = 1;
    frame.info.source_id = args.source_id;
    let mut pacer = Pacer::new();
    let mut meter = Meter::new("sl-test", args.progress);
    let mut n = 0u64;
    loop {
        let secs = time_base.ticks_to_secs(n as i64);
        if args.limit.reached(n, secs) || sl_cli::interrupted() {
            break;
        }
        if !args.fast {
            pacer.wait_until(secs);
        }
        generator.render(n, secs, &mut frame);
        frame.info.frame_number = n;
        frame.info.pts = n as i64;
        args.clock.stamp(&mut frame.info)?;
        out.write_video(0, &frame)?;
        meter.frame(frame.data().len() as u64);
        n += 1;
    }
    out.finish()?;
    meter.finish(args.stats);
    if sl_cli::interrupted() {
        log::info!("interrupted after {n} frames; stream ended cleanly");
    }
    Ok(())
}
