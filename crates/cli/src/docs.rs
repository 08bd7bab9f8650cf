//! Man pages and shell completions, generated from the same clap definitions that parse the
//! command line, and answered before parsing (so a stage's required arguments are not asked
//! for). Both are rendered into memory first: a closed stdout (`--completions bash | head -c 1`)
//! is a quiet end, never a panic.

use std::ffi::OsString;
use std::io::Write;

use clap_complete::Shell;

use crate::exit;

/// The completion script for `shell`.
pub fn completions(mut cmd: clap::Command, shell: Shell) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    buf
}

/// Escape text for roff: backslashes, and a line that would start with a control character.
fn roff_text(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The man page: NAME on one line, SYNOPSIS, DESCRIPTION, OPTIONS, EXAMPLES (the help's
/// examples), EXIT STATUS and SEE ALSO.
pub fn man_page(cmd: clap::Command) -> Vec<u8> {
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let long = cmd
        .get_long_about()
        .map(|a| a.to_string())
        .unwrap_or_else(|| about.clone());
    // NAME is one line: the first sentence of the description
    let first = about.split(". ").next().unwrap_or("").trim_end_matches('.');
    let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
    let name = cmd.get_name().to_string();
    let examples = cmd.get_after_help().map(|h| h.to_string());
    let cmd = cmd.about(first).long_about(long).after_help(None::<&str>);
    let man = clap_mangen::Man::new(cmd.clone());
    let mut buf = Vec::new();
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = man.render_synopsis_section(&mut buf);
    let _ = man.render_description_section(&mut buf);
    let _ = man.render_options_section(&mut buf);
    if let Some(ex) = examples {
        let ex = ex.trim_start_matches("Examples:").trim_matches('\n');
        let _ = write!(buf, ".SH EXAMPLES\n.nf\n{}\n.fi\n", roff_text(ex));
    }
    let _ = write!(
        buf,
        ".SH \"EXIT STATUS\"\n.TP\n0\nSuccess, the clean end of the input stream, or a closed pipe downstream.\n\
         .TP\n1\nA runtime error: bad or truncated input, a failed device, file or network.\n\
         .TP\n2\nA usage error: an unknown flag, a bad value, a missing argument.\n\
         .TP\n130\nStopped by SIGINT or SIGTERM, after finalising the output.\n"
    );
    let others: Vec<String> = crate::STAGES
        .iter()
        .filter(|s| **s != name)
        .map(|s| format!("\\fB{s}\\fR(1)"))
        .collect();
    let _ = write!(buf, ".SH \"SEE ALSO\"\n{}\n", others.join(", "));
    let _ = man.render_version_section(&mut buf);
    buf
}

/// Write generated text to stdout; a closed pipe is fine.
fn emit(bytes: &[u8]) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => exit::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(_) => exit::FAILURE,
    }
}

/// If the arguments ask for `--man` or `--completions SHELL`, print it and return the exit
/// code; otherwise `None` and the command line is parsed as usual.
pub fn answer_early(
    cmd: impl Fn() -> clap::Command,
    args: impl Iterator<Item = OsString>,
) -> Option<u8> {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    // only flags before a `--` count
    let args = &args[..args.iter().position(|a| a == "--").unwrap_or(args.len())];
    if args.iter().any(|a| a == "--man") {
        return Some(emit(&man_page(cmd())));
    }
    let shell = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--completions" {
            Some(args.get(i + 1).cloned().unwrap_or_default())
        } else {
            a.strip_prefix("--completions=").map(str::to_string)
        }
    })?;
    match shell.parse::<Shell>() {
        Ok(sh) => Some(emit(&completions(cmd(), sh))),
        // let clap say what is wrong with the value
        Err(_) => None,
    }
}
