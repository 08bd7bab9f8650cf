//! sl-ptp: the PTP slave daemon (one per machine, like ptp4l), or a look at its state.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sl_cli::Common;
use sl_clock::{PtpClient, real_and_mono, socket_path};

/// Follow a PTP (IEEE 1588) master on the network and publish its time to the streamlib
/// stages on this machine (`--clock ptp`), never touching the system clock. Needs root for
/// UDP ports 319 and 320. With --status, print the running daemon's state instead.
#[derive(Parser, Debug)]
#[command(
    name = "sl-ptp",
    version,
    after_help = "Examples:\n  \
      sudo sl-ptp -i eth0 &                          # follow the best master on eth0\n  \
      sl-ptp --status                                # state, master, offset from the system clock, error\n  \
      sl-test --clock ptp | sl-info                  # frames stamped with the master's time\n\n\
      The daemon publishes JSON lines on a Unix socket (default /run/streamlib/ptp, or\n\
      SL_PTP_SOCKET). States: listening, uncalibrated, slave (locked), holdover.\n\
      Exit status: 0 on SIGINT/SIGTERM after a clean stop (130), 1 on a network error;\n\
      --status exits 1 when no daemon runs."
)]
struct Args {
    /// Network interface to listen on (default: the first one up with an IPv4 address).
    #[arg(short, long)]
    interface: Option<String>,
    /// PTP domain to follow.
    #[arg(short, long, default_value_t = 0)]
    domain: u8,
    /// Unix socket to publish on. Default: $SL_PTP_SOCKET, else /run/streamlib/ptp.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the running daemon's state and exit.
    #[arg(long)]
    status: bool,
    /// With --status: as JSON (with `ptp_now_ns` and `system_now_ns` read together).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.status {
        return status(&args);
    }
    sl_clock::daemon::run(
        args.interface.as_deref(),
        args.domain,
        &socket_path(args.socket.as_deref()),
        sl_cli::interrupted,
    )?;
    Ok(())
}

fn status(args: &Args) -> anyhow::Result<()> {
    let client = PtpClient::connect(&socket_path(args.socket.as_deref()))?;
    let snap = client.snapshot();
    let (real, mono) = real_and_mono();
    let r = client.reading_at(mono);
    if args.json {
        let mut v = serde_json::to_value(&snap)?;
        v["ptp_now_ns"] = serde_json::json!(r.ptp_ns);
        v["system_now_ns"] = serde_json::json!(real);
        v["error_now_ns"] = serde_json::json!(r.error_ns);
        out(&format!("{v}\n"))?;
        return Ok(());
    }
    let mut o = format!("state: {}\n", snap.state.name());
    if let Some(m) = &snap.master {
        o += &format!("master: {m}\n");
    }
    if let Some(g) = &snap.grandmaster {
        o += &format!("grandmaster: {g}\n");
    }
    if let (Some(p), Some(e)) = (r.ptp_ns, r.error_ns) {
        o += &format!(
            "ptp - system clock: {:+.6} s (error estimate {:.1} us)\n",
            (p - real) as f64 / 1e9,
            e / 1e3
        );
    }
    if let Some(d) = snap.delay_ns {
        o += &format!("path delay: {:.1} us\n", d / 1e3);
    }
    if let Some(m) = &snap.mapping {
        o += &format!("rate: {:+.3} ppm\n", m.rate_ppb / 1e3);
    }
    out(&o)?;
    Ok(())
}

fn out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()
}
