//! The foundation as a user meets it: sl-test, sl-info and sl in real pipes.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sl_e2e::{
    Pipeline, bin, decode, run_cmd, scratch_dir, video_frames, video_frames_written_to_file,
};
use sl_frame::convert::to_format;
use sl_frame::{PixelFormat, Rational};
use sl_wire::{ALL_STREAMS, Message};

/// A finished stream made by sl-test alone.
fn test_stream(args: &[&str]) -> Vec<u8> {
    let out = Pipeline::new().sl("sl-test", args).run();
    out.assert_success();
    assert_eq!(out.stage(0).stderr, "", "sl-test wrote to stderr");
    out.stdout
}

#[test]
fn three_stages_keep_frames_pixels_and_timestamps() {
    let input = test_stream(&["--fast", "-n", "30", "-s", "140x40", "-p", "bars"]);
    let out = Pipeline::new()
        .stdin(input.clone())
        .sl("sl-info", &["--pass", "-q"])
        .sl("sl-info", &["--pass", "-q"])
        .sl("sl-info", &["--pass", "-q"])
        .run();
    out.assert_success();
    for s in &out.stages {
        assert_eq!(s.stderr, "", "{} wrote to stderr", s.name);
    }
    // pass-through is byte-exact
    assert_eq!(out.stdout, input);
    let frames = out.frames();
    assert_eq!(frames.len(), 30);
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.info.frame_number, n as u64);
        assert_eq!(f.info.pts, n as i64);
        assert_eq!(f.info.time_base, Rational::new(1, 30));
        assert_eq!(f.info.source_id, "sl-test");
        assert!(f.info.capture_time_ns.is_some());
        assert_eq!(
            (f.width(), f.height(), f.format()),
            (140, 40, PixelFormat::Rgba)
        );
        // 75% bars: yellow second (x 20..40), blue last (x 120..140)
        assert_eq!(&f.row(0, 20)[30 * 4..30 * 4 + 4], &[191, 191, 0, 255]);
        assert_eq!(&f.row(0, 20)[130 * 4..130 * 4 + 4], &[0, 0, 191, 255]);
    }
}

#[test]
fn every_pixel_format_carries_the_pattern() {
    for fmt in ["rgba", "bgra", "rgb24", "i420", "nv12"] {
        let s = test_stream(&["--fast", "-n", "2", "-s", "140x40", "-f", fmt]);
        let frames = video_frames(&decode(&s).unwrap());
        assert_eq!(frames.len(), 2, "{fmt}");
        assert_eq!(frames[0].format().name(), fmt);
        let rgba = to_format(&frames[0], PixelFormat::Rgba);
        let px = &rgba.row(0, 20)[50 * 4..50 * 4 + 3]; // third bar: cyan
        for (got, want) in px.iter().zip([0u8, 191, 191]) {
            assert!((*got as i32 - want as i32).abs() <= 3, "{fmt}: {px:?}");
        }
    }
}

/// Into a pipe sl-test hands each frame's own pages over (`vmsplice` of huge pages, where
/// the kernel has them); into a file it writes a reused buffer. Both carry the same pixels.
#[test]
fn frames_through_a_pipe_match_frames_written_to_a_file() {
    let dir = scratch_dir("sl-test-pipe-vs-file");
    for pattern in ["box", "noise"] {
        let args = ["--fast", "-n", "6", "-s", "1280x720", "-p", pattern];
        let piped = video_frames(&decode(&test_stream(&args)).unwrap());
        let path = dir.join(format!("{pattern}.slv"));
        let filed = video_frames_written_to_file("sl-test", &args, &path);
        assert_eq!(piped.len(), 6, "{pattern}");
        assert_eq!(filed.len(), 6, "{pattern}");
        for (p, f) in piped.iter().zip(&filed) {
            assert_eq!(p.info.frame_number, f.info.frame_number);
            assert!(
                p.data() == f.data(),
                "{pattern}: frame {} differs",
                p.info.frame_number
            );
        }
        // the box moves: frames differ from each other, so a stale page would show
        assert!(piped[0].data() != piped[5].data(), "{pattern}");
    }
}

#[test]
fn stream_info_precedes_frames_and_an_end_follows() {
    let msgs = decode(&test_stream(&[
        "--fast", "-n", "3", "-s", "32x32", "-r", "29.97",
    ]))
    .unwrap();
    match &msgs[0] {
        Message::Stream { stream: 0, info } => {
            let v = info.video().expect("video stream");
            assert_eq!((v.width, v.height), (32, 32));
            assert_eq!(v.fps, Rational::new(30000, 1001));
        }
        m => panic!("first message is {m:?}"),
    }
    assert_eq!(
        msgs.last(),
        Some(&Message::End {
            stream: ALL_STREAMS
        })
    );
    assert_eq!(
        video_frames(&msgs)[2].info.time_base,
        Rational::new(1001, 30000)
    );
}

#[test]
fn duration_limits_frames() {
    let msgs = decode(&test_stream(&[
        "--fast", "-t", "2s", "-r", "25", "-s", "16x16",
    ]))
    .unwrap();
    assert_eq!(video_frames(&msgs).len(), 50);
}

#[test]
fn closed_downstream_pipe_is_a_quiet_success() {
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-s", "1080p"])
        .cmd("head", &["-c", "1000"])
        .run();
    out.assert_success();
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(
        out.stage(0).stderr,
        "",
        "sl-test must end quietly on a closed pipe"
    );
    // the same in the middle of a pipeline
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-s", "640x360"])
        .sl("sl-info", &["--pass", "--no-progress", "-q"])
        .cmd("head", &["-c", "100000"])
        .run();
    out.assert_success();
    assert_eq!(out.stage(1).stderr, "");
}

#[test]
fn foreign_input_is_named_with_a_hint() {
    let y4m = b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\nFRAME\n".repeat(10);
    let out = Pipeline::new().stdin(y4m).sl("sl-info", &[]).run();
    let s = out.last();
    assert_eq!(s.code, Some(1), "{s:?}");
    assert!(s.stderr.contains("not a streamlib stream"), "{}", s.stderr);
    assert!(s.stderr.contains("y4m"), "{}", s.stderr);
    assert!(s.stderr.contains("sl-file"), "{}", s.stderr);

    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let out = Pipeline::new()
        .stdin(random)
        .sl("sl-info", &["--pass"])
        .run();
    let s = out.last();
    assert_eq!(s.code, Some(1));
    assert!(s.stderr.contains("not a streamlib stream"), "{}", s.stderr);
    assert!(out.stdout.is_empty(), "nothing may be passed on");

    let out = Pipeline::new().stdin(Vec::new()).sl("sl-info", &[]).run();
    assert_eq!(out.last().code, Some(1));
    assert!(out.last().stderr.contains("empty"), "{}", out.last().stderr);
}

#[test]
fn truncated_stream_is_reported_as_truncated() {
    let full = test_stream(&["--fast", "-n", "10", "-s", "64x48"]);
    // cut inside a frame, and cut exactly before the end-of-stream message
    for cut in [full.len() / 2, full.len() - 16] {
        let out = Pipeline::new()
            .stdin(full[..cut].to_vec())
            .sl("sl-info", &[])
            .run();
        let s = out.last();
        assert_eq!(s.code, Some(1), "cut at {cut}: {s:?}");
        assert!(s.stderr.contains("truncated"), "{}", s.stderr);
        assert!(
            out.stdout_str().contains("TRUNCATED"),
            "{}",
            out.stdout_str()
        );
    }
    let out = Pipeline::new().stdin(full).sl("sl-info", &["--json"]).run();
    out.assert_success();
    let j = out.json();
    assert_eq!(j["ending"], "clean");
    assert_eq!(j["streams"][0]["frames"], 10);
    assert_eq!(j["streams"][0]["dropped"], 0);
    assert_eq!(j["streams"][0]["fps"], 30.0);
}

#[test]
fn tee_gives_two_readers_the_same_frames() {
    let dir = scratch_dir("tee");
    let copy = dir.join("copy.slv");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "20", "-s", "96x64", "-p", "box"],
        )
        .cmd("tee", &[copy.to_str().unwrap()])
        .sl("sl-info", &["--pass", "-q"])
        .run();
    out.assert_success();
    let a = decode(&out.stdout).unwrap();
    let b = decode(&std::fs::read(&copy).unwrap()).unwrap();
    assert_eq!(video_frames(&a).len(), 20);
    assert_eq!(a, b);
}

#[test]
fn sigint_ends_a_source_cleanly_with_130() {
    let mut running = Pipeline::new()
        .sl("sl-test", &["-s", "64x48", "-r", "50"]) // real time, endless
        .sl("sl-info", &["--json"])
        .timeout(Duration::from_secs(30))
        .spawn();
    // a whole 64x48 RGBA frame (12 KiB) is in the pipe: sl-test is running, and sl-info
    // will count that frame
    running.wait_until("sl-test wrote a frame", |r| {
        r.bytes_written(0) > 64 * 48 * 4
    });
    running.signal(0, "INT");
    let out = running.wait();
    assert_eq!(out.stage(0).code, Some(130), "{:?}", out.stage(0));
    assert_eq!(out.stage(1).code, Some(0), "{:?}", out.stage(1));
    let j = out.json();
    assert_eq!(j["ending"], "clean");
    assert!(j["streams"][0]["frames"].as_u64().unwrap() >= 1);
}

#[test]
fn usage_errors_exit_2_with_a_hint() {
    for args in [
        &["--size", "12"][..],
        &["--fps", "fast"],
        &["--pattern", "plaid"],
        &["--bogus"],
    ] {
        let (code, _, err) = run_cmd(&bin("sl-test"), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(!err.is_empty());
    }
    let (code, out, _) = run_cmd(&bin("sl-test"), &["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Examples:"), "{out}");
}

#[test]
fn refuses_to_write_frames_to_a_terminal() {
    // `script` gives the command a pseudo-terminal as stdout
    let cmd = format!("{} -n 1", bin("sl-test").display());
    let (code, out, _) = run_cmd(std::path::Path::new("script"), &["-qec", &cmd, "/dev/null"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("refusing to write binary frames to a terminal"),
        "{out}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_flags() {
    let (code, out, _) = run_cmd(&bin("sl-info"), &["--completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("--pass"));
    let (code, out, _) = run_cmd(&bin("sl-test"), &["--man"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(".TH sl-test"), "{out}");
}

#[test]
fn sl_runs_stages_and_lists_plugins() {
    let dir = scratch_dir("plugins");
    let plugin = dir.join("sl-hello");
    std::fs::write(&plugin, "#!/bin/sh\necho \"hello $*\"\n").unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = Pipeline::new()
        .sl("sl", &["--list"])
        .env("PATH", &path)
        .run();
    out.assert_success();
    let list = out.stdout_str();
    assert!(
        list.lines()
            .any(|l| l.starts_with("test") && l.contains("built-in")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("info") && l.contains("built-in")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("hello") && l.contains("plugin")),
        "{list}"
    );

    let out = Pipeline::new()
        .sl("sl", &["hello", "world"])
        .env("PATH", &path)
        .run();
    out.assert_success();
    assert_eq!(out.stdout_str(), "hello world\n");

    let out = Pipeline::new()
        .sl("sl", &["test", "--fast", "-n", "4", "-s", "32x32"])
        .sl("sl", &["info", "--json"])
        .run();
    out.assert_success();
    assert_eq!(out.json()["streams"][0]["frames"], 4);

    let out = Pipeline::new().sl("sl", &["nosuchstage"]).run();
    assert_eq!(out.last().code, Some(2));
    assert!(out.last().stderr.contains("no stage `nosuchstage`"));
}
