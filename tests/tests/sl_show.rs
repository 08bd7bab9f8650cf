//! sl-show in a real X server (Xvfb): what the window shows is checked in screenshots.

mod desktop;

use std::time::Duration;

use desktop::{Xvfb, close, wait_for};
use sl_e2e::{Pipeline, Running, bin, scratch_dir};

/// sl-test's 75% colour bars, left to right (SMPTE order).
const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];

/// Waiting is for slow, shared machines; nothing here measures speed.
const PATIENCE: Duration = Duration::from_secs(30);

/// The bar colours as a gray8 stream shows them (full-range BT.601 luma).
fn gray(c: [u8; 3]) -> [u8; 3] {
    let y = (0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64).round() as u8;
    [y, y, y]
}

/// Start `sl-test ARGS | sl-show SHOW_ARGS` on `x`.
fn bars_into_show(x: &Xvfb, test_args: &[&str], show_args: &[&str]) -> Running {
    x.env(
        Pipeline::new()
            .sl("sl-test", test_args)
            .sl("sl-show", show_args),
    )
    .timeout(Duration::from_secs(120))
    .spawn()
}

/// Wait for the window whose title contains `title` to show bars, then check every bar's
/// colour at the middle of where it should be, in a window region (x, y, w, h).
fn check_bars(x: &Xvfb, title: &str, region: Option<(i64, i64, i64, i64)>, gray8: bool) {
    let win = wait_for(PATIENCE, "the sl-show window", || x.window(title));
    let (rx, ry, rw, rh) = region.unwrap_or(win);
    let want = |i: usize| if gray8 { gray(BARS[i]) } else { BARS[i] };
    let at = |i: usize| (rx + rw * (2 * i as i64 + 1) / 14, ry + rh / 2);
    // the window maps before its first frame is drawn: wait for the first and last bars
    let shot = wait_for(PATIENCE, "the bars to be drawn", || {
        let s = x.screenshot();
        let (x0, y0) = at(0);
        let (x6, y6) = at(6);
        (close(s.pixel(x0, y0), want(0), 16) && close(s.pixel(x6, y6), want(6), 16)).then_some(s)
    });
    for i in 0..7 {
        let (px, py) = at(i);
        let got = shot.pixel(px, py);
        assert!(
            close(got, want(i), 16),
            "bar {i} at ({px}, {py}) is {got:?}, expected {:?} (window {win:?})",
            want(i)
        );
    }
}

#[test]
fn bars_show_in_every_pixel_format() {
    let x = Xvfb::start(800, 600);
    for format in ["rgba", "bgra", "rgb24", "gray8", "i420", "nv12"] {
        let run = bars_into_show(&x, &["-s", "640x360", "-f", format], &[]);
        check_bars(&x, &format!("640x360 {format}"), None, format == "gray8");
        // SIGINT: sl-show ends (130); sl-test then meets a closed pipe and ends quietly
        run.signal(1, "INT");
        let out = run.wait();
        assert_eq!(out.stage(1).code, Some(130), "{:#?}", out.stages);
        assert_eq!(out.stage(0).code, Some(0), "{:#?}", out.stages);
        assert!(!out.stage(1).stderr.contains("panicked"));
    }
}

#[test]
fn fit_scales_with_black_bars_and_f_toggles_one_to_one() {
    let x = Xvfb::start(1024, 768);
    // a 320x180 stream in an 800x600 window: fit is 800x450, 75 px of black above and below
    let run = bars_into_show(&x, &["-s", "320x180"], &["--size", "800x600"]);
    let (wx, wy, ww, wh) = wait_for(PATIENCE, "the window", || x.window("320x180 rgba"));
    assert_eq!((ww, wh), (800, 600));
    check_bars(&x, "320x180 rgba", Some((wx, wy + 75, 800, 450)), false);
    let shot = x.screenshot();
    assert!(
        close(shot.pixel(wx + 400, wy + 30), [0, 0, 0], 8),
        "letterbox"
    );
    assert!(
        close(shot.pixel(wx + 400, wy + 570), [0, 0, 0], 8),
        "letterbox"
    );

    // f: 1:1, centred: the frame covers (240..560, 210..390) of the window
    x.key_at(wx + 400, wy + 300, "f");
    wait_for(PATIENCE, "1:1 mode", || {
        x.window_title("320x180 rgba")
            .filter(|t| t.contains("[1:1]"))
    });
    check_bars(
        &x,
        "320x180 rgba",
        Some((wx + 240, wy + 210, 320, 180)),
        false,
    );
    let shot = x.screenshot();
    assert!(
        close(shot.pixel(wx + 100, wy + 300), [0, 0, 0], 8),
        "outside the frame"
    );
    run.signal(1, "INT");
    let out = run.wait();
    assert_eq!(out.stage(1).code, Some(130), "{:#?}", out.stages);
}

#[test]
fn keys_save_pause_and_quit() {
    let x = Xvfb::start(800, 600);
    let dir = scratch_dir("sl-show-keys");
    let dir_s = dir.to_str().unwrap();
    let run = bars_into_show(
        &x,
        &["-s", "320x180", "-p", "bars"],
        &["--snapshot-dir", dir_s],
    );
    check_bars(&x, "320x180 rgba", None, false);
    let (wx, wy, ww, wh) = x.window("320x180 rgba").unwrap();
    let (cx, cy) = (wx + ww / 2, wy + wh / 2);

    // s saves the current frame as a PNG of the frame's size
    x.key_at(cx, cy, "s");
    let png = wait_for(PATIENCE, "a snapshot", || {
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "png"))
    });
    let bytes = wait_for(PATIENCE, "the snapshot to be written", || {
        std::fs::read(&png).ok().filter(|b| b.len() > 33)
    });
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at 16..24
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 320);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 180);

    // space pauses, and says so in the title
    x.key_at(cx, cy, "space");
    wait_for(PATIENCE, "the paused title", || {
        x.window_title("320x180").filter(|t| t.contains("[paused]"))
    });
    x.key_at(cx, cy, "space");
    wait_for(PATIENCE, "the unpaused title", || {
        x.window_title("320x180")
            .filter(|t| !t.contains("[paused]"))
    });

    // q ends sl-show successfully; upstream ends quietly on the closed pipe
    x.key_at(cx, cy, "q");
    let out = run.wait();
    out.assert_success();
    assert!(
        out.stage(1).stderr.contains("saved"),
        "{}",
        out.stage(1).stderr
    );
}

#[test]
fn ends_with_the_stream() {
    let x = Xvfb::start(640, 480);
    let out = x
        .env(
            Pipeline::new()
                .sl("sl-test", &["-n", "15", "-s", "160x90"])
                .sl("sl-show", &[]),
        )
        .run();
    out.assert_success();
}

#[test]
fn pass_copies_the_stream_unchanged() {
    let x = Xvfb::start(640, 480);
    let args = [
        "--fast", "-n", "20", "-s", "160x90", "-f", "i420", "-p", "box",
    ];
    let direct = Pipeline::new().sl("sl-test", &args).run();
    direct.assert_success();
    let through = x
        .env(
            Pipeline::new()
                .sl("sl-test", &args)
                .sl("sl-show", &["--pass", "--no-sync"]),
        )
        .run();
    through.assert_success();
    let (a, b) = (direct.frames(), through.frames());
    assert_eq!(b.len(), 20);
    for (fa, fb) in a.iter().zip(&b) {
        assert_eq!(fa.data(), fb.data());
        assert_eq!(fa.info.pts, fb.info.pts);
    }
}

#[test]
fn no_display_is_a_clear_error() {
    let out = Pipeline::new()
        .sl("sl-test", &["-s", "160x90"])
        .sl("sl-show", &[])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .run();
    let show = out.stage(1);
    assert_eq!(show.code, Some(1), "{:#?}", out.stages);
    assert!(
        show.stderr.contains("DISPLAY") && show.stderr.contains("WAYLAND_DISPLAY"),
        "{}",
        show.stderr
    );
    assert!(!show.stderr.contains("panicked"), "{}", show.stderr);
    // upstream ends quietly on the closed pipe
    assert_eq!(out.stage(0).code, Some(0), "{:#?}", out.stages);
}

#[test]
fn unreachable_display_is_a_clear_error() {
    // a display nobody runs (Xvfb's -displayfd numbers start far below this)
    let out = Pipeline::new()
        .sl("sl-test", &["-s", "160x90"])
        .sl("sl-show", &[])
        .env("DISPLAY", ":4242")
        .env_remove("WAYLAND_DISPLAY")
        .run();
    let show = out.stage(1);
    assert_eq!(show.code, Some(1), "{:#?}", out.stages);
    assert!(
        show.stderr
            .contains("cannot open a window on display `:4242`"),
        "{}",
        show.stderr
    );
    assert!(!show.stderr.contains("panicked"), "{}", show.stderr);
}

#[test]
fn help_has_examples() {
    let (code, stdout, _) = sl_e2e::run_cmd(&bin("sl-show"), &["--help"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("Examples:") && stdout.contains("--policy"));
}

#[test]
fn quitting_with_pass_ends_the_output_cleanly() {
    let x = Xvfb::start(640, 480);
    let run = x
        .env(
            Pipeline::new()
                .sl("sl-test", &["-s", "160x90"])
                .sl("sl-show", &["--pass"]),
        )
        .timeout(Duration::from_secs(120))
        .spawn();
    let (wx, wy, ww, wh) = wait_for(PATIENCE, "the window", || x.window("160x90 rgba"));
    // some frames through first (the title shows a measured rate once a second has passed)
    wait_for(PATIENCE, "a measured rate", || {
        x.window_title("160x90 rgba")
            .filter(|t| !t.contains(" 0.0 fps"))
    });
    x.key_at(wx + ww / 2, wy + wh / 2, "q");
    let out = run.wait();
    out.assert_success();
    // a complete stream: it ends with an end-of-stream (messages() panics otherwise)
    let msgs = out.messages();
    assert!(!sl_e2e::video_frames(&msgs).is_empty());
}
