//! sl-info: report on a stream, or pass it through with a live meter.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};

use anyhow::Context;
use clap::Parser;
use sl_cli::{Common, Meter};
use sl_inspect::Inspector;
use sl_wire::{MessageHead, WireError};

/// Inspect a stream: its streams, formats, frame count, measured rate, duration, bitrate,
/// timestamp gaps or reordering, and drops. With --pass, copy the stream to stdout unchanged
/// and show live fps and throughput on stderr, like `pv` for video.
#[derive(Parser, Debug)]
#[command(
    name = "sl-info",
    version,
    after_help = "Examples:\n  \
      sl-test -n 90 --fast | sl-info                 # report on stdout\n  \
      sl-info capture.slv                            # a stream file (a media file goes through sl-file)\n  \
      sl-file talk.mp4 | sl-info --json | jq .streams\n  \
      sl-cam | sl-info --pass | sl-hls out/          # a meter in the middle of a pipe\n\n\
      Exit status: 0 for a complete stream, 1 for a truncated or invalid one."
)]
struct Args {
    /// Read this file instead of stdin: a streamlib stream (`.slv`), or a media file, which
    /// is read through `sl-file FILE`.
    input: Option<PathBuf>,
    /// Copy the stream to stdout unchanged; the meter and the final report go to stderr.
    #[arg(long)]
    pass: bool,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
    /// With --pass: no live meter (the final report is still printed unless -q).
    #[arg(long)]
    no_progress: bool,
    /// Latency is measured against this clock: with `--clock ptp` as PTP now minus each
    /// frame's ptp_time, otherwise as system now minus its capture time.
    #[command(flatten)]
    clock: sl_clock::ClockArgs,
    #[command(flatten)]
    common: Common,
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

/// The stream to inspect: stdin, a stream file, or a media file decoded by `sl-file` (the
/// child is returned to be waited for).
fn open_input(path: Option<&Path>) -> anyhow::Result<(sl_wire::Reader<File>, Option<Child>)> {
    let Some(path) = path else {
        return Ok((sl_cli::frame_input()?, None));
    };
    let mut head = [0u8; 8];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("opening {}", path.display()))?;
    if n == 8 && head == sl_wire::MAGIC {
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        return Ok((sl_wire::Reader::new(f)?, None));
    }
    // not our format: let sl-file decode it, as `sl-file FILE | sl-info` would
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("sl-file")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("sl-file"));
    let mut child = std::process::Command::new(&sibling)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            sl_cli::usage(format!(
                "{} is not a streamlib stream and sl-file could not be started to read it ({e}): \
                 run `sl-file {} | sl-info`",
                path.display(),
                path.display()
            ))
        })?;
    let out = child.stdout.take().expect("piped stdout");
    let file = File::from(std::os::fd::OwnedFd::from(out));
    Ok((sl_wire::Reader::new(file)?, Some(child)))
}

fn run(args: Args) -> anyhow::Result<()> {
    let (mut reader, child) = open_input(args.input.as_deref())?;
    let mut writer = if args.pass {
        Some(sl_cli::frame_output()?)
    } else {
        None
    };
    // Connect now, so a missing sl-ptp is reported before any frame is read.
    args.clock.ptp_now()?;
    let clock = std::sync::Arc::new(args.clock);
    let c = std::sync::Arc::clone(&clock);
    let mut inspector =
        Inspector::new().with_clock(move || (sl_clock::real_ns(), c.ptp_now().ok().flatten()));
    let mut last_note = std::time::Instant::now();
    let mut meter = Meter::new(
        "sl-info",
        args.pass && !args.no_progress && !args.common.quiet,
    );
    let result: anyhow::Result<()> = (|| {
        loop {
            // With --pass, payloads are spliced from stdin to stdout inside the kernel; the
            // inspector only needs the headers.
            let (head, payload, wire) = match writer.as_mut() {
                Some(w) => match reader.forward(w)? {
                    Some(forwarded) => forwarded,
                    None => break,
                },
                // only headers matter for the report: payloads go to /dev/null unread
                None => match reader.next_head_skipping_payload()? {
                    Some(skipped) => skipped,
                    None => break,
                },
            };
            inspector.observe(&head, payload, wire);
            if matches!(head, MessageHead::Video { .. } | MessageHead::Packet { .. }) {
                if last_note.elapsed() >= std::time::Duration::from_millis(250) {
                    last_note = std::time::Instant::now();
                    if let Some(line) = inspector.latency_line() {
                        meter.set_note(line);
                    }
                }
                meter.frame(wire);
            } else {
                meter.bytes(wire);
            }
            if sl_cli::interrupted() {
                break;
            }
        }
        Ok(())
    })();
    meter.finish(false);
    let truncated = matches!(
        result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<WireError>()),
        Some(WireError::Truncated(_))
    );
    if truncated {
        inspector.mark_truncated();
    }
    if let Err(e) = &result
        && sl_cli::is_broken_pipe(e)
    {
        return Ok(());
    }
    if let Some(w) = writer.as_mut() {
        // upstream truncated or we were interrupted: leave our output marked complete only
        // when the input was
        if result.is_ok() {
            w.finish()?;
        }
    }
    if let Some(mut c) = child {
        let _ = c.wait();
    }
    let report = inspector.report();
    let text = if args.json {
        report.to_json() + "\n"
    } else if args.pass {
        // on stderr, next to other stages' output (and maybe another sl-info's report)
        report.to_text_labelled("sl-info (pass)")
    } else {
        report.to_text()
    };
    if args.pass {
        if !args.common.quiet {
            // not eprint!, which panics when stderr cannot be written (`2>/dev/full`)
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .context("writing the report")?;
        out.flush()?;
    }
    result
}
