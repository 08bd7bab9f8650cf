//! Issue 11 item 12: inputs that used to panic (exit 101) get a usage error or a quiet end.
//! Durations past any sane length, generated text (completions, man pages) into a pipe that is
//! already closed, and a stderr that cannot be written.

use std::fs::File;
use std::process::{Command, Stdio};

use sl_e2e::{Pipeline, bin, run_cmd, scratch_dir};

/// Past u64 seconds: `Duration::from_secs_f64` panicked on it.
const HUGE: &str = "18446744073709551616s";

fn script() -> String {
    let dir = scratch_dir("no-panics");
    let path = dir.join("s.rhai");
    std::fs::write(&path, "fn draw(canvas, ctx) { }\n").unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn durations_past_any_stream_are_a_usage_error_not_a_panic() {
    let s = script();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("sl-test", vec!["-t", HUGE]),
        ("sl-test", vec!["--duration", "99999999999:00:00"]),
        ("sl-draw", vec![&s, "-t", HUGE]),
        ("sl-draw", vec![&s, "--time-limit", HUGE]),
        ("sl-file", vec!["in.mp4", "-t", HUGE]),
        ("sl-file", vec!["in.mp4", "--start", HUGE]),
    ];
    for (stage, args) in cases {
        let (code, stdout, stderr) = run_cmd(&bin(stage), &args);
        assert_eq!(code, Some(2), "{stage} {args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stage} {args:?} wrote to stdout");
        assert!(
            stderr.contains("out of range") && !stderr.contains("panicked"),
            "{stage} {args:?}: {stderr}"
        );
    }
}

/// Run `stage args` with its stdout a pipe whose reading end is already closed: every write
/// fails with EPIPE, which is what `| head -c 1` does to a long output, but every time.
fn into_closed_pipe(stage: &str, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(bin(stage))
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run stage");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completions_and_man_pages_into_a_closed_pipe_end_quietly() {
    let s = script();
    let stages: Vec<(&str, Vec<&str>)> = vec![
        ("sl", vec![]),
        ("sl-test", vec![]),
        ("sl-info", vec![]),
        ("sl-file", vec!["in.mp4"]),
        ("sl-draw", vec![&s]),
        ("sl-hls", vec!["out"]),
        ("sl-show", vec![]),
        ("sl-screen", vec![]),
        ("sl-cam", vec![]),
    ];
    for (stage, base) in stages {
        for extra in [&["--completions", "bash"][..], &["--man"][..]] {
            let mut args = base.clone();
            args.extend_from_slice(extra);
            let (code, stderr) = into_closed_pipe(stage, &args);
            assert_eq!(code, Some(0), "{stage} {args:?}: {stderr}");
            assert!(stderr.is_empty(), "{stage} {args:?}: {stderr}");
        }
    }
    // and the same through a real `head -c 1`, as a user types it
    let out = Pipeline::new()
        .sl("sl-file", &["in.mp4", "--completions", "bash"])
        .cmd("head", &["-c", "1"])
        .run();
    out.assert_success();
    assert_eq!(out.stdout.len(), 1);
}

#[test]
fn a_stderr_that_cannot_be_written_is_not_a_panic() {
    // nothing on stdin: the error cannot be printed, but the exit code still says it failed
    let out = Command::new(bin("sl-info"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::options().write(true).open("/dev/full").unwrap())
        .status()
        .expect("run sl-info");
    assert_eq!(out.code(), Some(1), "{out:?}");

    // a whole stream through `--pass`, its report to a full stderr: the frames still pass
    let dir = scratch_dir("no-panics-full");
    let stream = dir.join("s.slv");
    let made = Command::new(bin("sl-test"))
        .args(["--fast", "-n", "3", "-s", "64x48"])
        .stdout(File::create(&stream).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
    let out = Command::new(bin("sl-info"))
        .arg("--pass")
        .stdin(File::open(&stream).unwrap())
        .stdout(Stdio::piped())
        .stderr(File::options().write(true).open("/dev/full").unwrap())
        .output()
        .expect("run sl-info --pass");
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert_eq!(out.stdout, std::fs::read(&stream).unwrap());
}
