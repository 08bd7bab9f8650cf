//! What every streamlib stage does the same way. A stage's `main` is one call:
//!
//! ```no_run
//! # use clap::Parser;
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     common: sl_cli::Common,
//! }
//! fn main() -> std::process::ExitCode {
//!     sl_cli::run(|a: &Args| &a.common, |_args: Args| Ok(()))
//! }
//! ```
//!
//! [`run`] parses the command line (usage errors exit 2), answers `--completions` and
//! `--man`, sets up logging to stderr (`-v`, `-q`, `RUST_LOG`), installs SIGINT/SIGTERM
//! handling (the first signal sets [`interrupted`] so the stage can finalise its output, a
//! second one exits at once), and maps the outcome to the exit-code table in [`exit`]: a
//! closed pipe downstream anywhere in the error chain is a quiet success.

mod args;
mod io;
mod pace;
mod policy;
mod progress;
mod readahead;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub use args::{Common, FrameLimit, Size, parse_duration, parse_fps};
pub use io::{frame_input, frame_output, is_broken_pipe, stdin_is_terminal, stdout_is_pipe};
pub use pace::Pacer;
pub use policy::{Policy, Receiver, Sender, channel};
pub use progress::{Meter, human_bytes};
pub use readahead::{Next, ReadAhead, Step};

/// The exit codes every stage uses.
pub mod exit {
    /// Success, or the clean end of the input stream, or a closed pipe downstream.
    pub const SUCCESS: u8 = 0;
    /// A runtime error: bad input, a failed device or file, a truncated stream.
    pub const FAILURE: u8 = 1;
    /// A usage error: unknown flag, bad value, missing argument.
    pub const USAGE: u8 = 2;
    /// Stopped by SIGINT or SIGTERM (after finalising output).
    pub const INTERRUPTED: u8 = 130;
}

/// An error the user made on the command line: exits with [`exit::USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Return a [`UsageError`] from a stage.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn interrupt_flag() -> &'static Arc<AtomicBool> {
    INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// True once SIGINT or SIGTERM arrived: stop taking input, finalise output, return.
pub fn interrupted() -> bool {
    interrupt_flag().load(Ordering::Relaxed)
}

/// Install the signal handlers. [`run`] does this; call it directly only from tests or
/// programs that do not use [`run`].
pub fn install_signal_handlers() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = interrupt_flag();
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before the second registration sets it: a
        // second signal exits at once (for a stage stuck in a blocking read).
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(flag));
    }
}

/// The program name for messages (`sl-test`), from clap's command name.
static PROGRAM: OnceLock<String> = OnceLock::new();

pub fn program() -> &'static str {
    PROGRAM.get().map(String::as_str).unwrap_or("sl")
}

/// Run a stage: parse `A`, set up logging and signals, call `body`, map the outcome to an
/// exit code. `common` picks the shared flags out of `A`.
pub fn run<A, F>(common: fn(&A) -> &Common, body: F) -> ExitCode
where
    A: clap::Parser,
    F: FnOnce(A) -> anyhow::Result<()>,
{
    let cmd = A::command();
    let _ = PROGRAM.set(cmd.get_name().to_string());
    let args = match A::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let c = common(&args);
    if let Some(shell) = c.completions {
        let mut cmd = A::command();
        // Rendered to memory first: clap_complete writes with `write_all(..).expect(..)`, which
        // panics when stdout is a pipe closed early (`--completions bash | head -c 1`).
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, program(), &mut script);
        return print_generated(&script);
    }
    if c.man {
        let mut page = Vec::new();
        return match clap_mangen::Man::new(A::command()).render(&mut page) {
            Ok(()) => print_generated(&page),
            Err(_) => ExitCode::from(exit::FAILURE),
        };
    }
    init_logging(c.verbose, c.quiet);
    install_signal_handlers();
    let result = body(args);
    ExitCode::from(outcome(result))
}

/// Write generated text (completions, a man page) to stdout; a reader that stops early (a
/// closed pipe) is a quiet success, like every stage.
fn print_generated(text: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(exit::FAILURE),
    }
}

/// The exit code for a stage's result, printing the error if there is one.
pub fn outcome(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) if interrupted() => exit::INTERRUPTED,
        Ok(()) => exit::SUCCESS,
        Err(e) if is_broken_pipe(&e) => exit::SUCCESS,
        Err(e) => {
            let usage = e.chain().any(|c| c.is::<UsageError>());
            // Not eprintln!: it panics when stderr cannot be written (`2>/dev/full`), and a
            // stage that cannot report its error still exits with the code that says it failed.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}: error: {e:#}", program());
            if usage {
                let _ = writeln!(err, "Try '{} --help' for more information.", program());
                exit::USAGE
            } else if interrupted() {
                exit::INTERRUPTED
            } else {
                exit::FAILURE
            }
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|buf, record| {
        use std::io::Write;
        let lvl = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(buf, "{}: {lvl}: {}", program(), record.args())
    });
    b.target(env_logger::Target::Stderr);
    let _ = b.try_init();
}
