//! The control channel: a Unix socket or FIFO taking variable assignments while drawing.
//!
//! `--control PATH` is opened by [`sl_cli::control::ControlPath`] (an existing FIFO is read
//! and reopened whenever its writer closes it; otherwise a Unix socket is created at PATH,
//! replacing a stale socket, never another kind of file, nor a socket another process still
//! listens on; every connection may send lines). Lines are parsed by
//! [`crate::vars::parse_line`]; the assignments arrive on a channel the drawing loop drains
//! before each frame, so a value sent is seen by the next frame drawn.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};

use sl_cli::control::{ControlPath, Lines, MAX_LINE};

/// One message from the control channel.
pub type Assignment = (String, serde_json::Value);

/// The running control channel. Dropping it removes the socket file it created.
#[derive(Debug)]
pub struct Control {
    rx: Receiver<Assignment>,
    _path: ControlPath,
}

impl Control {
    /// Start listening on `path`.
    pub fn open(path: &Path) -> std::io::Result<Control> {
        let (tx, rx) = channel();
        let path = ControlPath::open(path, "sl-draw", move |_| Assign(tx.clone()))?;
        Ok(Control { rx, _path: path })
    }

    /// Every assignment received since the last call.
    pub fn drain(&self) -> impl Iterator<Item = Assignment> + '_ {
        self.rx.try_iter()
    }
}

/// The lines of one writer, parsed into assignments.
struct Assign(Sender<Assignment>);

impl Lines for Assign {
    fn line(&mut self, line: &str) -> bool {
        match crate::vars::parse_line(line) {
            Ok(v) => v.into_iter().all(|a| self.0.send(a).is_ok()),
            Err(e) => {
                log::warn!("control: {e}");
                true
            }
        }
    }

    fn too_long(&mut self) {
        log::warn!("control: a line longer than {MAX_LINE} bytes was ignored");
    }
}
