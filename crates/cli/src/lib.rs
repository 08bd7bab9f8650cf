//! The process concerns every streamlib stage shares: parsing and the shared flag structs,
//! logging, signals, exit codes, man pages and completions, stdin/stdout as frame streams.
//! (The dataflow, threads, policies, pacing and the meter are the stage runtime's:
//! `sl-stage`.) A stage's `main` is one call:
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
pub mod control;
mod docs;
mod io;
mod policy;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use args::{
    Common, Delivery, EncodeArgs, FrameLimit, Names, Progress, Size, SourceArgs, StageFlags,
    key_value, one_of, parse_bitrate, parse_duration, parse_fps, pixel_format,
};
pub use docs::{answer_early, completions, man_page};
pub use io::{frame_input, frame_output, is_broken_pipe, stdin_is_terminal, stdout_takes_pages};
pub use policy::Policy;

/// Every stage this project builds, for SEE ALSO, `sl`'s completions and the installer.
pub const STAGES: [&str; 12] = [
    "sl",
    "sl-test",
    "sl-info",
    "sl-file",
    "sl-draw",
    "sl-hls",
    "sl-show",
    "sl-screen",
    "sl-cam",
    "sl-convert",
    "sl-composite",
    "sl-ml",
];

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

/// Signals this close together count as one request to stop: GNU `timeout` sends its SIGTERM
/// twice, to the program and then to its process group, microseconds apart.
const SAME_REQUEST: Duration = Duration::from_millis(500);

/// Install the signal handlers. [`run`] does this; call it directly only from tests or
/// programs that do not use [`run`].
///
/// The first SIGINT or SIGTERM sets the flag [`interrupted`] reads. A later one exits at once
/// with 130 (for a stage stuck in a blocking read), unless it came within [`SAME_REQUEST`] of
/// the first: then it is the same request, and the stage goes on finalising its output.
pub fn install_signal_handlers() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = interrupt_flag();
    for sig in [SIGINT, SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(flag));
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first: Option<Instant> = None;
            for _ in signals.forever() {
                match first {
                    None => first = Some(Instant::now()),
                    Some(t) if t.elapsed() >= SAME_REQUEST => {
                        signal_hook::low_level::exit(i32::from(exit::INTERRUPTED))
                    }
                    Some(_) => {}
                }
            }
        });
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
    // --man and --completions answer before parsing, so a stage's required arguments are not
    // asked for (`sl-draw --man` has no script to give)
    if let Some(code) = answer_early(A::command, std::env::args_os().skip(1)) {
        return ExitCode::from(code);
    }
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
    // for the tests that check every `--help` example parses as written
    if std::env::var_os("SL_PARSE_ONLY").is_some() {
        return ExitCode::SUCCESS;
    }
    let c = common(&args);
    init_logging(c.verbose, c.quiet);
    install_signal_handlers();
    let result = body(args);
    ExitCode::from(outcome(result))
}

/// A stage package's two entry points, from its `Args` (which flattens [`Common`] as
/// `common`; or give where it is: `stage_main!(Args, run, flags.common)` for a flattened
/// [`StageFlags`] `flags`) and its `run` function: `command()` (the command line, for man pages and
/// completions) and `main()` (what `src/main.rs` calls).
#[macro_export]
macro_rules! stage_main {
    ($args:ty, $run:path) => {
        $crate::stage_main!($args, $run, common);
    };
    // where the stage's Common is (`flags.common` for a flattened StageFlags)
    ($args:ty, $run:path, $($common:ident).+) => {
        /// The command line, for man pages and completions.
        pub fn command() -> clap::Command {
            <$args as clap::CommandFactory>::command()
        }

        /// Parse the command line, run the stage, exit with the stage's code.
        pub fn main() -> std::process::ExitCode {
            $crate::run(|a: &$args| &a.$($common).+, $run)
        }
    };
}

/// The exit code for a stage's result, printing the error if there is one.
pub fn outcome(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) if interrupted() => exit::INTERRUPTED,
        Ok(()) => exit::SUCCESS,
        Err(e) if is_broken_pipe(&e) => exit::SUCCESS,
        Err(e) => {
            let usage = e.chain().any(|c| c.is::<UsageError>());
            say(&format!("{}: error: {e:#}", program()));
            if usage {
                say(&format!("Try '{} --help' for more information.", program()));
                exit::USAGE
            } else if interrupted() {
                exit::INTERRUPTED
            } else {
                exit::FAILURE
            }
        }
    }
}

/// `1.5 MB`, `3.2 GB`: decimal units, as network and disk rates are quoted.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Write a line to stderr. Unlike `eprintln!`, a stderr that cannot be written (closed, a full
/// disk: `2>/dev/full`) is ignored rather than a panic.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_human() {
        use super::human_bytes;
        assert_eq!(human_bytes(999.0), "999 B");
        assert_eq!(human_bytes(1_500_000.0), "1.5 MB");
        assert_eq!(human_bytes(8_294_400.0 * 150.0), "1.2 GB");
    }
}
