//! What a new user hit (issue 12), end to end: CSS colour names everywhere, `sl-info FILE`,
//! ffprobe-like `sl-info --json`, labelled pass-through reports, blank input.

use std::path::Path;

use sl_e2e::{Pipeline, scratch_dir};
use sl_frame::{PixelFormat, VideoFrame, convert};

fn centre(f: &VideoFrame) -> [u8; 4] {
    let f = convert::to_format(f, PixelFormat::Rgba).to_packed();
    let (x, y) = (f.width() as usize / 2, f.height() as usize / 2);
    let r = f.row(0, y);
    [r[4 * x], r[4 * x + 1], r[4 * x + 2], r[4 * x + 3]]
}

#[test]
fn css_colour_names_work_in_sl_test_and_sl_draw_and_errors_list_them() {
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast",
                "-n",
                "1",
                "-s",
                "32x24",
                "-p",
                "solid",
                "--color",
                "RebeccaPurple",
            ],
        )
        .run();
    out.assert_success();
    assert_eq!(centre(&out.frames()[0]), [102, 51, 153, 255]);

    let dir = scratch_dir("new-user-colours");
    let script = dir.join("c.rhai");
    std::fs::write(
        &script,
        "fn draw(canvas, ctx) { canvas.clear(\"cornflowerblue\"); }\n",
    )
    .unwrap();
    let out = Pipeline::new()
        .sl(
            "sl-draw",
            &[
                script.to_str().unwrap(),
                "--size",
                "16x16",
                "--fast",
                "-n",
                "1",
                "--strict",
            ],
        )
        .run();
    out.assert_success();
    assert_eq!(centre(&out.frames()[0]), [100, 149, 237, 255]);

    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "1", "--color", "cornflower"])
        .run();
    let err = &out.stage(0).stderr;
    assert_eq!(out.stage(0).code, Some(2), "{err}");
    assert!(
        err.contains("did you mean cornflowerblue") && err.contains("rebeccapurple"),
        "{err}"
    );
}

fn slv(dir: &Path) -> std::path::PathBuf {
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "10", "-s", "64x48", "-f", "i420"],
        )
        .run();
    out.assert_success();
    let p = dir.join("capture.slv");
    std::fs::write(&p, &out.stdout).unwrap();
    p
}

#[test]
fn sl_info_reads_a_stream_file_and_reports_like_ffprobe() {
    let dir = scratch_dir("new-user-info-file");
    let file = slv(&dir);
    let out = Pipeline::new()
        .sl("sl-info", &["--json", file.to_str().unwrap()])
        .run();
    out.assert_success();
    let j = out.json();
    let s = &j["streams"][0];
    assert_eq!(j["ending"], "clean");
    assert_eq!(s["frames"], 10);
    assert_eq!(s["width"], 64);
    assert_eq!(s["height"], 48);
    assert_eq!(s["pix_fmt"], "yuv420p");
    assert_eq!(s["codec_name"], "rawvideo");
    assert_eq!(s["r_frame_rate"], "30/1");
    assert_eq!(s["avg_frame_rate"], "30/1");
    assert_eq!(s["fps"], 30.0);

    // a file that is not a stream is read through sl-file (or the error says how)
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello\n").unwrap();
    let out = Pipeline::new()
        .sl("sl-info", &[text.to_str().unwrap()])
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("sl-file"), "{}", s.stderr);
}

#[test]
fn a_pass_through_report_is_labelled() {
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "5", "-s", "32x24"])
        .sl("sl-info", &["--pass", "--no-progress"])
        .sl("sl-info", &[])
        .run();
    out.assert_success();
    let pass = &out.stage(1).stderr;
    assert!(
        pass.starts_with("sl-info (pass):\n  stream 0: video"),
        "{pass}"
    );
    let last = out.stdout_str();
    assert!(last.starts_with("stream 0: video"), "{last}");
}

#[test]
fn blank_input_is_called_blank_not_empty_text() {
    let dir = scratch_dir("new-user-blank");
    let script = dir.join("n.rhai");
    std::fs::write(&script, "fn draw(canvas, ctx) { }\n").unwrap();
    for stage in ["sl-info", "sl-draw"] {
        let args: Vec<&str> = if stage == "sl-draw" {
            vec![script.to_str().unwrap()]
        } else {
            vec![]
        };
        let out = Pipeline::new().stdin(&b"\n"[..]).sl(stage, &args).run();
        let err = &out.stage(0).stderr;
        assert_eq!(out.stage(0).code, Some(1), "{stage}: {err}");
        assert!(
            err.contains("blank text (1 byte of whitespace"),
            "{stage}: {err}"
        );
        assert!(!err.contains("starting ``"), "{stage}: {err}");
    }
}
