//! sl-screen capturing a private Xvfb on which a known picture is shown.

mod desktop;

use std::process::Stdio;
use std::time::{Duration, Instant};

use desktop::{Xvfb, close, require, wait_for};
use sl_e2e::{Pipeline, bin, decode, scratch_dir, video_frames};
use sl_frame::convert::to_format;
use sl_frame::{PixelFormat, Rational, VideoFrame};
use sl_wire::Message;

const PATIENCE: Duration = Duration::from_secs(30);
const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

/// Paint the root window of `x` with four quadrants (red, green / blue, white) using
/// ImageMagick, and wait until a screenshot shows them.
fn show_quadrants(x: &Xvfb, name: &str) {
    require("convert");
    require("display");
    let dir = scratch_dir(name);
    let png = dir.join("quadrants.png");
    let (w, h) = (x.width / 2, x.height / 2);
    let ok = std::process::Command::new("convert")
        .args([
            "(",
            "-size",
            &format!("{w}x{h}"),
            "xc:red",
            "xc:lime",
            "+append",
            ")",
        ])
        .args([
            "(",
            "-size",
            &format!("{w}x{h}"),
            "xc:blue",
            "xc:white",
            "+append",
            ")",
        ])
        .args(["-append", png.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "convert failed");
    // `display -window root` sets the root window's background and exits. (Debian 12's
    // ImageMagick 6 exits 1 even when it worked: the screenshot below is the judge.)
    let status = x
        .command("display")
        .args(["-window", "root", png.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(status.is_ok(), "cannot run display: {status:?}");
    wait_for(PATIENCE, "the picture on the screen", || {
        let s = x.screenshot();
        let (w, h) = (x.width as i64, x.height as i64);
        (close(s.pixel(w / 4, h / 4), RED, 4) && close(s.pixel(3 * w / 4, 3 * h / 4), WHITE, 4))
            .then_some(())
    });
}

fn rgb_at(frame: &VideoFrame, x: u32, y: u32) -> [u8; 3] {
    let f = to_format(frame, PixelFormat::Rgb24);
    let row = f.row(0, y as usize);
    let i = x as usize * 3;
    [row[i], row[i + 1], row[i + 2]]
}

fn check_quadrants(f: &VideoFrame, tol: u8) {
    let (w, h) = (f.width(), f.height());
    for (x, y, want) in [
        (w / 4, h / 4, RED),
        (3 * w / 4, h / 4, GREEN),
        (w / 4, 3 * h / 4, BLUE),
        (3 * w / 4, 3 * h / 4, WHITE),
    ] {
        let got = rgb_at(f, x, y);
        assert!(
            close(got, want, tol),
            "({x}, {y}) of frame {} is {got:?}, expected {want:?}",
            f.info.frame_number
        );
    }
}

#[test]
fn captures_the_screen_at_the_rate_asked_with_increasing_timestamps() {
    let x = Xvfb::start(640, 480);
    show_quadrants(&x, "sl-screen-rate");
    let out = x
        .env(Pipeline::new().sl(
            "sl-screen",
            &["--fps", "10", "--frames", "20", "--no-cursor"],
        ))
        .run();
    out.assert_success();
    let msgs = out.messages();
    let Message::Stream { info, .. } = &msgs[0] else {
        panic!("a stream description comes first")
    };
    let v = info.video().expect("video");
    assert_eq!((v.width, v.height, v.fps), (640, 480, Rational::new(10, 1)));
    let frames = video_frames(&msgs);
    assert_eq!(frames.len(), 20);
    for f in &frames {
        assert_eq!(f.format(), PixelFormat::Rgba);
        check_quadrants(f, 2);
    }
    for w in frames.windows(2) {
        assert!(w[1].info.pts > w[0].info.pts, "pts must increase");
        assert!(
            w[1].info.capture_time_ns.unwrap() > w[0].info.capture_time_ns.unwrap(),
            "capture times must increase"
        );
    }
    // "At the rate asked, within reason": paced capture cannot run ahead of the schedule, so
    // 19 intervals take at least ~1.9 s; a busy machine may make them slower, never 5x.
    let span = frames[19]
        .info
        .time_base
        .ticks_to_secs(frames[19].info.pts - frames[0].info.pts);
    assert!(
        (1.8..9.5).contains(&span),
        "20 frames at 10 fps spanned {span:.3} s"
    );
}

#[test]
fn captures_a_region_in_another_format() {
    let x = Xvfb::start(640, 480);
    show_quadrants(&x, "sl-screen-region");
    // 80x60 around the centre: a quadrant of each colour
    let out = x
        .env(Pipeline::new().sl(
            "sl-screen",
            &[
                "--region",
                "280,210,80,60",
                "-n",
                "3",
                "-f",
                "i420",
                "--no-cursor",
            ],
        ))
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 3);
    for f in &frames {
        assert_eq!(
            (f.width(), f.height(), f.format()),
            (80, 60, PixelFormat::I420)
        );
        // i420 round trip: a little chroma error on saturated colours
        check_quadrants(f, 40);
    }
}

#[test]
fn captures_what_sl_show_shows() {
    // sl-test | sl-show puts bars on the display; sl-screen must see them. (--no-cursor in
    // these tests: the pointer starts in the middle of the screen, over the picture.)
    let x = Xvfb::start(800, 600);
    let show = x
        .env(
            Pipeline::new()
                .sl("sl-test", &["-s", "640x360", "-p", "bars"])
                .sl("sl-show", &[]),
        )
        .timeout(Duration::from_secs(120))
        .spawn();
    let (wx, wy, ww, wh) = wait_for(PATIENCE, "the sl-show window", || x.window("640x360 rgba"));
    // wait for the bars to be drawn (magenta in the fifth bar)
    wait_for(PATIENCE, "the bars", || {
        let s = x.screenshot();
        close(s.pixel(wx + ww * 9 / 14, wy + wh / 2), [191, 0, 191], 16).then_some(())
    });
    let out = x
        .env(Pipeline::new().sl("sl-screen", &["-n", "2", "--no-cursor"]))
        .run();
    out.assert_success();
    let f = &out.frames()[1];
    let at = |i: i64| rgb_at(f, (wx + ww * (2 * i + 1) / 14) as u32, (wy + wh / 2) as u32);
    assert!(close(at(0), [191, 191, 191], 16), "{:?}", at(0));
    assert!(close(at(3), [0, 191, 0], 16), "{:?}", at(3));
    assert!(close(at(6), [0, 0, 191], 16), "{:?}", at(6));
    show.signal(1, "INT");
    let o = show.wait();
    assert_eq!(o.stage(1).code, Some(130));
}

#[test]
fn lists_monitors_with_geometry() {
    let x = Xvfb::start(640, 480);
    let out = x
        .command(bin("sl-screen").to_str().unwrap())
        .arg("--list")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("monitors:") && text.contains("640x480+0+0"),
        "{text}"
    );
    assert!(text.contains("windows:"), "{text}");
}

#[test]
fn display_gone_mid_stream_keeps_the_frames_and_leaves_the_stream_unfinished() {
    let x = Xvfb::start(320, 240);
    let dir = scratch_dir("sl-screen-gone");
    let path = dir.join("out.slv");
    let mut child = x
        .command(bin("sl-screen").to_str().unwrap())
        .args(["--fps", "20"])
        .stdout(std::fs::File::create(&path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // some frames first (a 320x240 RGBA frame is 300 KiB)
    wait_for(PATIENCE, "a few captured frames", || {
        (std::fs::metadata(&path).ok()?.len() > 1 << 20).then_some(())
    });
    drop(x); // the display goes away
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < PATIENCE, "sl-screen did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("capture stopped after") && stderr.contains("finalise what they have"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // the output is a complete stream (it ends with an end-of-stream)
    // the frames so far, and no end-of-stream: the next stage learns the capture failed
    let bytes = std::fs::read(&path).unwrap();
    match decode(&bytes) {
        Err(sl_wire::WireError::Truncated(_)) => {}
        other => panic!("expected an unfinished stream, got {other:?}"),
    }
    let info = Pipeline::new().stdin(bytes).sl("sl-info", &[]).run();
    let s = info.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("truncated"), "{}", s.stderr);
}

#[test]
fn no_display_is_a_clear_error() {
    let out = Pipeline::new()
        .sl("sl-screen", &["-n", "1"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("DISPLAY"), "{}", s.stderr);
    // checked before anything is written: no stream at all
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_targets_are_clear_errors() {
    let x = Xvfb::start(320, 240);
    for (args, says) in [
        (&["--region", "300,0,100,100"][..], "outside"),
        (&["--monitor", "nope"][..], "no monitor matches `nope`"),
        (&["--window", "nope"][..], "no window matches `nope`"),
    ] {
        let out = x.env(Pipeline::new().sl("sl-screen", args)).run();
        let s = out.stage(0);
        assert_eq!(s.code, Some(1), "{args:?}: {}", s.stderr);
        assert!(s.stderr.contains(says), "{args:?}: {}", s.stderr);
    }
    // usage errors exit 2
    let out = x
        .env(Pipeline::new().sl("sl-screen", &["--region", "1,2,3"]))
        .run();
    assert_eq!(out.stage(0).code, Some(2), "{}", out.stage(0).stderr);
}

#[test]
fn closed_pipe_downstream_is_a_quiet_end() {
    let x = Xvfb::start(320, 240);
    let out = x
        .env(
            Pipeline::new()
                .sl("sl-screen", &["--fps", "50"])
                .cmd("head", &["-c", "1000000"]),
        )
        .run();
    assert_eq!(out.stage(0).code, Some(0), "{:#?}", out.stages);
    assert_eq!(out.stage(0).stderr, "");
}

#[test]
fn captures_a_window_and_ends_cleanly_when_it_closes() {
    let x = Xvfb::start(800, 600).with_window_manager();
    let show = x
        .env(
            Pipeline::new()
                .sl("sl-test", &["-s", "320x180", "-p", "bars"])
                .sl("sl-show", &[]),
        )
        .timeout(Duration::from_secs(120))
        .spawn();
    // the window manager lists it (openbox may take a moment to start and adopt it)
    let id = wait_for(PATIENCE, "sl-screen --list to show the window", || {
        let out = x
            .command(bin("sl-screen").to_str().unwrap())
            .arg("--list")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains("320x180 rgba"))?
            .to_string();
        assert!(line.contains("320x180+"), "geometry: {line}");
        Some(line.split_whitespace().next()?.to_string())
    });
    // wait for the bars to be drawn
    let (wx, wy, ww, wh) = wait_for(PATIENCE, "the window", || x.window("320x180 rgba"));
    wait_for(PATIENCE, "the bars", || {
        let s = x.screenshot();
        close(s.pixel(wx + ww / 14, wy + wh / 2), [191, 191, 191], 16).then_some(())
    });

    // by id: frames of the window's size, with the bars
    let out = x
        .env(Pipeline::new().sl("sl-screen", &["--window", &id, "-n", "2", "--no-cursor"]))
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 2);
    let f = &frames[1];
    assert_eq!((f.width(), f.height()), (320, 180));
    assert!(close(rgb_at(f, 320 / 14, 90), [191, 191, 191], 16));
    assert!(close(rgb_at(f, 320 * 13 / 14, 90), [0, 0, 191], 16));

    // by title, until the window closes: a clean end (exit 0, end-of-stream)
    let mut capture = x
        .env(Pipeline::new().sl("sl-screen", &["--window", "sl-show", "--fps", "20"]))
        .timeout(Duration::from_secs(120))
        .spawn();
    // it has found the window and taken some frames
    capture.wait_for_frames(3);
    show.signal(1, "INT");
    let o = show.wait();
    assert_eq!(o.stage(1).code, Some(130), "{:#?}", o.stages);
    let out = capture.wait();
    let s = out.stage(0);
    assert_eq!(s.code, Some(0), "{}", s.stderr);
    assert!(s.stderr.contains("was closed after"), "{}", s.stderr);
    let _ = out.frames(); // a complete stream (panics otherwise)
}

#[test]
fn the_cursor_is_drawn_unless_asked_not_to() {
    let x = Xvfb::start(640, 480);
    show_quadrants(&x, "sl-screen-cursor");
    // the pointer in the middle of the red quadrant
    let ok = x
        .command("xdotool")
        .args(["mousemove", "160", "120"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "xdotool mousemove failed");
    let grab = |extra: &[&str]| {
        let mut args = vec!["--region", "128,88,64,64", "-n", "1"];
        args.extend_from_slice(extra);
        let out = x.env(Pipeline::new().sl("sl-screen", &args)).run();
        out.assert_success();
        out.frames().remove(0)
    };
    let not_red = |f: &VideoFrame| {
        (0..64)
            .flat_map(|y| (0..64).map(move |x| (x, y)))
            .filter(|&(px, py)| !close(rgb_at(f, px, py), RED, 8))
            .count()
    };
    let without = grab(&["--no-cursor"]);
    assert_eq!(not_red(&without), 0, "--no-cursor: only the red quadrant");
    let with = grab(&[]);
    assert!(
        not_red(&with) > 20,
        "the cursor should be drawn around (32, 32): {} pixels differ",
        not_red(&with)
    );
}

#[test]
fn finds_a_window_titled_only_by_wm_name_and_says_when_no_window_manager_runs() {
    require("convert");
    require("display");
    // without a window manager: the error says so
    let bare = Xvfb::start(320, 240);
    let out = bare
        .env(Pipeline::new().sl("sl-screen", &["--window", "nope", "-n", "1"]))
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains("no window manager is running"),
        "{}",
        s.stderr
    );
    // ImageMagick's `display` names its window with a plain STRING WM_NAME only. The bare
    // server stays up until this one has started, so the two never share a display number.
    let x = Xvfb::start(640, 480).with_window_manager();
    drop(bare);
    let dir = scratch_dir("screen-wm-name");
    let png = dir.join("blue.png");
    let ok = std::process::Command::new("convert")
        .args(["-size", "200x150", "xc:blue", png.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "convert failed");
    let mut shown = x
        .command("display")
        .args(["-title", "only-wm-name", png.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start display");
    let listed = wait_for(
        PATIENCE,
        "sl-screen --list to show the window by title",
        || {
            let out = x
                .command(bin("sl-screen").to_str().unwrap())
                .arg("--list")
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find(|l| l.contains("only-wm-name"))
                .map(str::to_string)
        },
    );
    assert!(listed.contains("200x150"), "{listed}");
    let out = x
        .env(Pipeline::new().sl(
            "sl-screen",
            &["--window", "only-wm", "-n", "1", "--no-cursor"],
        ))
        .run();
    let _ = shown.kill();
    let _ = shown.wait();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].width(), frames[0].height()), (200, 150));
    assert!(close(rgb_at(&frames[0], 100, 75), BLUE, 8));
    // a title that matches nothing, with a window manager: the windows are named, and no
    // claim that there is no window manager
    let out = x
        .env(Pipeline::new().sl("sl-screen", &["--window", "nope", "-n", "1"]))
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(!s.stderr.contains("no window manager"), "{}", s.stderr);
}
