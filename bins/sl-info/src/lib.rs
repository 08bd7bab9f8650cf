//! sl-info: report on a stream, or pass it through with a live meter. A [`Tap`] on the stage
//! runtime: it sees headers only, and with `--pass` the payloads go from pipe to pipe inside
//! the kernel.

use std::io::Write;

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
      sl-test -n 90 --fast | sl-info --json          # the same, as JSON\n  \
      sl-test -n 300 | sl-info --pass | sl-info      # a meter in the middle of a pipe\n\n\
      Exit status: 0 for a complete stream, 1 for a truncated or invalid one."
)]
pub struct Args {
    /// Copy the stream to stdout unchanged; the meter and the final report go to stderr.
    #[arg(long)]
    pass: bool,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
    /// The live meter is on by default with --pass (on a terminal).
    #[command(flatten)]
    progress: Progress,
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
}

impl Tap for Info {
    fn observe(&mut self, head: &MessageHead, payload: u64, wire: u64) -> anyhow::Result<()> {
        self.inspector.observe(head, payload, wire);
        Ok(())
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
        let report = self.inspector.report();
        let text = if self.json {
            report.to_json() + "\n"
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

fn run(args: Args) -> anyhow::Result<()> {
    let live = args.pass && !args.common.quiet;
    Stage::new(sl_cli::program())
        .progress(args.progress, live)
        .run_tap(
            Info {
                inspector: Inspector::new(),
                json: args.json,
                pass: args.pass,
                quiet: args.common.quiet,
            },
            args.pass,
        )
}
