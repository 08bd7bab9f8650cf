//! sl-cam: capture from a camera. A [`Source`] on the stage runtime; the camera keeps its own
//! clock (frames carry the driver's capture times), so the runtime does not pace it.

use std::io::Write;

use clap::Parser;
use sl_camera::fake::FakeSpec;
use sl_camera::v4l::{V4lCamera, list_devices};
use sl_camera::{Camera, FourCc, Memory, Options, Request, Session, describe_choice};
use sl_cli::{Size, SourceArgs, StageFlags};
use sl_frame::Rational;
use sl_stage::{Ending, Flow, Output, Source, Stage};
use sl_wire::Message;

/// Capture video from a camera (V4L2). The camera's mode closest to --size, --fps and
/// --input-format is chosen and reported; frames carry the driver's capture timestamps.
#[derive(Parser, Debug)]
#[command(
    name = "sl-cam",
    version,
    after_help = "Examples:\n  \
      sl-cam --list                                      # cameras and their modes\n  \
      sl-cam | sl-show                                   # first camera, 720p30 if it can\n  \
      sl-cam -d 2 -s 1080p -r 60 --input-format mjpeg | sl-draw overlay.rhai | sl-show\n  \
      sl-cam -d logitech -t 10s -f i420 | sl-file -o clip.mkv"
)]
#[command(mut_arg("format", |a| a.help(
    "Output pixel format: rgba, bgra, rgb24, gray8, i420, nv12. Default: the closest to the \
     camera's (YUYV gives i420, NV12 nv12, MJPEG and RGB rgb24, GRAY gray8).")))]
#[command(mut_arg("source_id", |a| a.help(
    "Source id stamped on the stream and its frames (default: the camera's name).")))]
pub struct Args {
    /// List cameras with their formats, sizes and rates, and exit.
    #[arg(long)]
    list: bool,
    /// Which camera: an index (0), a path (/dev/video2) or part of its name. Default: the first.
    #[arg(short, long, value_name = "CAMERA")]
    device: Option<String>,
    /// Capture size, WIDTHxHEIGHT or 1080p, 720p... (the closest the camera offers).
    #[arg(short, long)]
    size: Option<Size>,
    /// Capture rate (the closest the camera offers).
    #[arg(short = 'r', long, value_parser = sl_cli::parse_fps)]
    fps: Option<Rational>,
    /// The camera's own format: MJPEG, YUYV, NV12, GRAY, RGB24, BGR24 (if it has it).
    #[arg(long, value_name = "FOURCC")]
    input_format: Option<FourCc>,
    /// Frames keep the driver's capture time; with `--clock ptp` they also get the PTP time of
    /// that instant.
    #[command(flatten)]
    source: SourceArgs,
    /// Use a fake camera instead (for testing): MODES[;fail-after=N][;busy][;short-frame-at=N],
    /// MODES like yuyv:640x480@30,nv12:1280x720@30.
    #[arg(long, hide = true, value_name = "SPEC")]
    fake: Option<FakeSpec>,
    #[command(flatten)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        return list(&args);
    }
    let opts = Options {
        request: Request {
            size: args.size.map(|s| (s.width, s.height)),
            fps: args.fps.map(Rational::as_f64),
            fourcc: args.input_format,
        },
        format: args.source.format,
        // --frames and --duration are the runtime's
        max_frames: None,
        max_secs: None,
        source_id: args.source.source_id.clone(),
        // into a pipe, each frame in pages of its own that the pipe takes without a copy
        // (sl_frame::pages, as sl-test and sl-file do): a 720p NV12 frame is not copied into
        // the pipe, and the next stage's read does not free pipe pages (docs/performance.md)
        memory: if sl_cli::stdout_takes_pages() {
            Memory::Paged
        } else {
            Memory::Heap
        },
    };
    let name = camera_name(&args);
    let quiet = args.flags.common.quiet;
    // opened and started before anything is written: a missing or busy camera fails with
    // nothing on stdout
    let mut camera: Box<dyn Camera> = match args.fake.clone() {
        Some(FakeSpec(fake)) => Box::new(fake),
        None => Box::new(V4lCamera::open(args.device.as_deref())?),
    };
    let req = opts.request;
    let session = Session::start(camera.as_mut(), &opts, &mut |choice| {
        let msg = describe_choice(&req, choice);
        if choice.exact {
            // always said (unless -q): which mode a camera runs in is not obvious
            if !quiet {
                sl_cli::say(&format!("sl-cam: {name}: {msg}"));
            }
        } else {
            log::warn!("{name}: {msg}");
        }
    })?;
    Stage::new(sl_cli::program())
        .limit(args.source.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy)
        .clock(args.source.clock)?
        .run_source(Cam { session })
}

/// Frames from a started camera.
struct Cam<'c> {
    session: Session<'c, dyn Camera>,
}

impl Source for Cam<'_> {
    fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
        out.send(Message::Stream {
            stream: 0,
            info: self.session.stream_info().clone(),
        })
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        let Some((described, frame)) = self.session.next_frame()? else {
            return Ok(Flow::Stop);
        };
        if let Some(info) = described {
            out.send(Message::Stream { stream: 0, info })?;
        }
        out.send(Message::Video { stream: 0, frame })?;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        log::info!("captured {} frames", self.session.frames());
        ending.into_result()
    }
}

fn camera_name(args: &Args) -> String {
    match (&args.fake, &args.device) {
        (Some(_), _) => "fake camera".into(),
        (None, Some(d)) => format!("camera {d}"),
        (None, None) => "camera".into(),
    }
}

/// `--list`: every camera and its modes, grouped by layout and size.
fn list(args: &Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // (heading, the opened camera or why it could not be opened)
    type Listed = (String, Result<Box<dyn Camera>, String>);
    let mut cams: Vec<Listed> = Vec::new();
    if let Some(FakeSpec(fake)) = &args.fake {
        cams.push(("fake".into(), Ok(Box::new(fake.clone()))));
    } else {
        let devices = list_devices()?;
        if devices.is_empty() {
            writeln!(out, "no cameras found")?;
            log::warn!("{}", sl_camera::CamError::NoCamera);
            return Ok(());
        }
        for d in devices {
            let head = format!("{}: {} ({})", d.index, d.name, d.path);
            let cam = V4lCamera::open(Some(&d.index.to_string()))
                .map(|c| Box::new(c) as Box<dyn Camera>)
                .map_err(|e| e.to_string());
            cams.push((head, cam));
        }
    }
    for (head, cam) in cams {
        writeln!(out, "{head}")?;
        let mut modes = match cam.and_then(|mut c| c.modes().map_err(|e| e.to_string())) {
            Ok(m) => m,
            Err(e) => {
                // metadata nodes and busy devices: say why, go on with the others
                writeln!(out, "  (cannot list modes: {e})")?;
                continue;
            }
        };
        modes.sort_by_key(|m| (m.fourcc.name(), m.width, m.height));
        if modes.is_empty() {
            writeln!(out, "  (no capture modes: probably a metadata node)")?;
        }
        let mut i = 0;
        while i < modes.len() {
            let m = modes[i];
            let mut rates = vec![m.fps];
            let mut j = i + 1;
            while j < modes.len()
                && (modes[j].fourcc, modes[j].width, modes[j].height)
                    == (m.fourcc, m.width, m.height)
            {
                rates.push(modes[j].fps);
                j += 1;
            }
            rates.sort_unstable_by(|a, b| b.cmp(a));
            rates.dedup();
            let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
            writeln!(
                out,
                "  {:<6} {:>4}x{:<4}  {} fps",
                m.fourcc.name(),
                m.width,
                m.height,
                rates.join(", ")
            )?;
            i = j;
        }
    }
    Ok(())
}
