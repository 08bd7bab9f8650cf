//! sl: run a stage by its short name, and list the stages that are installed.
//!
//! Any program named `sl-NAME` next to `sl` or on PATH is a stage: `sl NAME ARGS...` runs it.
//! That is the whole plugin system (see docs/plugins.md).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use sl_cli::Common;

/// streamlib: small programs for live video, joined with pipes.
///
/// `sl NAME ARGS...` runs the stage `sl-NAME` with ARGS (found next to `sl` first, then on
/// PATH). Any program called `sl-something` is a stage, so third-party stages work the same.
#[derive(Parser, Debug)]
#[command(
    name = "sl",
    version,
    allow_external_subcommands = true,
    after_help = "Examples:\n  \
      sl --list                          # every stage found, plugins included\n  \
      sl test -p box | sl info --pass | sl show\n  \
      sl file talk.mp4 | sl draw overlay.rhai | sl hls out/"
)]
struct Args {
    /// List every stage found next to `sl` and on PATH.
    #[arg(short, long)]
    list: bool,
    /// Print the names of the stages this build has, one a line (sl_cli::STAGES: what
    /// scripts/install.sh installs), and exit.
    #[arg(long, hide = true)]
    stages: bool,
    #[command(subcommand)]
    stage: Option<StageCmd>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Subcommand, Debug)]
enum StageCmd {
    #[command(external_subcommand)]
    Run(Vec<OsString>),
}

fn main() -> ExitCode {
    // completions and the man page name every stage, so `sl <TAB>` offers them
    if let Some(code) = sl_cli::answer_early(with_stages, std::env::args_os().skip(1)) {
        return ExitCode::from(code);
    }
    sl_cli::run(|a: &Args| &a.common, run)
}

/// `sl`'s command line with a subcommand per built-in stage, for completions and the man
/// page (parsing goes through the external-subcommand catch-all, which also runs plugins).
fn with_stages() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Args::command();
    for full in sl_cli::STAGES {
        let Some(short) = full.strip_prefix("sl-") else {
            continue;
        };
        cmd = cmd.subcommand(
            clap::Command::new(short)
                .about(format!("run {full} (see `{full} --help`)"))
                .arg(
                    clap::Arg::new("args")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                ),
        );
    }
    cmd
}

fn run(args: Args) -> anyhow::Result<()> {
    match args.stage {
        Some(StageCmd::Run(argv)) => {
            let name = argv[0].to_string_lossy().into_owned();
            let stages = find_stages();
            let Some(path) = stages.get(&name).map(|s| s[0].clone()) else {
                let known: Vec<_> = stages.keys().cloned().collect();
                return Err(sl_cli::usage(format!(
                    "no stage `{name}`: there is no `sl-{name}` next to sl or on PATH \
                     (found: {})",
                    known.join(", ")
                )));
            };
            // exec: the stage replaces us, so signals, stdin/stdout and the exit code are
            // exactly the stage's own
            let err = Command::new(&path).args(&argv[1..]).exec();
            Err(anyhow::anyhow!("cannot run {}: {err}", path.display()))
        }
        None if args.stages => {
            let mut out = std::io::stdout().lock();
            for s in sl_cli::STAGES {
                writeln!(out, "{s}")?;
            }
            Ok(())
        }
        None if args.list => {
            let mut out = std::io::stdout().lock();
            let me = std::env::current_exe().ok();
            let home = me.as_deref().and_then(Path::parent);
            for (name, paths) in find_stages() {
                let origin = if paths[0].parent() == home {
                    "built-in"
                } else {
                    "plugin"
                };
                writeln!(out, "{name:<12} {origin:<8} {}", paths[0].display())?;
                for shadowed in &paths[1..] {
                    writeln!(
                        out,
                        "{:<12} {:<8} {} (shadowed)",
                        "",
                        "",
                        shadowed.display()
                    )?;
                }
            }
            Ok(())
        }
        None => {
            use clap::CommandFactory;
            Args::command().print_help()?;
            Ok(())
        }
    }
}

/// Every `sl-NAME` executable next to this program and on PATH, by NAME, in lookup order
/// (the first is the one `sl NAME` runs).
fn find_stages() -> BTreeMap<String, Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(Path::parent)
    {
        dirs.push(d.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut found: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut seen_dirs = Vec::new();
    for dir in dirs {
        let canon = dir.canonicalize().unwrap_or(dir.clone());
        if seen_dirs.contains(&canon) {
            continue;
        }
        seen_dirs.push(canon);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut here: Vec<(String, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let name = file.strip_prefix("sl-")?.to_string();
                // skip build artefacts such as sl-test.d or sl-test-0123abcd
                if name.is_empty() || name.contains('.') {
                    return None;
                }
                let meta = std::fs::metadata(e.path()).ok()?;
                (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| (name, e.path()))
            })
            .collect();
        here.sort();
        for (name, path) in here {
            found.entry(name).or_default().push(path);
        }
    }
    found
}
