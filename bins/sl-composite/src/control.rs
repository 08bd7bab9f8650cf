//! The live control channel, opened as sl-draw's is (by [`sl_cli::control::ControlPath`]):
//! `--control PATH` reads an existing FIFO (reopened whenever its writer closes it), or creates a Unix socket
//! at PATH (replacing a stale socket, never another kind of file, nor a socket another
//! process still listens on) where every connection may send commands and reads one reply
//! line per batch: `ok frame N` (the first output frame that shows it) or `error: ...`.
//!
//! Each line is one batch; `begin` ... `commit` makes one batch of several lines. The
//! compositor parses and checks a batch as a whole, then applies it between two frames:
//! all of it, or (on any error) none of it.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use sl_cli::control::{ControlPath, Lines, MAX_LINE};

/// Most lines one `begin` ... `commit` batch may hold.
const MAX_BATCH: usize = 1024;

/// Lines to apply together, and where to say how it went (a socket connection).
#[derive(Debug)]
pub struct Batch {
    pub lines: Vec<String>,
    pub reply: Option<Sender<String>>,
}

/// The running control channel. Dropping it removes the socket file it created.
#[derive(Debug)]
pub struct Control {
    rx: Receiver<Batch>,
    _path: ControlPath,
}

impl Control {
    pub fn open(path: &Path) -> std::io::Result<Control> {
        let (tx, rx) = channel();
        let path = ControlPath::open(path, "sl-composite", move |conn| {
            Batches::new(tx.clone(), conn)
        })?;
        Ok(Control { rx, _path: path })
    }

    /// Every batch received since the last call.
    pub fn drain(&self) -> impl Iterator<Item = Batch> + '_ {
        self.rx.try_iter()
    }
}

/// The lines of one writer, grouped into batches (`begin` ... `commit`); a socket
/// connection reads one reply line per batch.
struct Batches {
    tx: Sender<Batch>,
    /// Replies to the connection, written on a thread of its own (the compositor answers
    /// between frames); none for a FIFO, whose errors are logged.
    reply: Option<Sender<String>>,
    writer: Option<JoinHandle<()>>,
    open: Option<Vec<String>>,
}

impl Batches {
    fn new(tx: Sender<Batch>, conn: Option<UnixStream>) -> Batches {
        let (reply, writer) = match conn {
            Some(mut out) => {
                let (rtx, rrx) = channel::<String>();
                let writer = std::thread::spawn(move || {
                    for line in rrx {
                        if writeln!(out, "{line}").is_err() {
                            return;
                        }
                    }
                });
                (Some(rtx), Some(writer))
            }
            None => (None, None),
        };
        Batches {
            tx,
            reply,
            writer,
            open: None,
        }
    }

    fn say(&self, msg: String) {
        match &self.reply {
            Some(r) => {
                let _ = r.send(msg);
            }
            None => log::error!("control: {msg}"),
        }
    }
}

impl Lines for Batches {
    fn line(&mut self, line: &str) -> bool {
        let line = line.trim().to_string();
        if line.is_empty() || line.starts_with('#') {
            return true;
        }
        let batch = match (line.as_str(), self.open.as_mut()) {
            ("begin", None) => {
                self.open = Some(Vec::new());
                return true;
            }
            ("begin", Some(_)) => {
                self.say("error: begin inside begin: finish the first batch with commit".into());
                return true;
            }
            ("commit", Some(_)) => self.open.take().unwrap_or_default(),
            ("commit", None) => {
                self.say("error: commit without begin".into());
                return true;
            }
            ("abort" | "rollback", Some(_)) => {
                self.open = None;
                self.say("ok aborted".into());
                return true;
            }
            (_, Some(lines)) => {
                if lines.len() >= MAX_BATCH {
                    self.open = None;
                    self.say(format!(
                        "error: more than {MAX_BATCH} lines in one batch: nothing in it was applied"
                    ));
                } else {
                    lines.push(line);
                }
                return true;
            }
            (_, None) => vec![line],
        };
        self.tx
            .send(Batch {
                lines: batch,
                reply: self.reply.clone(),
            })
            .is_ok()
    }

    fn too_long(&mut self) {
        self.say(format!(
            "error: a line longer than {MAX_LINE} bytes was ignored"
        ));
    }

    fn end(&mut self) {
        if self.open.is_some() {
            self.say(
                "error: the connection ended inside begin ... commit: nothing in it was applied"
                    .into(),
            );
        }
        // the last replies go out before the connection's thread ends
        self.reply = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
