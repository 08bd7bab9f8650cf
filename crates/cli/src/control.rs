//! A stage's live control path (`--control PATH`, sl-draw's and sl-composite's): lines of
//! commands from an existing FIFO or from the connections to a Unix socket.
//!
//! - An existing FIFO is read, and reopened whenever its writer closes it.
//! - Otherwise a Unix socket is created at PATH: a stale socket there is replaced; a socket
//!   another process still accepts on, or any other kind of file, is refused. Every
//!   connection is read on a thread of its own. Dropping the [`ControlPath`] removes the
//!   socket file it created.
//!
//! What the lines mean is the stage's: each writer (a FIFO's opening, a connection) gets a
//! [`Lines`] handler of its own, made by the stage, which may also answer on the connection.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest control line accepted; a longer one is skipped ([`Lines::too_long`]).
pub const MAX_LINE: usize = 64 * 1024;

/// What a stage does with the lines of one writer.
pub trait Lines: Send + 'static {
    /// One line, without its line end (invalid UTF-8 replaced). False stops reading: the
    /// stage no longer takes commands.
    fn line(&mut self, line: &str) -> bool;
    /// A line longer than [`MAX_LINE`] bytes was skipped.
    fn too_long(&mut self);
    /// The writer is gone (end of file, the connection closed, or a read error).
    fn end(&mut self) {}
}

/// A control path being read. Dropping it removes the socket file it created.
#[derive(Debug)]
pub struct ControlPath {
    socket: Option<PathBuf>,
}

impl ControlPath {
    /// Start reading `path` on threads of its own. `handler` makes the handler of each writer:
    /// with the connection (to answer on) for a socket, with `None` for a FIFO. `stage` names
    /// the program in the message about a path another process listens on.
    pub fn open<H: Lines>(
        path: &Path,
        stage: &str,
        handler: impl Fn(Option<UnixStream>) -> H + Send + 'static,
    ) -> std::io::Result<ControlPath> {
        let meta = std::fs::symlink_metadata(path).ok();
        if meta.as_ref().is_some_and(|m| m.file_type().is_fifo()) {
            let p = path.to_path_buf();
            std::thread::Builder::new()
                .name("control-fifo".into())
                .spawn(move || read_fifo(&p, &handler))?;
            return Ok(ControlPath { socket: None });
        }
        if let Some(m) = meta {
            if m.file_type().is_socket() {
                // A socket someone still accepts on belongs to a running process (another
                // instance of the stage, say): taking it over would silently cut that one off.
                if UnixStream::connect(path).is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!(
                            "another process is listening on {} (a second {stage} with the same --control?): stop it, or give this one another path",
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
                    let answer = conn.try_clone().ok();
                    let lines = handler(answer);
                    let _ = std::thread::Builder::new()
                        .name("control-conn".into())
                        .spawn(move || {
                            let mut lines = lines;
                            read_lines(BufReader::new(conn), &mut lines);
                        });
                }
            })?;
        Ok(ControlPath {
            socket: Some(path.to_path_buf()),
        })
    }
}

impl Drop for ControlPath {
    fn drop(&mut self) {
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn read_fifo<H: Lines>(path: &Path, handler: &impl Fn(Option<UnixStream>) -> H) {
    loop {
        // Opening blocks until a writer comes; EOF means the writer left: wait for the next.
        match std::fs::File::open(path) {
            Ok(f) => {
                if !read_lines(BufReader::new(f), &mut handler(None)) {
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

/// Read lines until the writer is gone (true) or the handler stops (false).
fn read_lines(mut r: impl BufRead, lines: &mut impl Lines) -> bool {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match std::io::Read::take(&mut r, MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => {
                lines.end();
                return true;
            }
            Ok(_) => {}
        }
        if buf.len() >= MAX_LINE && !buf.ends_with(b"\n") {
            lines.too_long();
            // skip the rest of the line
            let _ = r.skip_until(b'\n');
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if !lines.line(text) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc::{Sender, channel};

    struct Collect(Sender<String>);

    impl Lines for Collect {
        fn line(&mut self, line: &str) -> bool {
            self.0.send(line.to_string()).is_ok()
        }
        fn too_long(&mut self) {
            let _ = self.0.send("(too long)".into());
        }
        fn end(&mut self) {
            let _ = self.0.send("(end)".into());
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sl-cli-control-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn socket_lines_reach_the_handler_and_the_socket_goes_with_it() {
        let dir = scratch("socket");
        let path = dir.join("ctl");
        let (tx, rx) = channel();
        let control = ControlPath::open(&path, "sl-test", move |conn| {
            assert!(conn.is_some(), "a socket connection can be answered");
            Collect(tx.clone())
        })
        .unwrap();
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"one\r\n").unwrap();
        c.write_all(&vec![b'x'; MAX_LINE + 10]).unwrap();
        c.write_all(b"\ntwo").unwrap();
        drop(c);
        let got: Vec<String> = rx.iter().take(4).collect();
        assert_eq!(got, ["one", "(too long)", "two", "(end)"]);
        // a second one on the same path is refused while the first listens (its probe is a connection of its own)
        let again = ControlPath::open(&path, "sl-test", |_| Collect(channel().0)).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
        assert!(again.to_string().contains("a second sl-test"), "{again}");
        drop(control);
        assert!(!path.exists(), "the socket is removed");
        // a stale socket is replaced; a plain file is not
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        drop(ControlPath::open(&path, "sl-test", |_| Collect(channel().0)).unwrap());
        std::fs::write(&path, "keep").unwrap();
        let e = ControlPath::open(&path, "sl-test", |_| Collect(channel().0)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
