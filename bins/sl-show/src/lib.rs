//! sl-show: show a stream in a window. A [`Sink`] on the stage runtime: the reader thread
//! takes messages from stdin (and with `--pass` copies them to stdout at once, so a slow
//! window never holds back the pipeline behind it more than `--policy` says); video frames
//! reach the window through the policy channel. The player paces frames by their
//! timestamps with the runtime's one [`Pacer`] and handles keys while it waits.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use sl_cli::{Common, Delivery, Size};
use sl_frame::VideoFrame;
use sl_stage::{Ending, Flow, Pacer, Pool, Sink, Stage};
use sl_window::scale::initial_window_size;
use sl_window::{Action, ScaleMode, Viewer};
use sl_wire::Message;

/// Show a stream in a window: scaled to fit (aspect ratio kept) or 1:1, paced by the frames'
/// timestamps. Keys: q or Esc quit, space pauses, f toggles fit/1:1, s saves the current
/// frame as a PNG. Closing the window ends the stage successfully.
#[derive(Parser, Debug)]
#[command(
    name = "sl-show",
    version,
    after_help = "Examples:\n  \
      sl-test | sl-show                                  # colour bars in a window\n  \
      sl-cam | sl-draw overlay.rhai | sl-show\n  \
      sl-file talk.mp4 | sl-show --no-sync               # as fast as frames decode\n  \
      sl-screen | sl-show --pass --policy latest | sl-hls out/   # preview mid-pipeline\n\n\
      Needs a display: DISPLAY (X11) or WAYLAND_DISPLAY (through XWayland)."
)]
pub struct Args {
    /// Show frames as soon as they arrive instead of at their timestamps.
    #[arg(long)]
    no_sync: bool,
    /// Also copy the input stream, unchanged, to stdout.
    #[arg(long)]
    pass: bool,
    #[command(flatten)]
    delivery: Delivery,
    /// Start at 1:1 (one frame pixel per screen pixel) instead of fit.
    #[arg(long)]
    one_to_one: bool,
    /// Initial window size (default: the frame's size, halved until it fits 1920x1080).
    #[arg(short, long)]
    size: Option<Size>,
    /// Window title (default: the stream's source id).
    #[arg(long)]
    title: Option<String>,
    /// Keep the window open after the stream ends, until it is closed.
    #[arg(long)]
    hold: bool,
    /// Where `s` saves PNG snapshots.
    #[arg(long, default_value = ".", value_name = "DIR")]
    snapshot_dir: PathBuf,
    /// Which video stream to show (default: the first one seen).
    #[arg(long, value_name = "INDEX")]
    stream: Option<u16>,
    #[command(flatten)]
    common: Common,
}

sl_cli::stage_main!(Args, run);

fn run(args: Args) -> anyhow::Result<()> {
    // Fail before touching stdin: no display is the commonest mistake.
    sl_window::check_display()?;
    Stage::new(sl_cli::program())
        .policy(args.delivery.policy)
        .pass_through(args.pass)
        .run_sink(Show::new(&args))
}

impl Sink for Show {
    fn message(&mut self, m: Message, pool: &Pool) -> anyhow::Result<Flow> {
        match m {
            Message::Video { stream, frame } => {
                if *self.stream.get_or_insert(stream) != stream {
                    pool.put(frame.into_data());
                    return Ok(Flow::Continue);
                }
                let flow = self.frame(frame)?;
                if let Some(old) = self.recycled.take() {
                    pool.put(old.into_data());
                }
                Ok(flow)
            }
            Message::Packet { packet, .. } => {
                if !self.warned_coded {
                    self.warned_coded = true;
                    log::warn!(
                        "the input carries compressed {} video, which sl-show does not show: \
                         decode it to raw frames first (with sl-file)",
                        packet.codec.name()
                    );
                }
                Ok(Flow::Continue)
            }
            _ => Ok(Flow::Continue),
        }
    }

    fn tick(&mut self) -> anyhow::Result<Flow> {
        if self.viewer.is_some() && self.handle_input()? {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    fn tick_every(&self) -> Duration {
        Duration::from_millis(15)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        if self.viewer.is_none() && !ending.is_failed() {
            log::info!("the input had no video frames");
        }
        // --hold: keep the last frame up until the window is closed
        if self.hold && !self.quit && matches!(ending, Ending::Clean) && self.viewer.is_some() {
            while !sl_cli::interrupted() && !self.handle_input()? {
                thread::sleep(Duration::from_millis(15));
            }
        }
        log::info!("showed {} frames", self.shown);
        ending.into_result()
    }
}

/// The window side: pacing, keys, title.
struct Show {
    title: Option<String>,
    sync: bool,
    hold: bool,
    size: Option<Size>,
    initial_mode: ScaleMode,
    snapshot_dir: PathBuf,
    viewer: Option<Viewer>,
    current: Option<VideoFrame>,
    paused: bool,
    pacer: Pacer,
    stream: Option<u16>,
    warned_coded: bool,
    recycled: Option<VideoFrame>,
    quit: bool,
    shown: u64,
    fps: f64,
    fps_window: (Instant, u64),
    title_at: Instant,
}

impl Show {
    fn new(args: &Args) -> Show {
        let now = Instant::now();
        Show {
            title: args.title.clone(),
            sync: !args.no_sync,
            hold: args.hold,
            size: args.size,
            initial_mode: if args.one_to_one {
                ScaleMode::OneToOne
            } else {
                ScaleMode::Fit
            },
            snapshot_dir: args.snapshot_dir.clone(),
            viewer: None,
            current: None,
            paused: false,
            pacer: Pacer::new(),
            stream: args.stream,
            warned_coded: false,
            recycled: None,
            quit: false,
            shown: 0,
            fps: 0.0,
            fps_window: (now, 0),
            title_at: now,
        }
    }

    /// Show one frame when it is due (the window opens with the first, at its size),
    /// handling keys while waiting; `Stop` when the user quits.
    fn frame(&mut self, frame: VideoFrame) -> anyhow::Result<Flow> {
        if self.viewer.is_none() {
            let (w, h) = match self.size {
                Some(s) => (s.width as usize, s.height as usize),
                None => initial_window_size(frame.width(), frame.height(), (1920, 1080)),
            };
            let mut viewer = Viewer::open(&self.title_for(&frame), w, h)?;
            viewer.set_mode(self.initial_mode);
            self.viewer = Some(viewer);
        }
        if self.sync {
            let due = self.pacer.due(frame.info.pts_secs(), Instant::now());
            // wait for the frame's time, staying responsive to keys
            loop {
                let now = Instant::now();
                if now >= due || sl_cli::interrupted() || self.paused {
                    break;
                }
                thread::sleep((due - now).min(Duration::from_millis(10)));
                if self.handle_input()? {
                    return Ok(self.quit());
                }
            }
        }
        // paused: the frame is shown when unpaused; upstream waits (or drops, per --policy)
        while self.paused {
            if sl_cli::interrupted() {
                return Ok(Flow::Stop);
            }
            thread::sleep(Duration::from_millis(15));
            if self.handle_input()? {
                return Ok(self.quit());
            }
        }
        self.viewer_mut().show(&frame)?;
        self.shown += 1;
        self.recycled = self.current.replace(frame);
        if self.handle_input()? {
            return Ok(self.quit());
        }
        Ok(Flow::Continue)
    }

    fn quit(&mut self) -> Flow {
        self.quit = true;
        Flow::Stop
    }

    fn viewer_mut(&mut self) -> &mut Viewer {
        self.viewer.as_mut().expect("the window is open")
    }

    /// Handle keys and window events; true when the user quit.
    fn handle_input(&mut self) -> anyhow::Result<bool> {
        let actions = self.viewer_mut().poll();
        for action in actions {
            match action {
                Action::Quit => return Ok(true),
                Action::TogglePause => {
                    self.paused = !self.paused;
                    // resume in real time from the next frame, not from before the pause
                    self.pacer.reset();
                }
                Action::ToggleFit => {
                    let v = self.viewer_mut();
                    v.set_mode(v.mode().toggled());
                    v.redraw()?;
                }
                Action::Save => self.save(),
            }
        }
        self.update_title();
        Ok(false)
    }

    fn save(&mut self) {
        let Some(frame) = &self.current else {
            return;
        };
        let base = format!("sl-show-{:06}", frame.info.frame_number);
        let mut path = self.snapshot_dir.join(format!("{base}.png"));
        let mut i = 1;
        while path.exists() {
            path = self.snapshot_dir.join(format!("{base}-{i}.png"));
            i += 1;
        }
        match sl_window::save_png(frame, &path) {
            Ok(()) => eprintln!("sl-show: saved {}", path.display()),
            Err(e) => log::error!("{e}"),
        }
    }

    fn title_for(&self, frame: &VideoFrame) -> String {
        let source = match (&self.title, frame.info.source_id.as_str()) {
            (Some(t), _) => t.clone(),
            (None, "") => "stdin".to_string(),
            (None, s) => s.to_string(),
        };
        let mut t = format!(
            "{source} - {}x{} {} - {:.1} fps - sl-show",
            frame.width(),
            frame.height(),
            frame.format(),
            self.fps
        );
        if self.paused {
            t.push_str(" [paused]");
        }
        if self
            .viewer
            .as_ref()
            .is_some_and(|v| v.mode() == ScaleMode::OneToOne)
        {
            t.push_str(" [1:1]");
        }
        t
    }

    fn update_title(&mut self) {
        let now = Instant::now();
        if now - self.title_at < Duration::from_millis(500) {
            return;
        }
        self.title_at = now;
        let (t0, n0) = self.fps_window;
        let dt = (now - t0).as_secs_f64();
        if dt >= 1.0 {
            self.fps = (self.shown - n0) as f64 / dt;
            self.fps_window = (now, self.shown);
        }
        if let Some(frame) = self.current.take() {
            let title = self.title_for(&frame);
            self.viewer_mut().set_title(&title);
            self.current = Some(frame);
        }
    }
}
