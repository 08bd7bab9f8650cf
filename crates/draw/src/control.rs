//! The control channel: a Unix socket or FIFO taking variable assignments while drawing.
//!
//! `--control PATH`: if PATH is an existing FIFO it is read (and reopened whenever its writer
//! closes it); otherwise a Unix socket is created at PATH (replacing a stale socket, never
//! another kind of file, nor a socket another process still listens on) and every connection
//! may send lines. Lines are parsed by
//! [`crate::vars::parse_line`]; the assignments arrive on a channel the drawing loop drains
//! before each frame, so a value sent is seen by the next frame drawn.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};

/// Longest control line accepted.
const MAX_LINE: usize = 64 * 1024;

/// One message from the control channel.
pub type Assignment = (String, serde_json::Value);

/// The running control channel. Dropping it removes the socket file it created.
#[derive(Debug)]
pub struct Control {
    rx: Receiver<Assignment>,
    socket: Option<PathBuf>,
}

impl Control {
    /// Start listening on `path`.
    pub fn open(path: &Path) -> std::io::Result<Control> {
        let (tx, rx) = channel();
        let meta = std::fs::symlink_metadata(path).ok();
        if meta.as_ref().is_some_and(|m| m.file_type().is_fifo()) {
            let p = path.to_path_buf();
            std::thread::Builder::new()
                .name("control-fifo".into())
                .spawn(move || read_fifo(&p, &tx))?;
            return Ok(Control { rx, socket: None });
        }
        if let Some(m) = meta {
            if m.file_type().is_socket() {
                // A socket someone still accepts on belongs to a running process (another
                // sl-draw, say): taking it over would silently cut that one off.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!(
                            "another process is listening on {} (a second sl-draw with the same --control?): stop it, or give this one another path",
                            path.display()
                        ),
                    ));
                }
                std::fs::remove_file(path)?;
            } else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is neither a FIFO nor a socket: refusing to replace it",
                        path.display()
                    ),
                ));
            }
        }
        let listener = UnixListener::bind(path)?;
        std::thread::Builder::new()
            .name("control-socket".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let tx = tx.clone();
                    let _ = std::thread::Builder::new()
                        .name("control-conn".into())
                        .spawn(move || read_lines(BufReader::new(conn), &tx));
                }
            })?;
        Ok(Control {
            rx,
            socket: Some(path.to_path_buf()),
        })
    }

    /// Every assignment received since the last call.
    pub fn drain(&self) -> impl Iterator<Item = Assignment> + '_ {
        self.rx.try_iter()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn read_fifo(path: &Path, tx: &Sender<Assignment>) {
    loop {
        // Opening blocks until a writer comes; EOF means the writer left: wait for the next.
        match std::fs::File::open(path) {
            Ok(f) => {
                if !read_lines(BufReader::new(f), tx) {
                    return;
                }
            }
            Err(e) => {
                log::warn!("control FIFO {}: {e}", path.display());
                return;
            }
        }
    }
}

/// Read lines until EOF; false if the receiver is gone.
fn read_lines(mut r: impl BufRead, tx: &Sender<Assignment>) -> bool {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match std::io::Read::take(&mut r, MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return true,
        }
        if buf.len() >= MAX_LINE && !buf.ends_with(b"\n") {
            log::warn!("control: a line longer than {MAX_LINE} bytes was ignored");
            // skip the rest of the line
            let _ = r.skip_until(b'\n');
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        match crate::vars::parse_line(&line) {
            Ok(v) => {
                for a in v {
                    if tx.send(a).is_err() {
                        return false;
                    }
                }
            }
            Err(e) => log::warn!("control: {e}"),
        }
    }
}
