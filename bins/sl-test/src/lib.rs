//! sl-test: test patterns at any size, rate and pixel format, as a [`Source`] on the stage
//! runtime (which paces it, applies `--frames`/`--duration`, stamps capture times, meters
//! it and ends the stream).

use clap::Parser;
use sl_cli::{Common, Delivery, FrameLimit, Progress, Size, parse_fps};
use sl_frame::{PixelFormat, Rational, VideoFrame};
use sl_pattern::{Generator, Pattern, parse_colour};
use sl_stage::{Flow, Output, Pace, Source, Stage};
use sl_wire::{Message, StreamInfo};

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
pub struct Args {
    /// Pattern: bars, gradient, box, counter, noise, solid.
    #[arg(short, long, default_value = "bars", value_parser = sl_cli::one_of::<Pattern>(&["bars", "gradient", "box", "counter", "noise", "solid"]))]
    pattern: Pattern,
    /// Frame size, WIDTHxHEIGHT or 4k, 1080p, 720p, 480p, 360p.
    #[arg(short, long, default_value = "1280x720")]
    size: Size,
    /// Frame rate: 30, 29.97, 30000/1001...
    #[arg(short = 'r', long, default_value = "30", value_parser = parse_fps)]
    fps: Rational,
    /// Pixel format: rgba, bgra, rgb24, gray8, i420, nv12.
    #[arg(short, long, default_value = "rgba", value_parser = sl_cli::pixel_format())]
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
    #[command(flatten)]
    clock: sl_clock::ClockArgs,
    #[command(flatten)]
    progress: Progress,
    #[command(flatten)]
    delivery: Delivery,
    #[command(flatten)]
    common: Common,
}

sl_cli::stage_main!(Args, run);

/// The pattern as a source: one frame per `produce`, made when it is due.
struct TestSource {
    generator: Generator,
    info: StreamInfo,
    format: PixelFormat,
    size: Size,
    time_base: Rational,
    n: u64,
}

impl Source for TestSource {
    fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
        out.send(Message::Stream {
            stream: 0,
            info: self.info.clone(),
        })
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        let n = self.n;
        let secs = self.time_base.ticks_to_secs(n as i64);
        // the last frame's buffer, back from the writer: no allocation per frame
        let Size { width, height } = self.size;
        let mut frame = match out.buffer(0) {
            Some(buf) => VideoFrame::from_packed(self.format, width, height, buf)?,
            None => self.generator.blank(),
        };
        self.generator.render(n, secs, &mut frame);
        frame.info.frame_number = n;
        frame.info.pts = n as i64;
        frame.info.time_base = self.time_base;
        frame.info.duration = 1;
        frame.info.source_id.clone_from(&self.info.source_id);
        out.send(Message::Video { stream: 0, frame })?;
        self.n += 1;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: sl_stage::Ending) -> anyhow::Result<()> {
        if let sl_stage::Ending::Interrupted = ending {
            log::info!("interrupted after {} frames; stream ended cleanly", self.n);
        }
        ending.into_result()
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let Size { width, height } = args.size;
    let generator = Generator::new(
        args.pattern,
        args.format,
        width,
        height,
        args.color,
        args.seed,
    )?;
    let mut info = StreamInfo::raw_video(args.format, width, height, args.fps);
    info.source_id = args.source_id.clone();
    Stage::new(sl_cli::program())
        .limit(args.limit)
        .progress(args.progress, false)
        .policy(args.delivery.policy)
        .pace(if args.fast {
            Pace::Off
        } else {
            Pace::Frames(args.fps)
        })
        .clock(args.clock)?
        .run_source(TestSource {
            generator,
            info,
            format: args.format,
            size: args.size,
            time_base: args.fps.inverse(),
            n: 0,
        })
}
