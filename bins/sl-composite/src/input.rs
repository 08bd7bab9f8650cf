//! Each input read on a thread of its own, through the runtime's policy channel: under
//! `--sync latest` only the newest frame waits (a slow or stalled input never slows the
//! output, and a fast one costs a read, not a blend, per frame it sends); under `pts`/`ptp`
//! frames queue losslessly (bounded) so they can be matched by time.
//!
//! Opening happens on the thread too: opening a FIFO blocks until its writer comes, and a
//! layer whose input has not started yet is simply absent.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use sl_frame::{PixelFormat, VideoFrame};

use sl_stage::Pool;
use sl_stage::policy::{self, Bell, Policy, Receiver};
use sl_wire::{Message, Reader};

/// Work on a whole input frame done on its reader thread, where it overlaps the
/// compositor's own. (RGBA layers are no longer turned into YUV planes here: the compositor
/// blends them straight into a YUV canvas, which costs less than converting, and converts
/// only a layer shown unchanged for several output frames.)
#[derive(Debug, Default)]
pub struct Prep {
    /// For an RGBA frame: whether every pixel is opaque.
    pub opaque: Option<bool>,
}

/// What an input's thread reports.
#[derive(Debug)]
pub enum Feed {
    Video {
        stream: u16,
        frame: VideoFrame,
        prep: Prep,
    },
    Msg(Message),
    /// The stream ended with END.
    End,
    /// It could not be opened or read (not a stream, truncated...).
    Failed(String),
}

/// Where an input comes from.
#[derive(Debug, Clone)]
pub enum Origin {
    Stdin,
    Path(PathBuf),
}

/// One input's reading thread.
#[derive(Debug)]
pub struct InputReader {
    pub rx: Receiver<Feed>,
    /// Buffers of frames the compositor is done with, for the reader to read into.
    pub pool: Pool,
}

/// Frames queued per input under `pts`/`ptp` sync (bounded memory: each may be 8 MB).
///
/// Two are enough to keep a reader busy while the compositor takes one (one more waits in
/// `Layer::ahead`); four only cost memory: 5 inputs of 1080p RGBA held 80 MB more at peak in
/// scripts/bench-composite.sh, for the same throughput.
pub const QUEUE: usize = 2;

pub fn spawn(name: &str, origin: Origin, policy: Policy, bell: Arc<Bell>) -> InputReader {
    let (tx, rx) = policy::channel_with_bell::<Feed>(policy, QUEUE, Some(bell));
    let pool = Pool::new();
    let recycle = pool.clone();
    let what = match &origin {
        Origin::Stdin => format!("input {name} (stdin)"),
        Origin::Path(p) => format!("input {name} ({})", p.display()),
    };
    let _ = std::thread::Builder::new()
        .name(format!("in-{name}"))
        .spawn(move || {
            let opened: anyhow::Result<Reader<File>> = match &origin {
                Origin::Stdin => sl_cli::frame_input(),
                Origin::Path(p) => File::open(p)
                    .map_err(anyhow::Error::from)
                    .and_then(|f| Reader::new(f).map_err(anyhow::Error::from)),
            };
            let mut reader = match opened {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send_kept(Feed::Failed(format!("{what}: {e:#}")));
                    return;
                }
            };
            loop {
                for b in recycle.drain() {
                    reader.recycle(b);
                }
                let sent = match reader.next_message() {
                    Ok(Some(m)) if m.is_end_of_all() => {
                        let _ = tx.send_kept(Feed::End);
                        return;
                    }
                    Ok(Some(Message::Video { stream, frame })) => {
                        let prep = prepare(&frame);
                        tx.send_frame(Feed::Video {
                            stream,
                            frame,
                            prep,
                        })
                    }
                    Ok(Some(m)) => tx.send_kept(Feed::Msg(m)),
                    Ok(None) => {
                        let _ = tx.send_kept(Feed::End);
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send_kept(Feed::Failed(format!("{what}: {e}")));
                        return;
                    }
                };
                if sent.is_err() {
                    return;
                }
            }
        });
    InputReader { rx, pool }
}

/// The reader thread's share of the work on a frame.
fn prepare(frame: &VideoFrame) -> Prep {
    if frame.format() != PixelFormat::Rgba || !frame.is_packed() {
        return Prep::default();
    }
    Prep {
        opaque: Some(sl_blend::is_opaque_rgba(frame.data())),
    }
}
