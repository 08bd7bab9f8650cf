//! How `sl-ptp` hands its clock to the stages on the machine: a Unix stream socket on which it
//! writes one JSON [`Snapshot`] per line, at once on connect, on every change, and at least
//! once a second. Stages read it in a background thread ([`PtpClient`]) and turn it into PTP
//! time themselves from CLOCK_MONOTONIC, so reading the clock costs no round trip.
//!
//! Text lines make the socket easy to look at (`socat - UNIX:/run/streamlib/ptp`). A line is
//! at most [`MAX_LINE`] bytes; a longer one, or one that is not a snapshot, ends the connection
//! (the client then holds over).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::servo::{Counters, Mapping, State, holdover_growth};
use crate::{ClockError, mono_ns};

/// Where sl-ptp publishes unless told otherwise (`--socket`, `SL_PTP_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/streamlib/ptp";
/// Longest line accepted from the daemon.
pub const MAX_LINE: usize = 4096;

/// What the daemon publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: State,
    pub domain: u8,
    /// The master port followed (`clockid-port`).
    pub master: Option<String>,
    pub grandmaster: Option<String>,
    /// Local CLOCK_MONOTONIC to master time; none before the first lock.
    pub mapping: Option<Mapping>,
    /// Mean path delay to the master, ns.
    pub delay_ns: Option<f64>,
    /// From the master's Announce: TAI - UTC, and whether its timescale is PTP (TAI) or
    /// arbitrary (ptp4l with software timestamps sends the system clock's UTC: arbitrary).
    pub utc_offset: Option<i16>,
    pub ptp_timescale: Option<bool>,
    pub counters: Counters,
    pub pid: u32,
}

/// The daemon's side: accepts stages and sends them every snapshot.
#[derive(Debug)]
pub struct Publisher {
    path: PathBuf,
    clients: Arc<Mutex<Vec<UnixStream>>>,
    last: Arc<Mutex<String>>,
}

impl Publisher {
    /// Listen at `path` (its directory is created). A stale socket left by a dead daemon is
    /// replaced; a live one is an error.
    pub fn bind(path: &Path) -> Result<Publisher, ClockError> {
        let io = |e: std::io::Error| ClockError::Socket(path.to_path_buf(), e);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ClockError::AlreadyRunning(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        let clients: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let last: Arc<Mutex<String>> = Arc::default();
        let (c, l) = (Arc::clone(&clients), Arc::clone(&last));
        std::thread::Builder::new()
            .name("ptp-publish".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut s) = stream else { continue };
                    // A stage that stops reading must not stall the daemon.
                    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                    // Registered before the first snapshot goes out, under the clients' lock: a
                    // stage that has its first snapshot is one that dropping the publisher ends
                    // (pushing after the write let a drop in between miss it, and the stage
                    // believed in a daemon that was gone).
                    let mut clients = c.lock().expect("lock");
                    let line = l.lock().expect("lock").clone();
                    if !line.is_empty() && s.write_all(line.as_bytes()).is_err() {
                        continue;
                    }
                    clients.push(s);
                }
            })
            .map_err(io)?;
        Ok(Publisher {
            path: path.to_path_buf(),
            clients,
            last,
        })
    }

    /// Send `snap` to every connected stage; drop those that are gone.
    pub fn publish(&self, snap: &Snapshot) {
        let mut line = serde_json::to_string(snap).expect("snapshot serialises");
        line.push('\n');
        *self.last.lock().expect("lock") = line.clone();
        self.clients
            .lock()
            .expect("lock")
            .retain_mut(|s| s.write_all(line.as_bytes()).is_ok());
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        // stages see the end at once and hold over
        for s in self.clients.lock().expect("lock").drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[derive(Debug)]
struct Shared {
    snap: Snapshot,
    connected: bool,
}

/// A stage's view of the daemon: the latest snapshot, kept fresh by a background thread.
#[derive(Debug, Clone)]
pub struct PtpClient {
    shared: Arc<Mutex<Shared>>,
    path: PathBuf,
}

/// PTP time at one instant, with what it is worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PtpReading {
    pub state: State,
    /// None before the daemon's first lock.
    pub ptp_ns: Option<i64>,
    pub error_ns: Option<f64>,
    /// False once the daemon went away (the reading is then holdover from its last snapshot).
    pub daemon: bool,
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "line too long or cut short",
        ));
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
}

impl PtpClient {
    /// Connect to the daemon at `path` and wait (up to 2 s) for its first snapshot.
    pub fn connect(path: &Path) -> Result<PtpClient, ClockError> {
        let stream =
            UnixStream::connect(path).map_err(|e| ClockError::NoDaemon(path.to_path_buf(), e))?;
        let bad = |e: std::io::Error| ClockError::Socket(path.to_path_buf(), e);
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(bad)?;
        let mut reader = BufReader::new(stream);
        let line = read_line(&mut reader).map_err(bad)?.ok_or_else(|| {
            bad(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "the daemon closed the socket",
            ))
        })?;
        let snap: Snapshot = serde_json::from_str(&line)
            .map_err(|e| bad(std::io::Error::new(ErrorKind::InvalidData, e)))?;
        reader.get_ref().set_read_timeout(None).map_err(bad)?;
        let shared = Arc::new(Mutex::new(Shared {
            snap,
            connected: true,
        }));
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ptp-client".into())
            .spawn(move || {
                loop {
                    let snap = match read_line(&mut reader) {
                        Ok(Some(line)) => serde_json::from_str::<Snapshot>(&line).ok(),
                        _ => None,
                    };
                    let mut g = s.lock().expect("lock");
                    match snap {
                        Some(snap) => g.snap = snap,
                        None => {
                            log::warn!("the sl-ptp daemon went away: holding over");
                            g.connected = false;
                            return;
                        }
                    }
                }
            })
            .map_err(bad)?;
        Ok(PtpClient {
            shared,
            path: path.to_path_buf(),
        })
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().expect("lock").snap.clone()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// PTP time at local monotonic `mono`.
    pub fn reading_at(&self, mono: i64) -> PtpReading {
        let g = self.shared.lock().expect("lock");
        let mut mapping = g.snap.mapping;
        let mut state = g.snap.state;
        if !g.connected {
            if let Some(m) = &mut mapping {
                m.growth_ppb = holdover_growth(m.growth_ppb);
                state = State::Holdover;
            } else {
                state = State::Listening;
            }
        }
        PtpReading {
            state,
            ptp_ns: mapping.map(|m| m.ptp_at(mono)),
            error_ns: mapping.map(|m| m.error_at(mono)),
            daemon: g.connected,
        }
    }

    /// PTP time now.
    pub fn now(&self) -> PtpReading {
        self.reading_at(mono_ns())
    }
}
