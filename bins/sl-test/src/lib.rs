//! sl-test: test patterns at any size, rate and pixel format, as a [`Source`] on the stage
//! runtime (which paces it, applies `--frames`/`--duration`, stamps capture times, meters
//! it and ends the stream).

use clap::Parser;
use sl_cli::{Size, SourceArgs, StageFlags, parse_fps};
use sl_frame::{AudioChunk, PixelFormat, Rational, SampleFormat, VideoFrame};
use sl_pattern::{Generator, Pattern, parse_colour};
use sl_stage::{Flow, Output, Pace, Source, Stage};
use sl_wire::{AudioParams, Message, StreamInfo, StreamKind};

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
      sl-test -p solid --color '#ff8000' -t 5s | sl-hls out/\n  \
      sl-test --tone 440 -n 90 --fast | sl-file -o tone.mp4   # with a 440 Hz sine"
)]
#[command(mut_arg("format", |a| a.default_value("rgba")))]
#[command(mut_arg("source_id", |a| a.default_value("sl-test")))]
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
    #[command(flatten)]
    source: SourceArgs,
    /// As fast as the consumer takes frames, instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Colour of the solid pattern: #rrggbb, #rrggbbaa or a name.
    #[arg(long, default_value = "black", value_parser = parse_colour)]
    color: [u8; 4],
    /// Add an audio stream: a sine tone at this frequency in Hz (48 kHz, mono, f32), in
    /// step with the video.
    #[arg(long, value_name = "HZ", value_parser = parse_tone)]
    tone: Option<f64>,
    /// With --tone: beep (0.5 s of tone, 0.5 s of silence) instead of a steady tone.
    #[arg(long, requires = "tone")]
    beep: bool,
    /// Seed for the noise pattern.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

/// The tone's sample rate.
const TONE_RATE: u32 = 48_000;

fn parse_tone(s: &str) -> Result<f64, String> {
    let hz: f64 = s
        .trim()
        .trim_end_matches("Hz")
        .trim_end_matches("hz")
        .parse()
        .map_err(|_| format!("`{s}` is not a frequency: give Hz, e.g. 440"))?;
    if !(hz > 0.0 && hz < f64::from(TONE_RATE) / 2.0) {
        return Err(format!(
            "a tone of {s} Hz cannot be sampled at {TONE_RATE} Hz: give 1 to {}",
            TONE_RATE / 2 - 1
        ));
    }
    Ok(hz)
}

/// A sine tone cut into one chunk per video frame, so audio and video stay in step: chunk
/// `n` holds the samples from frame `n`'s time up to frame `n + 1`'s.
#[derive(Debug)]
struct Tone {
    hz: f64,
    beep: bool,
    fps: Rational,
}

impl Tone {
    fn info(&self, source_id: &str) -> StreamInfo {
        StreamInfo {
            kind: StreamKind::Audio(AudioParams {
                format: SampleFormat::F32,
                planar: false,
                channels: 1,
                sample_rate: TONE_RATE,
            }),
            source_id: source_id.to_string(),
            time_base: Rational::new(1, TONE_RATE),
            extradata: Vec::new(),
            metadata: Default::default(),
        }
    }

    /// The first sample of frame `n` (exact: frame times in whole samples, rounded down).
    fn sample_at(&self, n: u64) -> u64 {
        let (num, den) = (self.fps.num as u128, self.fps.den as u128);
        (n as u128 * den * TONE_RATE as u128 / num) as u64
    }

    fn chunk(&self, n: u64, source_id: &str) -> anyhow::Result<AudioChunk> {
        let (from, to) = (self.sample_at(n), self.sample_at(n + 1));
        let mut data = Vec::with_capacity((to - from) as usize * 4);
        let rate = f64::from(TONE_RATE);
        for i in from..to {
            let on = !self.beep || (i % u64::from(TONE_RATE)) < u64::from(TONE_RATE / 2);
            // the phase from the sample number, not accumulated: no drift over hours
            let phase = (i as f64 * self.hz / rate).fract();
            let v = if on {
                0.5 * (std::f64::consts::TAU * phase).sin() as f32
            } else {
                0.0
            };
            data.extend_from_slice(&v.to_le_bytes());
        }
        let mut chunk = AudioChunk::new(
            SampleFormat::F32,
            TONE_RATE,
            1,
            false,
            (to - from) as u32,
            data,
        )?;
        chunk.info.pts = from as i64;
        chunk.info.time_base = Rational::new(1, TONE_RATE);
        chunk.info.duration = (to - from) as i64;
        chunk.info.frame_number = n;
        chunk.info.source_id = source_id.to_string();
        Ok(chunk)
    }
}

/// The pattern as a source: one frame per `produce`, made when it is due.
struct TestSource {
    generator: Generator,
    info: StreamInfo,
    format: PixelFormat,
    size: Size,
    time_base: Rational,
    tone: Option<Tone>,
    n: u64,
    /// Whether frames go into a pipe in pages of their own (see `produce`).
    paged: bool,
}

impl Source for TestSource {
    fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
        out.send(Message::Stream {
            stream: 0,
            info: self.info.clone(),
        })?;
        if let Some(tone) = &self.tone {
            out.send(Message::Stream {
                stream: 1,
                info: tone.info(&self.info.source_id),
            })?;
        }
        Ok(())
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        let n = self.n;
        let secs = self.time_base.ticks_to_secs(n as i64);
        let Size { width, height } = self.size;
        let size = self.format.frame_size(width, height);
        // Into a pipe, each frame in pages of its own that the pipe takes without a copy
        // (sl_frame::pages): at 720p30 RGBA that halves the latency from capture to the
        // reader (docs/performance.md). Elsewhere the last frame's buffer, back from the
        // writer: no allocation per frame.
        let paged = self
            .paged
            .then(|| VideoFrame::new_paged(self.format, width, height, 0))
            .flatten();
        let mut frame = match paged {
            Some(f) => f,
            None => match out.buffer(size) {
                // (the pool also gets the tone's small buffers back: only a frame's will do)
                Some(buf) if buf.len() == size => {
                    VideoFrame::from_packed(self.format, width, height, buf)?
                }
                _ => self.generator.blank(),
            },
        };
        self.generator.render(n, secs, &mut frame);
        frame.info.frame_number = n;
        frame.info.pts = n as i64;
        frame.info.time_base = self.time_base;
        frame.info.duration = 1;
        frame.info.source_id.clone_from(&self.info.source_id);
        if let Some(tone) = &self.tone {
            let chunk = tone.chunk(n, &self.info.source_id)?;
            out.send(Message::Audio { stream: 1, chunk })?;
        }
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
    let format = args.source.format.expect("--format has a default");
    let generator = Generator::new(args.pattern, format, width, height, args.color, args.seed)?;
    let mut info = StreamInfo::raw_video(format, width, height, args.fps);
    info.source_id = args.source.source_id.clone().unwrap_or_default();
    Stage::new(sl_cli::program())
        .limit(args.source.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy)
        .pace(if args.fast {
            Pace::Off
        } else {
            Pace::Frames(args.fps)
        })
        .clock(args.source.clock)?
        .run_source(TestSource {
            generator,
            info,
            format,
            size: args.size,
            time_base: args.fps.inverse(),
            tone: args.tone.map(|hz| Tone {
                hz,
                beep: args.beep,
                fps: args.fps,
            }),
            n: 0,
            paged: sl_cli::stdout_takes_pages(),
        })
}
