//! sl-cam: the real no-camera path (with every device out of view, so it holds on a machine
//! with a camera too), and the whole stage driven by its fake camera (there is no camera on
//! the development and CI machines, and no way to make a virtual one).

mod desktop;

use std::path::Path;
use std::time::Duration;

use desktop::{Xvfb, close, wait_for};
use sl_e2e::{Pipeline, bin, require, run_cmd};
use sl_frame::{PixelFormat, Rational};
use sl_wire::Message;

/// `sl-cam ARGS` as a command line that runs it where no video device is in view: in a mount
/// namespace of its own whose /dev is an empty tmpfs (util-linux's `unshare`; as root, or
/// through an unprivileged user namespace otherwise, as the network-namespace tests need).
/// So the no-camera path is the same on a machine with a camera and on one without: the real
/// V4L2 query, over a /dev with no `video*` in it.
fn without_devices(args: &[&str]) -> Vec<String> {
    require("unshare");
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false);
    let mut v: Vec<String> = [if root { "-m" } else { "-rm" }, "sh", "-c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // the shell stops (exit 32, mount's message on stderr) if the empty /dev cannot be had
    v.push("mount -t tmpfs none /dev && [ -z \"$(ls -A /dev)\" ] && exec \"$0\" \"$@\"".into());
    v.push(bin("sl-cam").to_string_lossy().into_owned());
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

#[test]
fn no_camera_is_a_clear_error_and_an_unfinished_stream() {
    let cam = without_devices;
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    for args in [
        &[][..],
        &["--device", "0"][..],
        &["-d", "logitech", "-s", "720p"][..],
    ] {
        let out = Pipeline::new().cmd("unshare", &refs(&cam(args))).run();
        let s = out.stage(0);
        assert_eq!(s.code, Some(1), "{args:?}: {}", s.stderr);
        assert!(s.stderr.contains("no camera found"), "{}", s.stderr);
        assert!(
            s.stderr.contains("v4l2-ctl"),
            "says what to try: {}",
            s.stderr
        );
        assert!(!s.stderr.contains("panicked"), "{}", s.stderr);
        // the camera is opened before anything is written: no stream at all
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // as the next stage sees it: nothing, not a stream cut short
    let out = Pipeline::new()
        .cmd("unshare", &refs(&cam(&[])))
        .sl("sl-info", &[])
        .run();
    assert_eq!(out.stage(0).code, Some(1), "{}", out.stage(0).stderr);
    assert_eq!(out.stage(1).code, Some(1), "{}", out.stage(1).stderr);
    assert!(
        out.stage(1).stderr.contains("wrote nothing"),
        "{}",
        out.stage(1).stderr
    );
    let (code, stdout, stderr) = run_cmd(Path::new("unshare"), &refs(&cam(&["--list"])));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("no cameras found"), "{stdout}");
}

#[test]
fn fake_camera_closest_mode_decoded_with_increasing_timestamps() {
    let out = Pipeline::new()
        .sl(
            "sl-cam",
            &[
                "--fake",
                "yuyv:320x240@30,nv12:640x480@30,yuyv:640x480@15",
                "--size",
                "640x480",
                "--fps",
                "30",
                "--frames",
                "10",
            ],
        )
        .run();
    out.assert_success();
    let msgs = out.messages();
    let Message::Stream { info, .. } = &msgs[0] else {
        panic!("stream description first")
    };
    let v = info.video().unwrap();
    assert_eq!((v.width, v.height, v.fps), (640, 480, Rational::new(30, 1)));
    let frames = out.frames();
    assert_eq!(frames.len(), 10);
    for f in &frames {
        // NV12 at 640x480@30 is exact: passed through as nv12
        assert_eq!(
            (f.format(), f.width(), f.height()),
            (PixelFormat::Nv12, 640, 480)
        );
        assert!(f.info.capture_time_ns.is_some());
    }
    for w in frames.windows(2) {
        assert!(w[1].info.pts > w[0].info.pts);
        assert_eq!(w[1].info.frame_number, w[0].info.frame_number + 1);
    }
}

#[test]
fn fake_camera_asked_format_missing_is_reported_and_converted() {
    let out = Pipeline::new()
        .sl(
            "sl-cam",
            &[
                "--fake",
                "yuyv:160x120@30",
                "--input-format",
                "mjpeg",
                "-f",
                "rgba",
                "-n",
                "3",
            ],
        )
        .run();
    out.assert_success();
    let err = &out.stage(0).stderr;
    assert!(
        err.contains("asked for MJPEG") && err.contains("YUYV 160x120 @ 30 fps (the closest)"),
        "{err}"
    );
    let frames = out.frames();
    assert_eq!(frames.len(), 3);
    let f = &frames[0];
    assert_eq!(f.format(), PixelFormat::Rgba);
    // the fake camera's picture: left half bright, right half dark
    let row = f.row(0, 60);
    assert!(row[40 * 4] > 200 && row[100 * 4] < 40, "{:?}", &row[..8]);
}

#[test]
fn unplugged_mid_stream_keeps_the_frames_and_leaves_the_stream_unfinished() {
    let out = Pipeline::new()
        .sl("sl-cam", &["--fake", "yuyv:64x48@30;fail-after=5"])
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr
            .contains("stopped delivering frames after 5 frames")
            && s.stderr.contains("unplugged"),
        "{}",
        s.stderr
    );
    assert!(!s.stderr.contains("panicked"), "{}", s.stderr);
    // the 5 frames before the failure, and no end-of-stream
    assert_eq!(out.frames_of_failed_stream().len(), 5);
}

#[test]
fn busy_camera_is_a_clear_error() {
    let out = Pipeline::new()
        .sl("sl-cam", &["--fake", "yuyv:64x48@30;busy"])
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains("is busy") && s.stderr.contains("another program"),
        "{}",
        s.stderr
    );
    // checked before anything is written
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_buffer_is_an_error_not_a_panic() {
    let out = Pipeline::new()
        .sl("sl-cam", &["--fake", "yuyv:64x48@30;short-frame-at=2"])
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains("frame 2") && s.stderr.contains("bytes"),
        "{}",
        s.stderr
    );
    assert_eq!(out.frames_of_failed_stream().len(), 2);
}

#[test]
fn lists_fake_modes() {
    let (code, stdout, stderr) = run_cmd(
        &bin("sl-cam"),
        &[
            "--fake",
            "yuyv:640x480@30,yuyv:640x480@15,nv12:1280x720@30",
            "--list",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        lines.contains(&"YUYV 640x480 30, 15 fps".to_string()),
        "{stdout}"
    );
    assert!(
        lines.contains(&"NV12 1280x720 30 fps".to_string()),
        "{stdout}"
    );
}

#[test]
fn sigint_ends_the_stream_cleanly() {
    let mut run = Pipeline::new()
        .sl("sl-cam", &["--fake", "yuyv:64x48@30"])
        .timeout(Duration::from_secs(60))
        .spawn();
    run.wait_for_frames(2);
    run.signal(0, "INT");
    let out = run.wait();
    assert_eq!(out.stage(0).code, Some(130), "{:#?}", out.stages);
    // a finished stream (messages() panics on a truncated one)
    assert!(matches!(out.messages().last(), Some(Message::End { .. })));
}

#[test]
fn fake_camera_into_sl_show() {
    // sl-cam | sl-show, the headline pipeline, with the fake camera
    let x = Xvfb::start(640, 480);
    let run = x
        .env(
            Pipeline::new()
                .sl("sl-cam", &["--fake", "yuyv:320x240@30"])
                .sl("sl-show", &[]),
        )
        .timeout(Duration::from_secs(120))
        .spawn();
    let (wx, wy, ww, wh) = wait_for(Duration::from_secs(30), "the window", || {
        x.window("fake (a test camera)")
    });
    assert_eq!((ww, wh), (320, 240));
    wait_for(Duration::from_secs(30), "the camera picture", || {
        let s = x.screenshot();
        (close(s.pixel(wx + 40, wy + 120), [255, 255, 255], 12)
            && close(s.pixel(wx + 200, wy + 10), [0, 0, 0], 12))
        .then_some(())
    });
    run.signal(1, "INT");
    let out = run.wait();
    assert_eq!(out.stage(1).code, Some(130), "{:#?}", out.stages);
    assert_eq!(out.stage(0).code, Some(0), "{:#?}", out.stages);
}

#[test]
fn closed_pipe_downstream_is_a_quiet_end() {
    let out = Pipeline::new()
        .sl("sl-cam", &["--fake", "yuyv:320x240@30;fast", "-q"])
        .cmd("head", &["-c", "1000"])
        .run();
    assert_eq!(out.stage(0).code, Some(0), "{:#?}", out.stages);
    assert_eq!(out.stage(0).stderr, "");
    // without -q it only says which mode it captured
    let out = Pipeline::new()
        .sl("sl-cam", &["--fake", "yuyv:320x240@30;fast"])
        .cmd("head", &["-c", "1000"])
        .run();
    assert_eq!(out.stage(0).code, Some(0), "{:#?}", out.stages);
    assert_eq!(
        out.stage(0).stderr,
        "sl-cam: fake camera: capturing YUYV 320x240 @ 30 fps\n"
    );
}

/// Into a pipe, sl-cam hands each frame of 512 KiB or more over in pages of its own (`vmsplice`,
/// as sl-test and sl-file do); into a file it writes them. Both carry the same pixels, for a
/// layout passed on as it is (NV12) and one converted (YUYV to I420).
#[test]
fn frames_through_a_pipe_match_frames_written_to_a_file() {
    let dir = sl_e2e::scratch_dir("sl-cam-pipe-vs-file");
    for mode in ["nv12:1280x720@30;fast", "yuyv:1280x720@30;fast"] {
        let args = ["--fake", mode, "--frames", "6", "-q"];
        let out = Pipeline::new().sl("sl-cam", &args).run();
        out.assert_success();
        let piped = out.frames();
        let path = dir.join("cam.slv");
        let filed = sl_e2e::video_frames_written_to_file("sl-cam", &args, &path);
        assert_eq!((piped.len(), filed.len()), (6, 6), "{mode}");
        for (p, f) in piped.iter().zip(&filed) {
            assert_eq!(p.info.frame_number, f.info.frame_number, "{mode}");
            assert_eq!((p.format(), p.width(), p.height()), (f.format(), 1280, 720));
            assert!(
                p.data() == f.data(),
                "{mode}: frame {} differs",
                p.info.frame_number
            );
        }
        // the square moves: frames differ from each other, so a stale page would show
        assert!(piped[0].data() != piped[5].data(), "{mode}");
    }
}
