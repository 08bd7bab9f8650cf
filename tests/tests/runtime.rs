//! What the stage runtime promises every stage: unknown message kinds pass through filters
//! untouched, a closed pipe downstream is a quiet success, `--man` and `--completions` work
//! without a stage's required arguments and never panic, every `--help` example parses as
//! written, hostile durations are a usage error, and the installer puts stages, man pages and
//! completions where shells and `man` find them.

use std::process::{Command, Stdio};

// every stage this project builds: the list SEE ALSO, `sl` and the installer use
use sl_cli::STAGES;
use sl_e2e::{Pipeline, bin, decode, run_cmd, scratch_dir};
use sl_wire::{Message, UnknownMessage, Writer};

/// A finished stream from sl-test with a message of a kind this version does not know
/// (0x70) after the stream description and another between two frames.
fn stream_with_unknown_kinds() -> (Vec<u8>, Vec<UnknownMessage>) {
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "3", "-s", "32x24"])
        .run();
    out.assert_success();
    let msgs = out.messages();
    let unknown = vec![
        UnknownMessage {
            kind: 0x70,
            flags: 0x02,
            stream: 0,
            header: vec![1, 2, 3, 4],
            payload: b"from a later version".to_vec(),
        },
        UnknownMessage {
            kind: 0x71,
            flags: 0,
            stream: 7,
            header: vec![],
            payload: vec![0; 70_000],
        },
    ];
    let mut w = Writer::new(Vec::new()).unwrap();
    let mut frames = 0;
    for m in &msgs {
        w.write_message(m).unwrap();
        match m {
            Message::Stream { .. } => w
                .write_message(&Message::Unknown(unknown[0].clone()))
                .unwrap(),
            Message::Video { .. } => {
                frames += 1;
                if frames == 2 {
                    w.write_message(&Message::Unknown(unknown[1].clone()))
                        .unwrap();
                }
            }
            _ => {}
        }
    }
    (w.get_ref().clone(), unknown)
}

fn unknowns(msgs: &[Message]) -> Vec<UnknownMessage> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Unknown(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn unknown_message_kinds_pass_through_every_filter_untouched() {
    let (input, expected) = stream_with_unknown_kinds();
    let dir = scratch_dir("runtime-unknown");
    let script = dir.join("box.rhai");
    std::fs::write(
        &script,
        "fn draw(c, ctx) { c.fill_rect(1, 1, 4, 4, \"red\"); }\n",
    )
    .unwrap();
    let filters: Vec<(&str, Vec<&str>)> = vec![
        ("sl-info", vec!["--pass", "-q"]),
        ("sl-draw", vec![script.to_str().unwrap()]),
        ("sl-draw", vec![script.to_str().unwrap(), "-f", "i420"]),
        ("sl-convert", vec!["-f", "i420", "-s", "32x16"]),
    ];
    for (stage, args) in filters {
        let out = Pipeline::new().stdin(input.clone()).sl(stage, &args).run();
        out.assert_success();
        let msgs = out.messages();
        assert_eq!(unknowns(&msgs), expected, "{stage} {args:?}");
        // in their place: the first right after the stream description
        let i = msgs
            .iter()
            .position(|m| matches!(m, Message::Unknown(_)))
            .unwrap();
        assert!(
            matches!(msgs[i - 1], Message::Stream { .. }),
            "{stage}: {:?}",
            msgs[i - 1]
        );
        assert_eq!(out.frames().len(), 3, "{stage}");
    }
    // a sink in the middle of a pipe copies them too (sl-show --pass needs a display: its
    // tee is the runtime's, tested here through sl-info's report of the pass-through)
    let out = Pipeline::new()
        .stdin(input.clone())
        .sl("sl-info", &["--json"])
        .run();
    out.assert_success();
    assert_eq!(out.json()["ending"], "clean", "{}", out.stdout_str());
}

/// `STAGE ARGS | head -c 1000`: the stage exits 0 and prints nothing.
fn assert_quiet_on_broken_pipe(stage: &str, args: &[&str], stdin: Option<Vec<u8>>) {
    let mut p = Pipeline::new();
    if let Some(bytes) = stdin {
        p = p.stdin(bytes);
    }
    let out = p.sl(stage, args).cmd("head", &["-c", "1000"]).run();
    let s = out.stage(0);
    assert_eq!(
        s.code,
        Some(0),
        "{stage} {args:?} exited {:?} (signal {:?}) on a closed pipe; stderr: {}",
        s.code,
        s.signal,
        s.stderr
    );
    assert_eq!(s.stderr, "", "{stage} {args:?} printed on a closed pipe");
    assert_eq!(out.stdout.len(), 1000, "{stage} {args:?}");
}

#[test]
fn a_closed_pipe_downstream_is_a_quiet_success_for_every_stage() {
    let dir = scratch_dir("runtime-broken-pipe");
    let script = dir.join("box.rhai");
    std::fs::write(
        &script,
        "fn draw(c, ctx) { c.fill_rect(1, 1, 4, 4, \"red\"); }\n",
    )
    .unwrap();
    let script = script.to_str().unwrap();
    // an endless or long source, so the stage is still writing when `head` leaves
    let long = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "200", "-s", "320x240"])
        .run();
    long.assert_success();
    let mkv = dir.join("in.mkv");
    Pipeline::new()
        .stdin(long.stdout.clone())
        .sl("sl-file", &["-o", mkv.to_str().unwrap()])
        .run()
        .assert_success();
    assert_quiet_on_broken_pipe("sl-test", &["--fast"], None);
    assert_quiet_on_broken_pipe("sl-test", &["-r", "1000"], None);
    assert_quiet_on_broken_pipe("sl-info", &["--pass"], Some(long.stdout.clone()));
    assert_quiet_on_broken_pipe("sl-draw", &[script, "-s", "320x240", "--fast"], None);
    assert_quiet_on_broken_pipe("sl-draw", &[script], Some(long.stdout.clone()));
    assert_quiet_on_broken_pipe("sl-file", &[mkv.to_str().unwrap()], None);
    // libav writes stdout itself: its AVERROR(EPIPE) must reach sl-cli as a broken pipe
    assert_quiet_on_broken_pipe(
        "sl-file",
        &["-o", "-", "--container", "nut"],
        Some(long.stdout.clone()),
    );
    assert_quiet_on_broken_pipe(
        "sl-file",
        &["-o", "-", "--container", "mpegts"],
        Some(long.stdout.clone()),
    );
    assert_quiet_on_broken_pipe(
        "sl-cam",
        &["--fake", "yuyv:320x240@30", "-n", "200", "-q"],
        None,
    );
}

#[test]
fn man_and_completions_work_without_required_arguments_and_never_panic() {
    for stage in STAGES {
        let (code, man, err) = run_cmd(&bin(stage), &["--man"]);
        assert_eq!(code, Some(0), "{stage} --man: {err}");
        assert!(man.contains("\n.TH "), "{stage} --man: {man}");
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "EXAMPLES",
            "\"EXIT STATUS\"",
            "\"SEE ALSO\"",
        ] {
            assert!(
                man.contains(&format!(".SH {section}")),
                "{stage} --man lacks {section}"
            );
        }
        // NAME is one line of text: `sl-x \- what it does`
        let name = man.split(".SH NAME\n").nth(1).unwrap();
        let name = name.split(".SH SYNOPSIS").next().unwrap();
        let text: Vec<&str> = name.lines().filter(|l| !l.starts_with('.')).collect();
        assert_eq!(text.len(), 1, "{stage} NAME: {name}");
        assert!(
            text[0].starts_with(&format!("{} \\- ", stage.replace('-', "\\-"))),
            "{stage}: {name}"
        );
        for shell in ["bash", "zsh", "fish"] {
            let (code, script, err) = run_cmd(&bin(stage), &["--completions", shell]);
            assert_eq!(code, Some(0), "{stage} --completions {shell}: {err}");
            assert!(script.contains(stage), "{stage} {shell}");
            // a closed pipe after one byte: no panic, exit 0
            let out = Pipeline::new()
                .sl(stage, &["--completions", shell])
                .cmd("head", &["-c", "1"])
                .run();
            assert_eq!(out.stage(0).code, Some(0), "{stage}: {:?}", out.stage(0));
            assert!(
                !out.stage(0).stderr.contains("panicked"),
                "{}",
                out.stage(0).stderr
            );
        }
    }
    // values are completed, not file names: patterns, formats, the stages of `sl`
    let (_, bash, _) = run_cmd(&bin("sl-test"), &["--completions", "bash"]);
    assert!(
        bash.contains("bars gradient box counter noise solid"),
        "{bash}"
    );
    assert!(bash.contains("rgba bgra rgb24 gray8 i420 nv12"), "{bash}");
    let (_, bash, _) = run_cmd(&bin("sl"), &["--completions", "bash"]);
    for s in [
        "test", "info", "file", "draw", "hls", "show", "screen", "cam",
    ] {
        assert!(bash.contains(s), "sl's completions lack {s}");
    }
}

/// Split a shell word list (no expansions; single and double quotes).
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[test]
fn every_help_example_parses_as_written() {
    let mut checked = 0;
    for stage in STAGES {
        let (code, help, err) = run_cmd(&bin(stage), &["--help"]);
        assert_eq!(code, Some(0), "{stage} --help: {err}");
        let examples = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("{stage} --help has no examples"));
        for line in examples
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
        {
            let line = line.split(" # ").next().unwrap().trim();
            for cmd in line.split('|') {
                // `< file` and `> file` redirections are the shell's
                let cmd = cmd.split(['<', '>']).next().unwrap();
                let words = shell_words(cmd);
                let Some(program) = words.first() else {
                    continue;
                };
                // other programs, and stages not built yet (sl-ml, sl-net)
                if !STAGES.contains(&program.as_str()) {
                    continue;
                }
                let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
                let out = Command::new(bin(program))
                    .args(&args)
                    .env("SL_PARSE_ONLY", "1")
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "`{line}` in {stage} --help: {program} {args:?} does not parse: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} example commands found");
}

#[test]
fn durations_past_u64_are_a_usage_error_not_a_panic() {
    let huge = "18446744073709551616s";
    let dir = scratch_dir("runtime-durations");
    let script = dir.join("x.rhai");
    std::fs::write(&script, "fn draw(c, ctx) {}\n").unwrap();
    let s = script.to_str().unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("sl-test", vec!["-t", huge]),
        ("sl-draw", vec![s, "-t", huge]),
        ("sl-draw", vec![s, "--time-limit", huge]),
        ("sl-file", vec!["x.mp4", "-t", huge]),
        ("sl-file", vec!["x.mp4", "--start", huge]),
        ("sl-hls", vec!["out", "-t", huge]),
    ];
    for (stage, args) in cases {
        let (code, _, err) = run_cmd(&bin(stage), &args);
        assert_eq!(code, Some(2), "{stage} {args:?}: {err}");
        assert!(err.contains("out of range"), "{stage} {args:?}: {err}");
        assert!(!err.contains("panicked"), "{stage}: {err}");
    }
}

#[test]
fn an_unwritable_stderr_is_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(bin("sl-info"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(full)
        .status()
        .unwrap();
    // an empty input is an error (exit 1); what matters is no panic (101)
    assert_eq!(out.code(), Some(1));
}

#[test]
fn install_puts_stages_man_pages_and_completions_under_a_prefix() {
    let prefix = scratch_dir("runtime-install");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .arg(&prefix)
        .env("SL_NO_BUILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stage in STAGES {
        let exe = prefix.join("bin").join(stage);
        assert!(exe.is_file(), "{}", exe.display());
        let man =
            std::fs::read_to_string(prefix.join(format!("share/man/man1/{stage}.1"))).unwrap();
        assert!(man.contains(".SH EXAMPLES"), "{stage}.1");
        assert!(
            prefix
                .join(format!("share/bash-completion/completions/{stage}"))
                .is_file()
        );
        assert!(
            prefix
                .join(format!("share/zsh/site-functions/_{stage}"))
                .is_file()
        );
        assert!(
            prefix
                .join(format!("share/fish/vendor_completions.d/{stage}.fish"))
                .is_file()
        );
    }
    // the installed sl finds the installed stages
    let (code, list, err) = run_cmd(&prefix.join("bin/sl"), &["--list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(list.contains("test") && list.contains("built-in"), "{list}");
}

#[test]
fn decode_helper_reads_unknown_kinds() {
    let (input, expected) = stream_with_unknown_kinds();
    assert_eq!(unknowns(&decode(&input).unwrap()), expected);
}

#[test]
fn the_meter_prints_no_live_lines_into_a_log_and_reads_like_ffmpeg() {
    // stderr is a pipe here, not a terminal: --progress draws no 0.5 s lines, --stats one line
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "-r",
                "60",
                "-n",
                "75",
                "-s",
                "64x48",
                "--progress",
                "--stats",
            ],
        )
        .run();
    out.assert_success();
    let err = &out.stage(0).stderr;
    assert_eq!(err.lines().count(), 1, "{err}");
    for field in [
        "frame=75",
        "fps=",
        "size=",
        "time=00:00:01.2",
        "bitrate=",
        "speed=",
    ] {
        assert!(err.contains(field), "no {field} in: {err}");
    }
    assert!(!err.contains('\r'), "{err}");
}

#[test]
fn duration_is_stream_time_since_the_first_frame_in_every_stage() {
    // a stream whose timestamps start at 100 s (the middle of a broadcast): sl-draw used to
    // compare --duration with absolute timestamps and stop at once
    let src = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "90", "-s", "32x24", "-r", "30"],
        )
        .run();
    src.assert_success();
    let mut w = Writer::new(Vec::new()).unwrap();
    for mut m in src.messages() {
        if let Some(info) = m.frame_info_mut() {
            info.pts += 3000;
        }
        w.write_message(&m).unwrap();
    }
    let input = w.get_ref().clone();
    let dir = scratch_dir("runtime-duration");
    let script = dir.join("x.rhai");
    std::fs::write(&script, "fn draw(c, ctx) {}\n").unwrap();
    for (stage, args) in [
        ("sl-draw", vec![script.to_str().unwrap(), "-t", "1s"]),
        ("sl-draw", vec![script.to_str().unwrap(), "-n", "30"]),
    ] {
        let out = Pipeline::new().stdin(input.clone()).sl(stage, &args).run();
        out.assert_success();
        let frames = out.frames();
        assert_eq!(frames.len(), 30, "{stage} {args:?}");
        assert_eq!(frames[0].info.pts, 3000);
    }
}

/// A binary's `main.rs` only calls into its library, and a library of a stage may have no
/// unit tests: those targets say `test = false`, so `cargo test` does not link an empty test
/// harness for each of them (a full link of the stage, about 10-30 s apiece on 2 cores). A
/// test added to such a target later would never run: this says where to switch it back on.
#[test]
fn no_target_with_unit_tests_is_left_out_of_cargo_test() {
    use std::path::{Path, PathBuf};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("tests")];
    for group in ["bins", "crates"] {
        dirs.extend(
            std::fs::read_dir(root.join(group))
                .unwrap()
                .map(|d| d.unwrap().path()),
        );
    }
    let untested = |t: &toml::Value| t.get("test").and_then(toml::Value::as_bool) == Some(false);
    let mut left_out = 0;
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let manifest: toml::Table = toml::from_str(&text).unwrap();
        // the sources of each target that says `test = false`
        let mut files: Vec<PathBuf> = Vec::new();
        if manifest.get("lib").is_some_and(untested) {
            left_out += 1;
            files.extend(
                rust_files(&dir.join("src"))
                    .into_iter()
                    .filter(|p| !p.ends_with("src/main.rs")),
            );
        }
        for bin in manifest
            .get("bin")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            if untested(bin) {
                left_out += 1;
                let path = bin
                    .get("path")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("src/main.rs");
                files.push(dir.join(path));
            }
        }
        for f in files {
            let src =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for mark in ["#[test]", "#[cfg(test)]", "#[tokio::test"] {
                assert!(
                    !src.contains(mark),
                    "{} has unit tests ({mark}), but {} says `test = false` for it: \
                     remove that line so `cargo test` runs them",
                    f.display(),
                    dir.join("Cargo.toml").display()
                );
            }
        }
    }
    // the binaries at least are left out (bins/*/Cargo.toml)
    assert!(left_out >= 15, "only {left_out} targets say `test = false`");
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}
