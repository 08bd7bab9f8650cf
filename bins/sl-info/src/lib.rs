//! sl-info: report on a stream, or pass it through with a live meter. A [`Tap`] on the stage
//! runtime: it sees headers only, and with `--pass` the payloads go from pipe to pipe inside
//! the kernel.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sl_cli::{Common, Progress};
use sl_inspect::Inspector;
use sl_stage::{Ending, Stage, Tap};
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
      sl-test -n 90 --fast | sl-info --json          # the same, as JSON\n  \
      sl-test -n 300 | sl-info --pass | sl-info      # a meter in the middle of a pipe\n\n\
      Exit status: 0 for a complete stream, 1 for a truncated or invalid one."
)]
pub struct Args {
    /// Read this file instead of stdin: a streamlib stream (`.slv`), or a media file, which
    /// is read through `sl-file FILE`.
    input: Option<PathBuf>,
    /// Copy the stream to stdout unchanged; the meter and the final report go to stderr.
    #[arg(long)]
    pass: bool,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
    /// The live meter is on by default with --pass (on a terminal).
    #[command(flatten)]
    progress: Progress,
    /// Latency is measured against this clock: with `--clock ptp` as PTP now minus each
    /// frame's ptp_time, otherwise as system now minus its capture time.
    #[command(flatten)]
    clock: sl_clock::ClockArgs,
    #[command(flatten)]
    common: Common,
}

sl_cli::stage_main!(Args, run);

/// The report, printed at the end whatever happened.
struct Info {
    inspector: Inspector,
    json: bool,
    pass: bool,
    quiet: bool,
    last_note: Instant,
    child: Option<Child>,
}

impl Tap for Info {
    fn observe(&mut self, head: &MessageHead, payload: u64, wire: u64) -> anyhow::Result<()> {
        self.inspector.observe(head, payload, wire);
        Ok(())
    }

    fn note(&mut self) -> Option<String> {
        if self.last_note.elapsed() < Duration::from_millis(250) {
            return None;
        }
        self.last_note = Instant::now();
        self.inspector.latency_line()
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        if let Ending::Failed(e) = &ending {
            if sl_cli::is_broken_pipe(e) {
                return Ok(());
            }
            if matches!(e.downcast_ref::<WireError>(), Some(WireError::Truncated(_)))
                || e.chain()
                    .any(|c| matches!(c.downcast_ref::<WireError>(), Some(WireError::Truncated(_))))
            {
                self.inspector.mark_truncated();
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let report = self.inspector.report();
        let text = if self.json {
            report.to_json() + "\n"
        } else if self.pass {
            // on stderr, next to other stages' output (and maybe another sl-info's report)
            report.to_text_labelled("sl-info (pass)")
        } else {
            report.to_text()
        };
        if self.pass {
            if !self.quiet {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("writing the report")?;
        }
        ending.into_result()
    }
}

/// The stream to inspect: stdin (`None`), a stream file, or a media file decoded by `sl-file`
/// (the child is returned to be waited for).
fn open_input(path: &Path) -> anyhow::Result<(sl_wire::Reader<File>, Option<Child>)> {
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
    let out = child.stdout.take().context("sl-file's stdout")?;
    let file = File::from(std::os::fd::OwnedFd::from(out));
    Ok((sl_wire::Reader::new(file)?, Some(child)))
}

fn run(args: Args) -> anyhow::Result<()> {
    let live = args.pass && !args.common.quiet;
    let (inputs, child) = match args.input.as_deref() {
        Some(path) => {
            let (reader, child) = open_input(path)?;
            (vec![reader], child)
        }
        None => (Vec::new(), None),
    };
    // Connect now, so a missing sl-ptp is reported before any frame is read.
    args.clock.ptp_now()?;
    let clock = Arc::new(args.clock);
    let inspector =
        Inspector::new().with_clock(move || (sl_clock::real_ns(), clock.ptp_now().ok().flatten()));
    Stage::new(sl_cli::program())
        .progress(args.progress, live)
        .inputs(inputs)
        .run_tap(
            Info {
                inspector,
                json: args.json,
                pass: args.pass,
                quiet: args.common.quiet,
                last_note: Instant::now(),
                child,
            },
            args.pass,
        )
}
