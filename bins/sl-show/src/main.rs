//! sl-show: show a stream in a window.
//!
//! A reader thread takes messages from stdin (and with `--pass` copies them to stdout at
//! once, so a slow window never holds back the pipeline behind it more than `--policy`
//! says); video frames reach the window thread through a policy channel. The window thread
//! paces frames by their timestamps and handles keys.

use std::fs::File;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sl_cli::{Common, Policy, Size};
use sl_frame::VideoFrame;
use sl_window::scale::initial_window_size;
use sl_window::{Action, Clock, ScaleMode, Viewer};
use sl_wire::{Message, MessageHead, Reader, Writer};

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
struct Args {
    /// Show frames as soon as they arrive instead of at their timestamps.
    #[arg(long)]
    no_sync: bool,
    /// Also copy the input stream, unchanged, to stdout.
    #[arg(long)]
    pass: bool,
    /// When the window falls behind: block (lossless, slows upstream), latest (drop to the
    /// newest frame) or queue:N.
    #[arg(long, default_value = "block")]
    policy: Policy,
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

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

/// The pass-through output, shared so the window thread can end it cleanly on quit.
type PassOut = Arc<Mutex<Option<Writer<File>>>>;

fn run(args: Args) -> anyhow::Result<()> {
    // Fail before touching stdin: no display is the commonest mistake.
    sl_window::check_display()?;
    let reader = sl_cli::frame_input()?;
    let pass: PassOut = Arc::new(Mutex::new(if args.pass {
        Some(sl_cli::frame_output()?)
    } else {
        None
    }));
    let (tx, rx) = sl_cli::channel::<VideoFrame>(args.policy);
    let reader_pass = Arc::clone(&pass);
    let want = args.stream;
    let reading = thread::Builder::new()
        .name("sl-show-reader".into())
        .spawn(move || read_input(reader, reader_pass, want, tx))
        .context("starting the reader thread")?;

    let mut show = Show::new(&args);
    let outcome = show.run(&rx)?;
    drop(rx);
    match outcome {
        // The input ended: the reader's result is the stage's (a truncated stream is an error).
        Outcome::InputEnded => {
            let r = reading
                .join()
                .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
            r?;
        }
        // The user closed the window, or SIGINT: end our output cleanly and leave. The reader
        // may be blocked on stdin; exiting closes it, and upstream ends on a broken pipe. If
        // it already stopped (the window was held open after the input ended), its error
        // still counts.
        Outcome::Quit if reading.is_finished() => {
            let r = reading
                .join()
                .map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
            r?;
        }
        Outcome::Quit => {}
    }
    let mut out = pass.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = out.as_mut() {
        w.finish()?;
    }
    show.report();
    Ok(())
}

/// Read stdin, pass it through if asked, and hand video frames of the chosen stream over.
fn read_input(
    mut reader: Reader<File>,
    pass: PassOut,
    want: Option<u16>,
    tx: sl_cli::Sender<VideoFrame>,
) -> anyhow::Result<()> {
    let mut shown: Option<u16> = want;
    let mut warned_coded = false;
    let passing = pass.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    loop {
        let (stream, frame) = if passing {
            let Some(raw) = reader.next_raw().context("reading stdin")? else {
                break;
            };
            {
                let mut out = pass.lock().unwrap_or_else(|e| e.into_inner());
                match out.as_mut() {
                    // finished by the window thread (the user quit): stop
                    Some(w) if w.is_finished() => return Ok(()),
                    Some(w) => w.write_raw(&raw).context("writing stdout")?,
                    None => return Ok(()),
                }
            }
            match &raw.head {
                MessageHead::Video { stream, .. } => {
                    let payload = raw.payload.to_vec();
                    match raw.head.clone().into_message(payload)? {
                        Message::Video { stream: s, frame } => (s, frame),
                        _ => unreachable!("a video head makes a video message: {stream}"),
                    }
                }
                MessageHead::Packet { codec, .. } => {
                    warn_coded(&mut warned_coded, codec.name());
                    continue;
                }
                _ => continue,
            }
        } else {
            match reader.next_message().context("reading stdin")? {
                None => break,
                Some(Message::Video { stream, frame }) => (stream, frame),
                Some(Message::Packet { packet, .. }) => {
                    warn_coded(&mut warned_coded, packet.codec.name());
                    continue;
                }
                Some(_) => continue,
            }
        };
        if *shown.get_or_insert(stream) != stream {
            continue;
        }
        if tx.send(frame).is_err() {
            // the window is gone
            return Ok(());
        }
    }
    Ok(())
}

fn warn_coded(warned: &mut bool, codec: &str) {
    if !*warned {
        *warned = true;
        log::warn!(
            "the input carries compressed {codec} video, which sl-show does not show: \
             decode it to raw frames first (with sl-file)"
        );
    }
}

enum Outcome {
    InputEnded,
    Quit,
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
    clock: Clock,
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
            clock: Clock::new(),
            shown: 0,
            fps: 0.0,
            fps_window: (now, 0),
            title_at: now,
        }
    }

    fn run(&mut self, rx: &sl_cli::Receiver<VideoFrame>) -> anyhow::Result<Outcome> {
        // The window opens with the first frame, at its size.
        let Some(first) = rx.recv() else {
            log::info!("the input had no video frames");
            return Ok(Outcome::InputEnded);
        };
        let (w, h) = match self.size {
            Some(s) => (s.width as usize, s.height as usize),
            None => initial_window_size(first.width(), first.height(), (1920, 1080)),
        };
        let mut viewer = Viewer::open(&self.title_for(&first), w, h)?;
        viewer.set_mode(self.initial_mode);
        self.viewer = Some(viewer);
        let mut pending = Some(first);
        let mut ended = false;
        loop {
            if sl_cli::interrupted() {
                return Ok(Outcome::Quit);
            }
            if self.paused || ended {
                if ended && !self.hold {
                    return Ok(Outcome::InputEnded);
                }
                thread::sleep(Duration::from_millis(15));
                if self.handle_input()? {
                    return Ok(Outcome::Quit);
                }
                continue;
            }
            let frame = match pending.take() {
                Some(f) => f,
                None => match rx.recv_timeout(Duration::from_millis(15)) {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        ended = true;
                        continue;
                    }
                    Err(()) => {
                        if self.handle_input()? {
                            return Ok(Outcome::Quit);
                        }
                        continue;
                    }
                },
            };
            if self.sync {
                let due = self.clock.due(frame.info.pts_secs(), Instant::now());
                // wait for the frame's time, staying responsive to keys
                loop {
                    let now = Instant::now();
                    if now >= due || sl_cli::interrupted() {
                        break;
                    }
                    thread::sleep((due - now).min(Duration::from_millis(10)));
                    if self.handle_input()? {
                        return Ok(Outcome::Quit);
                    }
                    if self.paused {
                        break;
                    }
                }
                if self.paused {
                    // show it when unpaused
                    pending = Some(frame);
                    continue;
                }
            }
            self.viewer_mut().show(&frame)?;
            self.shown += 1;
            self.current = Some(frame);
            if self.handle_input()? {
                return Ok(Outcome::Quit);
            }
        }
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
                    self.clock.reset();
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

    fn report(&self) {
        log::info!("showed {} frames", self.shown);
    }
}
