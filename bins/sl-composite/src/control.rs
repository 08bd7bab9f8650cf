//! The live control channel, as sl-draw's (`crates/draw/src/control.rs`): `--control PATH`
//! reads an existing FIFO (reopened whenever its writer closes it), or creates a Unix socket
//! at PATH (replacing a stale socket, never another kind of file, nor a socket another
//! process still listens on) where every connection may send commands and reads one reply
//! line per batch: `ok frame N` (the first output frame that shows it) or `error: ...`.
//!
//! Each line is one batch; `begin` ... `commit` makes one batch of several lines. The
//! compositor parses and checks a batch as a whole, then applies it between two frames:
//! all of it, or (on any error) none of it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};

/// Longest control line accepted.
const MAX_LINE: usize = 64 * 1024;
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
    socket: Option<PathBuf>,
}

impl Control {
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
                if UnixStream::connect(path).is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!(
                            "another process is listening on {} (a second sl-composite with the same --control?): stop it, or give this one another path",
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
                        .spawn(move || serve(conn, &tx));
                }
            })?;
        Ok(Control {
            rx,
            socket: Some(path.to_path_buf()),
        })
    }

    /// Every batch received since the last call.
    pub fn drain(&self) -> impl Iterator<Item = Batch> + '_ {
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

fn read_fifo(path: &Path, tx: &Sender<Batch>) {
    loop {
        // opening blocks until a writer comes; EOF means the writer left: wait for the next
        match std::fs::File::open(path) {
            Ok(f) => {
                if !read_batches(BufReader::new(f), tx, None) {
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

/// One socket connection: batches in, one reply line per batch out.
fn serve(conn: UnixStream, tx: &Sender<Batch>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let (rtx, rrx) = channel::<String>();
    let writer = std::thread::spawn(move || {
        for line in rrx {
            if writeln!(out, "{line}").is_err() {
                return;
            }
        }
    });
    read_batches(BufReader::new(conn), tx, Some(rtx));
    let _ = writer.join();
}

/// Read lines until EOF, grouping `begin` ... `commit`; false if the receiver is gone.
fn read_batches(mut r: impl BufRead, tx: &Sender<Batch>, reply: Option<Sender<String>>) -> bool {
    let mut buf = Vec::new();
    let mut open: Option<Vec<String>> = None;
    let say = |msg: String| match &reply {
        Some(r) => {
            let _ = r.send(msg);
        }
        None => log::error!("control: {msg}"),
    };
    loop {
        buf.clear();
        match std::io::Read::take(&mut r, MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => {
                if open.is_some() {
                    say("error: the connection ended inside begin ... commit: nothing in it was applied".into());
                }
                return true;
            }
            Ok(_) => {}
        }
        if buf.len() >= MAX_LINE && !buf.ends_with(b"\n") {
            say(format!(
                "error: a line longer than {MAX_LINE} bytes was ignored"
            ));
            let _ = r.skip_until(b'\n');
            continue;
        }
        let line = String::from_utf8_lossy(&buf).trim().to_string();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let batch = match (line.as_str(), open.as_mut()) {
            ("begin", None) => {
                open = Some(Vec::new());
                continue;
            }
            ("begin", Some(_)) => {
                say("error: begin inside begin: finish the first batch with commit".into());
                continue;
            }
            ("commit", Some(_)) => open.take().unwrap_or_default(),
            ("commit", None) => {
                say("error: commit without begin".into());
                continue;
            }
            ("abort" | "rollback", Some(_)) => {
                open = None;
                say("ok aborted".into());
                continue;
            }
            (_, Some(lines)) => {
                if lines.len() >= MAX_BATCH {
                    open = None;
                    say(format!(
                        "error: more than {MAX_BATCH} lines in one batch: nothing in it was applied"
                    ));
                } else {
                    lines.push(line);
                }
                continue;
            }
            (_, None) => vec![line],
        };
        if tx
            .send(Batch {
                lines: batch,
                reply: reply.clone(),
            })
            .is_err()
        {
            return false;
        }
    }
}
