//! Clocks for streamlib: how a stage stamps the frames it makes, and the PTP (IEEE 1588)
//! slave behind `sl-ptp`.
//!
//! - [`msg`]: the PTPv2 messages of the E2E delay mechanism, parsed defensively.
//! - [`servo`]: the slave as a pure state machine (best master, delay, offset and rate,
//!   outliers, jumps, holdover). It never adjusts a clock: it yields a mapping from
//!   CLOCK_MONOTONIC to the master's time.
//! - [`net`]: the daemon's sockets (UDP 319/320, IPv4 multicast, kernel receive timestamps).
//! - [`publish`]: the Unix socket on which the daemon publishes its mapping to stages.
//! - [`ClockArgs`]: the `--clock system|ptp|system-ptp` flag every source stage flattens, and
//!   [`ClockArgs::stamp`], the one call that stamps a frame.
//!
//! Why an own implementation and not statime 0.4: statime's `Port` is a typestate machine
//! driven through timers, a `Clock` trait (that expects to be stepped and slewed) and
//! `rand`, with BMCA run by a `PtpInstance`; wiring it to std sockets is as much code as the
//! five messages a slave needs, and its behaviour on the bad inputs this project must
//! document (other domains, two masters, jumps) would be statime's, not ours to test.

use std::path::PathBuf;
use std::sync::OnceLock;

use sl_frame::FrameInfo;

#[cfg(target_os = "linux")]
pub mod daemon;
pub mod msg;
#[cfg(target_os = "linux")]
pub mod net;
pub mod publish;
pub mod servo;

pub use publish::{DEFAULT_SOCKET, PtpClient, PtpReading, Publisher, Snapshot};
pub use servo::{Mapping, Slave, State};

/// What can go wrong with a clock.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error(
        "no sl-ptp daemon answers at {0} ({1}): start one as root (`sudo sl-ptp -i eth0`), point \
         SL_PTP_SOCKET or --ptp-socket at it, or stamp with --clock system"
    )]
    NoDaemon(PathBuf, #[source] std::io::Error),
    #[error("the PTP socket {0}: {1}")]
    Socket(PathBuf, #[source] std::io::Error),
    #[error("another sl-ptp already publishes at {0}: stop it, or give this one --socket")]
    AlreadyRunning(PathBuf),
    #[error("{0}")]
    Net(String),
    #[error("{0}")]
    BadEnv(String),
}

/// `given`, else `$SL_PTP_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path(given: Option<&std::path::Path>) -> PathBuf {
    match (given, std::env::var_os("SL_PTP_SOCKET")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(e)) if !e.is_empty() => PathBuf::from(e),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

fn clock_ns(id: rustix::time::ClockId) -> i64 {
    let t = rustix::time::clock_gettime(id);
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// CLOCK_MONOTONIC in ns: what PTP time is mapped from (it never steps).
pub fn mono_ns() -> i64 {
    clock_ns(rustix::time::ClockId::Monotonic)
}

/// CLOCK_REALTIME in ns since the Unix epoch.
pub fn real_ns() -> i64 {
    clock_ns(rustix::time::ClockId::Realtime)
}

/// CLOCK_REALTIME and CLOCK_MONOTONIC read as close together as two calls allow:
/// (realtime, monotonic at the same instant).
pub fn real_and_mono() -> (i64, i64) {
    let m0 = mono_ns();
    let r = real_ns();
    let m1 = mono_ns();
    (r, m0 + (m1 - m0) / 2)
}

/// Which clock stamps the frames a stage makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClockKind {
    /// The system clock: capture time only, no ptp_time.
    #[default]
    System,
    /// Capture time, and ptp_time from the sl-ptp daemon on this machine.
    Ptp,
    /// Trust the system clock as PTP time: for machines where linuxptp's phc2sys already
    /// steers it. ptp_time = system clock + --tai-offset.
    SystemPtp,
}

/// The clock flags every source stage shares (flatten into its clap struct).
#[derive(clap::Args, Debug, Default)]
pub struct ClockArgs {
    /// Clock that stamps frames: system (capture time only), ptp (also ptp_time, from the
    /// sl-ptp daemon), system-ptp (the system clock is already PTP-steered, e.g. by phc2sys).
    /// Default: $SL_CLOCK, else system.
    #[arg(long = "clock", value_enum, value_name = "CLOCK")]
    pub clock: Option<ClockKind>,
    /// Socket of the sl-ptp daemon, for --clock ptp. Default: $SL_PTP_SOCKET, else
    /// /run/streamlib/ptp.
    #[arg(long, value_name = "PATH")]
    pub ptp_socket: Option<PathBuf>,
    /// With --clock system-ptp: seconds added to the system clock (UTC) to get PTP time, 37
    /// (TAI - UTC) for a PTP timescale; 0 when the grandmaster's timescale is the system time.
    #[arg(long, default_value_t = 37, allow_negative_numbers = true)]
    pub tai_offset: i64,
    #[arg(skip)]
    client: OnceLock<Result<PtpClient, String>>,
    #[arg(skip)]
    warned: std::sync::atomic::AtomicBool,
}

impl ClockArgs {
    /// Stamp a frame made now: its capture time, and its PTP time if this clock has one.
    ///
    /// With `--clock ptp` the first call connects to the daemon and fails, with a message
    /// saying what to do, when none runs. Before the daemon's first lock frames get no
    /// ptp_time (warned once); in holdover they get its extrapolated time.
    pub fn stamp(&self, info: &mut FrameInfo) -> Result<(), ClockError> {
        let (real, mono) = real_and_mono();
        self.stamp_with(info, real, mono)
    }

    /// Stamp a frame captured at system time `capture_ns` (a driver's timestamp, or a time
    /// read before a slow grab), with the PTP time of that same instant.
    pub fn stamp_at(&self, info: &mut FrameInfo, capture_ns: i64) -> Result<(), ClockError> {
        let (real, mono) = real_and_mono();
        self.stamp_with(info, capture_ns, mono - (real - capture_ns))
    }

    fn stamp_with(&self, info: &mut FrameInfo, real: i64, mono: i64) -> Result<(), ClockError> {
        info.capture_time_ns = Some(real);
        info.ptp_time_ns = match self.kind()? {
            ClockKind::System => None,
            ClockKind::SystemPtp => Some(real + self.tai_offset * 1_000_000_000),
            ClockKind::Ptp => {
                let r = self.client()?.reading_at(mono);
                if r.ptp_ns.is_none()
                    && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    log::warn!(
                        "sl-ptp is {} and has not locked yet: frames carry no PTP time until it does",
                        r.state.name()
                    );
                }
                r.ptp_ns
            }
        };
        Ok(())
    }

    /// PTP time now, if this clock has one (for sinks measuring latency). Connects on the
    /// first call like [`ClockArgs::stamp`].
    pub fn ptp_now(&self) -> Result<Option<i64>, ClockError> {
        Ok(match self.kind()? {
            ClockKind::System => None,
            ClockKind::SystemPtp => Some(real_ns() + self.tai_offset * 1_000_000_000),
            ClockKind::Ptp => self.client()?.now().ptp_ns,
        })
    }

    /// The clock asked for: `--clock`, else `$SL_CLOCK`, else system.
    pub fn kind(&self) -> Result<ClockKind, ClockError> {
        if let Some(k) = self.clock {
            return Ok(k);
        }
        match std::env::var("SL_CLOCK") {
            Ok(v) if !v.is_empty() => {
                <ClockKind as clap::ValueEnum>::from_str(&v, true).map_err(|_| {
                    ClockError::BadEnv(format!(
                        "SL_CLOCK={v} is not a clock: use system, ptp or system-ptp"
                    ))
                })
            }
            _ => Ok(ClockKind::System),
        }
    }

    /// The daemon's socket: `--ptp-socket`, else `$SL_PTP_SOCKET`, else the default.
    pub fn socket(&self) -> PathBuf {
        socket_path(self.ptp_socket.as_deref())
    }

    fn client(&self) -> Result<&PtpClient, ClockError> {
        match self
            .client
            .get_or_init(|| PtpClient::connect(&self.socket()).map_err(|e| e.to_string()))
        {
            Ok(c) => Ok(c),
            Err(e) => Err(ClockError::Net(e.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        clock: ClockArgs,
    }

    #[test]
    fn system_stamps_capture_time_only_and_system_ptp_adds_the_offset() {
        let cli = Cli::parse_from(["x", "--clock", "system"]);
        let mut info = FrameInfo::default();
        let before = real_ns();
        cli.clock.stamp(&mut info).unwrap();
        let c = info.capture_time_ns.unwrap();
        assert!(c >= before && c <= real_ns());
        assert_eq!(info.ptp_time_ns, None);

        let cli = Cli::parse_from(["x", "--clock", "system-ptp", "--tai-offset", "37"]);
        cli.clock.stamp_at(&mut info, 1_000).unwrap();
        assert_eq!(info.capture_time_ns, Some(1_000));
        assert_eq!(info.ptp_time_ns, Some(37_000_001_000));
    }

    #[test]
    fn ptp_without_a_daemon_is_a_clear_error() {
        let cli = Cli::parse_from(["x", "--clock", "ptp", "--ptp-socket", "/nonexistent/sl-ptp"]);
        let err = cli.clock.stamp(&mut FrameInfo::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no sl-ptp daemon answers at /nonexistent/sl-ptp"),
            "{msg}"
        );
        assert!(msg.contains("--clock system"), "{msg}");
    }

    #[test]
    fn stages_read_a_daemon_mapping() {
        let dir = std::env::temp_dir().join(format!("sl-clock-test-{}", std::process::id()));
        let path = dir.join("ptp.sock");
        let publisher = Publisher::bind(&path).unwrap();
        let mono = mono_ns();
        let snap = Snapshot {
            state: State::Slave,
            domain: 0,
            master: Some("x".into()),
            grandmaster: None,
            mapping: Some(Mapping {
                anchor_mono_ns: mono,
                anchor_ptp_ns: 5_000_000_000,
                rate_ppb: 0.0,
                error_ns: 100.0,
                growth_ppb: 0.0,
            }),
            delay_ns: Some(1.0),
            utc_offset: None,
            ptp_timescale: None,
            counters: Default::default(),
            pid: 1,
        };
        publisher.publish(&snap);
        // a second daemon on the same socket is refused
        assert!(matches!(
            Publisher::bind(&path),
            Err(ClockError::AlreadyRunning(_))
        ));
        let cli = Cli::parse_from([
            "x",
            "--clock",
            "ptp",
            "--ptp-socket",
            path.to_str().unwrap(),
        ]);
        let mut info = FrameInfo::default();
        cli.clock.stamp(&mut info).unwrap();
        let p = info.ptp_time_ns.unwrap();
        assert!(
            p >= 5_000_000_000 && p - 5_000_000_000 < 1_000_000_000,
            "{p}"
        );
        // the daemon goes away: its last mapping goes on, as holdover
        let client = PtpClient::connect(&path).unwrap();
        drop(publisher);
        let t = std::time::Instant::now();
        while client.now().daemon {
            assert!(t.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let r = client.now();
        assert_eq!(r.state, State::Holdover);
        assert!(r.ptp_ns.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
