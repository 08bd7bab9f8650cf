//! sl-draw end to end: golden images, overlay and source modes, variables over the control
//! channel, hot reload, live-safety (errors, endless loops, --strict) and the sandbox.
//!
//! Golden PNGs live in tests/data/draw/; `SL_BLESS=1 cargo test ... --test sl_draw`
//! rewrites them from the current output (look at them before committing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use sl_e2e::{Outcome, Pipeline, bin, scratch_dir};
use sl_frame::{
    AudioChunk, BBox, FrameInfo, PixelFormat, Rational, SampleFormat, Value, VideoFrame, convert,
};
use sl_wire::{DataMessage, Message, Reader, StreamInfo, Writer};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/draw")
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// One frame made by `script` in source mode.
fn make_frame(script: &Path, size: &str) -> VideoFrame {
    let s = path_str(script);
    let out = Pipeline::new()
        .sl(
            "sl-draw",
            &[&s, "--size", size, "--fast", "-n", "1", "--strict"],
        )
        .run();
    out.assert_success();
    let mut frames = out.frames();
    assert_eq!(frames.len(), 1);
    frames.remove(0)
}

fn rgba(f: &VideoFrame) -> VideoFrame {
    convert::to_format(f, PixelFormat::Rgba).to_packed()
}

fn write_png(path: &Path, f: &VideoFrame) {
    let f = rgba(f);
    let file = std::fs::File::create(path).expect("create png");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), f.width(), f.height());
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().expect("png header");
    w.write_image_data(f.data()).expect("png data");
}

fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with SL_BLESS=1 to create it)", path.display()));
    let dec = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut r = dec.read_info().expect("png info");
    let mut buf = vec![0; r.output_buffer_size().expect("png size")];
    let info = r.next_frame(&mut buf).expect("png frame");
    assert_eq!(
        info.color_type,
        png::ColorType::Rgba,
        "golden PNGs are RGBA"
    );
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Compare with a committed PNG: every channel within 3 levels for all but 0.5% of the
/// values (anti-aliasing may differ by a level between builds), none off by more than 64.
fn assert_golden(name: &str, f: &VideoFrame) {
    let path = data_dir().join(name);
    if std::env::var_os("SL_BLESS").is_some() {
        write_png(&path, f);
        return;
    }
    let (w, h, want) = read_png(&path);
    let got = rgba(f);
    let actual = scratch_dir(&format!("golden-{name}")).join(name);
    write_png(&actual, f);
    assert_eq!(
        (got.width(), got.height()),
        (w, h),
        "{name}: size differs; actual output in {}",
        actual.display()
    );
    let diffs: Vec<u8> = got
        .data()
        .iter()
        .zip(&want)
        .map(|(a, b)| a.abs_diff(*b))
        .collect();
    let off = diffs.iter().filter(|d| **d > 3).count();
    let worst = diffs.iter().copied().max().unwrap_or(0);
    assert!(
        off * 200 <= diffs.len() && worst <= 64,
        "{name}: {off} of {} values differ by more than 3 (worst {worst}); actual output in {}",
        diffs.len(),
        actual.display()
    );
}

fn pixel(f: &VideoFrame, x: usize, y: usize) -> [u8; 4] {
    let f = rgba(f);
    let r = f.row(0, y);
    [r[4 * x], r[4 * x + 1], r[4 * x + 2], r[4 * x + 3]]
}

fn stderr_of(out: &Outcome, i: usize) -> &str {
    &out.stage(i).stderr
}

fn write_script(dir: &Path, name: &str, src: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, src).expect("write script");
    p
}

#[test]
fn golden_shapes() {
    let f = make_frame(&data_dir().join("shapes.rhai"), "160x120");
    assert_eq!(f.format(), PixelFormat::Rgba);
    assert_golden("shapes.png", &f);
}

#[test]
fn golden_text() {
    let f = make_frame(&data_dir().join("text.rhai"), "160x120");
    assert_golden("text.png", &f);
}

#[test]
fn golden_images() {
    let f = make_frame(&data_dir().join("image.rhai"), "160x120");
    assert_golden("image.png", &f);
}

#[test]
fn text_renders_at_the_requested_position() {
    let f = rgba(&make_frame(
        &data_dir().join("text-position.rhai"),
        "160x120",
    ));
    // bounding box of lit pixels
    let (mut x0, mut y0, mut x1, mut y1, mut lit) = (usize::MAX, usize::MAX, 0, 0, 0);
    for y in 0..120 {
        let row = f.row(0, y);
        for x in 0..160 {
            if row[4 * x] > 128 {
                lit += 1;
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    assert!(lit > 50, "text is blank ({lit} lit pixels)");
    // top-left at (40, 30), within the glyph's side bearing and the font's ascent gap
    assert!((40..=44).contains(&x0), "left edge at {x0}");
    assert!((30..=40).contains(&y0), "top edge at {y0}");
    assert!(
        (55..=70).contains(&x1) && (50..=62).contains(&y1),
        "bottom-right at {x1},{y1}"
    );
}

#[test]
fn overlay_keeps_format_timestamps_and_metadata_and_passes_other_messages() {
    // a stream with metadata, an audio stream and data messages, made here
    let mut w = Writer::new(Vec::new()).unwrap();
    let fps = Rational::new(25, 1);
    w.write_stream_info(0, &StreamInfo::raw_video(PixelFormat::I420, 64, 48, fps))
        .unwrap();
    let audio = AudioChunk::new(SampleFormat::S16, 48000, 2, false, 4, vec![1; 16]).unwrap();
    for n in 0..4u64 {
        let mut f = VideoFrame::new(PixelFormat::I420, 64, 48).unwrap();
        f.data_mut().fill(128);
        f.info.frame_number = n;
        f.info.pts = 1000 + n as i64;
        f.info.time_base = fps.inverse();
        f.info.source_id = "cam".into();
        f.info.metadata.insert("tag", format!("t{n}"));
        w.write_video(0, &f).unwrap();
        w.write_audio(1, &audio).unwrap();
        w.write_data(
            2,
            &DataMessage {
                info: FrameInfo::default(),
                payload: vec![n as u8; 3],
            },
        )
        .unwrap();
    }
    w.finish().unwrap();
    let input = w.get_ref().clone();
    let circle = path_str(&examples_dir().join("circle.rhai"));
    let out = Pipeline::new()
        .stdin(input.clone())
        .sl("sl-draw", &[&circle])
        .run();
    out.assert_success();
    let msgs = out.messages();
    let frames = sl_e2e::video_frames(&msgs);
    assert_eq!(frames.len(), 4);
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.format(), PixelFormat::I420);
        assert_eq!(f.info.pts, 1000 + n as i64);
        assert_eq!(f.info.frame_number, n as u64);
        assert_eq!(f.info.source_id, "cam");
        assert_eq!(
            f.info.metadata.get("tag"),
            Some(&Value::Str(format!("t{n}")))
        );
        // the circle is drawn in the middle, the corner untouched (grey 128 in YUV)
        assert!(
            pixel(f, 32, 24)[0] > 200,
            "centre is red: {:?}",
            pixel(f, 32, 24)
        );
        assert_eq!(f.plane(0)[0], 128);
    }
    let audio_out = msgs
        .iter()
        .filter(|m| matches!(m, Message::Audio { chunk, .. } if chunk.data() == audio.data()))
        .count();
    let data_out = msgs
        .iter()
        .filter(|m| matches!(m, Message::Data { .. }))
        .count();
    assert_eq!((audio_out, data_out), (4, 4), "audio and data pass through");

    // --format converts the output
    let out = Pipeline::new()
        .stdin(input)
        .sl("sl-draw", &[&circle, "--format", "rgba"])
        .run();
    out.assert_success();
    assert!(out.frames().iter().all(|f| f.format() == PixelFormat::Rgba));
}

#[test]
fn overlay_on_every_sl_test_format() {
    let circle = path_str(&examples_dir().join("circle.rhai"));
    for fmt in ["rgba", "bgra", "rgb24", "gray8", "i420", "nv12"] {
        let out = Pipeline::new()
            .sl(
                "sl-test",
                &[
                    "--fast", "-n", "2", "-s", "320x240", "-p", "solid", "-f", fmt,
                ],
            )
            .sl("sl-draw", &[&circle, "--strict"])
            .run();
        out.assert_success();
        let frames = out.frames();
        assert_eq!(frames.len(), 2, "{fmt}");
        assert_eq!(frames[0].format().name(), fmt);
        let c = pixel(&frames[0], 160, 120);
        assert!(
            c[0] > 60,
            "{fmt}: centre is drawn (red, or its luma): {c:?}"
        );
        let c = pixel(&frames[0], 2, 2);
        assert!(c[0] < 40, "{fmt}: corner is not: {c:?}");
    }
}

fn boxes_stream() -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).unwrap();
    w.write_stream_info(
        0,
        &StreamInfo::raw_video(PixelFormat::Rgba, 160, 120, Rational::new(30, 1)),
    )
    .unwrap();
    let mut f = VideoFrame::new(PixelFormat::Rgba, 160, 120).unwrap();
    for px in f.data_mut().chunks_exact_mut(4) {
        px.copy_from_slice(&[0, 0, 0, 255]);
    }
    f.info.metadata.insert(
        "detections",
        vec![
            BBox {
                x: 20.0,
                y: 40.0,
                w: 50.0,
                h: 60.0,
                score: 0.9,
                class_id: 0,
                label: "person".into(),
            },
            BBox {
                x: 100.0,
                y: 50.0,
                w: 40.0,
                h: 30.0,
                score: 0.5,
                class_id: 2,
                label: String::new(),
            },
        ],
    );
    w.write_video(0, &f).unwrap();
    w.finish().unwrap();
    w.get_ref().clone()
}

#[test]
fn every_example_draws_without_errors() {
    let ex = examples_dir();
    let mut n = 0;
    for entry in std::fs::read_dir(&ex).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        n += 1;
        let s = path_str(&p);
        let name = p.file_name().unwrap().to_str().unwrap();
        let out = if matches!(name, "boxes.rhai" | "anonymise.rhai") {
            Pipeline::new()
                .stdin(boxes_stream())
                .sl("sl-draw", &[&s, "--strict"])
                .run()
        } else {
            Pipeline::new()
                .sl(
                    "sl-test",
                    &["--fast", "-n", "3", "-s", "320x180", "-p", "solid"],
                )
                .sl("sl-draw", &[&s, "--strict", "--set", "home=3"])
                .run()
        };
        out.assert_success();
        let last = out.stages.len() - 1;
        assert!(
            stderr_of(&out, last).is_empty(),
            "{}: {}",
            p.display(),
            stderr_of(&out, last)
        );
        if name == "anonymise.rhai" {
            // it hides boxes on black frames here: anonymise.rs checks what it does to pixels
            continue;
        }
        let frames = out.frames();
        let f = rgba(&frames[frames.len() - 1]);
        assert!(
            f.data().chunks_exact(4).any(|px| px[..3] != [0, 0, 0]),
            "{}: nothing drawn",
            p.display()
        );
    }
    assert!(n >= 7, "examples/ holds {n} scripts");
}

#[test]
fn boxes_from_metadata_are_drawn() {
    let s = path_str(&examples_dir().join("boxes.rhai"));
    let out = Pipeline::new()
        .stdin(boxes_stream())
        .sl("sl-draw", &[&s, "--strict"])
        .run();
    out.assert_success();
    let f = &out.frames()[0];
    // the box outlines (class 0 red, class 2 blue), not the inside
    assert!(pixel(f, 20, 70)[0] > 200, "left edge of box 1");
    assert_eq!(pixel(f, 45, 70), [0, 0, 0, 255], "inside box 1");
    let c = pixel(f, 120, 80);
    assert!(c[2] > 200, "bottom edge of box 2 is blue: {c:?}");
    // the label above box 1
    assert!(pixel(f, 22, 30)[0] > 200, "label background above box 1");
}

#[test]
fn set_variables_are_typed_and_missing_ones_default() {
    let dir = scratch_dir("draw-set");
    let s = write_script(
        &dir,
        "vars.rhai",
        r#"fn draw(canvas, ctx) {
            let n = ctx.get_var("n", 0);
            if type_of(n) != "i64" { throw "n is " + type_of(n); }
            let missing = ctx.get_var("score", "No score");
            if missing != "No score" { throw "missing var"; }
            if ctx.vars.get("absent", 5) != 5 || ctx.vars.get("n", 0) != n { throw "map get"; }
            canvas.clear(rgb(n, 0, 0));
        }"#,
    );
    let out = Pipeline::new()
        .sl(
            "sl-draw",
            &[
                &path_str(&s),
                "--size",
                "8x8",
                "--fast",
                "-n",
                "1",
                "--strict",
                "--set",
                "n=200",
            ],
        )
        .run();
    out.assert_success();
    assert_eq!(pixel(&out.frames()[0], 4, 4), [200, 0, 0, 255]);
}

/// sl-draw running in source mode, read frame by frame.
struct Live {
    child: Child,
    reader: Reader<ChildStdout>,
    stderr: PathBuf,
}

impl Live {
    fn start(dir: &Path, args: &[&str]) -> Live {
        let stderr = dir.join("stderr.txt");
        let mut child = Command::new(bin("sl-draw"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start sl-draw");
        let reader = Reader::new(child.stdout.take().unwrap()).expect("stream header");
        Live {
            child,
            reader,
            stderr,
        }
    }

    fn next_frame(&mut self) -> VideoFrame {
        loop {
            match self.reader.next_message().expect("a frame") {
                Some(Message::Video { frame, .. }) => return frame,
                Some(_) => {}
                None => panic!("stream ended early; stderr: {}", self.stderr()),
            }
        }
    }

    /// Read frames until one satisfies `pred` (panics after 30 s).
    fn wait_for(&mut self, what: &str, pred: impl Fn(&VideoFrame) -> bool) -> VideoFrame {
        let t = Instant::now();
        loop {
            let f = self.next_frame();
            if pred(&f) {
                return f;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no frame with {what} after 30 s; stderr: {}",
                self.stderr()
            );
        }
    }

    fn wait_for_stderr(&mut self, needle: &str) {
        let t = Instant::now();
        while !self.stderr().contains(needle) {
            // keep the stream moving
            let _ = self.next_frame();
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "stderr never said {needle:?}: {}",
                self.stderr()
            );
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn red(f: &VideoFrame) -> u8 {
    pixel(f, 4, 4)[0]
}

const LEVEL: &str =
    r#"fn draw(canvas, ctx) { canvas.clear(rgb(ctx.get_var("level", 10), 0, 0)); }"#;

#[test]
fn variables_arrive_over_a_control_socket() {
    let dir = scratch_dir("draw-control-socket");
    let s = write_script(&dir, "level.rhai", LEVEL);
    let sock = dir.join("ctl.sock");
    let mut live = Live::start(
        &dir,
        &[
            &path_str(&s),
            "--size",
            "8x8",
            "--fps",
            "100",
            "--control",
            &path_str(&sock),
        ],
    );
    assert_eq!(red(&live.next_frame()), 10, "default before any update");
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    conn.write_all(b"level=200\n").unwrap();
    live.wait_for("level 200", |f| red(f) == 200);
    conn.write_all(b"{\"level\": 77}\n").unwrap();
    live.wait_for("level 77", |f| red(f) == 77);
    // a second client works too
    let mut other = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    other.write_all(b"level=5\n").unwrap();
    live.wait_for("level 5", |f| red(f) == 5);
}

#[test]
fn variables_arrive_over_a_fifo() {
    let dir = scratch_dir("draw-control-fifo");
    let s = write_script(&dir, "level.rhai", LEVEL);
    let fifo = dir.join("ctl.fifo");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let mut live = Live::start(
        &dir,
        &[
            &path_str(&s),
            "--size",
            "8x8",
            "--fps",
            "100",
            "--control",
            &path_str(&fifo),
        ],
    );
    assert_eq!(red(&live.next_frame()), 10);
    for v in [150u8, 60] {
        // each writer opens, writes and closes: sl-draw reopens for the next one
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        writeln!(f, "level={v}").unwrap();
        drop(f);
        live.wait_for(&format!("level {v}"), |fr| red(fr) == v);
    }
}

#[test]
fn hot_reload_swaps_scripts_and_keeps_the_old_one_on_errors() {
    let dir = scratch_dir("draw-reload");
    let s = write_script(
        &dir,
        "live.rhai",
        r##"fn draw(canvas, ctx) { canvas.clear("#ff0000"); }"##,
    );
    let mut live = Live::start(&dir, &[&path_str(&s), "--size", "8x8", "--fps", "100"]);
    live.wait_for("red", |f| pixel(f, 1, 1) == [255, 0, 0, 255]);
    write_script(
        &dir,
        "live.rhai",
        r##"fn draw(canvas, ctx) { canvas.clear("#0000ff");   }"##,
    );
    live.wait_for("blue after reload", |f| pixel(f, 1, 1) == [0, 0, 255, 255]);
    // a broken version: the error is shown with its position, blue keeps coming
    write_script(
        &dir,
        "live.rhai",
        "fn draw(canvas, ctx) {\n  canvas.clear(\n}\n",
    );
    live.wait_for_stderr("live.rhai:3:1");
    for _ in 0..5 {
        assert_eq!(pixel(&live.next_frame(), 1, 1), [0, 0, 255, 255]);
    }
    write_script(
        &dir,
        "live.rhai",
        r##"fn draw(canvas, ctx) { canvas.clear("#00ff00"); }"##,
    );
    live.wait_for("green after the fix", |f| {
        pixel(f, 1, 1) == [0, 255, 0, 255]
    });
    // init runs again for a reloaded script
    write_script(
        &dir,
        "live.rhai",
        r##"fn init(ctx) { this.c = "#ffffff"; } fn draw(canvas, ctx) { canvas.clear(this.c); }"##,
    );
    live.wait_for("white from init", |f| {
        pixel(f, 1, 1) == [255, 255, 255, 255]
    });
}

/// Run `script` over 6 solid frames; returns the outcome.
fn overlay(script: &Path, extra: &[&str]) -> Outcome {
    let s = path_str(script);
    let mut args = vec![s.as_str()];
    args.extend_from_slice(extra);
    Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast", "-n", "6", "-s", "32x24", "-p", "solid", "--color", "#102030",
            ],
        )
        .sl("sl-draw", &args)
        .run()
}

#[test]
fn a_runtime_error_passes_frames_through_and_is_shown_once() {
    let dir = scratch_dir("draw-runtime-error");
    let s = write_script(
        &dir,
        "err.rhai",
        "fn draw(canvas, ctx) {\n    canvas.clear(\"#ffffff\");\n    if ctx.frame_number >= 2 && ctx.frame_number < 4 {\n        no_such_function(1);\n    }\n}\n",
    );
    let out = overlay(&s, &[]);
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 6);
    let white = [255, 255, 255, 255];
    let input = [0x10, 0x20, 0x30, 255];
    let got: Vec<[u8; 4]> = frames.iter().map(|f| pixel(f, 3, 3)).collect();
    assert_eq!(got, vec![white, white, input, input, white, white]);
    let err = stderr_of(&out, 1);
    assert_eq!(err.matches("err.rhai:4:9").count(), 1, "shown once: {err}");
    assert!(err.contains("no_such_function"), "{err}");
    assert!(err.contains("draws again"), "{err}");
}

#[test]
fn an_endless_loop_is_stopped_by_the_operations_limit() {
    let dir = scratch_dir("draw-endless");
    let s = write_script(
        &dir,
        "spin.rhai",
        "fn draw(canvas, ctx) {\n    canvas.clear(\"#ffffff\");\n    loop { }\n}\n",
    );
    let out = overlay(&s, &["--max-ops", "20000"]);
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 6, "the stream keeps flowing");
    assert!(
        frames
            .iter()
            .all(|f| pixel(f, 3, 3) == [0x10, 0x20, 0x30, 255])
    );
    let err = stderr_of(&out, 1);
    assert!(err.contains("more than 20000 operations"), "{err}");
    assert_eq!(err.matches("spin.rhai:").count(), 1, "shown once: {err}");
}

#[test]
fn a_slow_frame_is_stopped_by_the_time_limit() {
    let dir = scratch_dir("draw-slow");
    let s = write_script(&dir, "slow.rhai", "fn draw(canvas, ctx) { loop { } }\n");
    let out = overlay(&s, &["--max-ops", "0", "--time-limit", "20ms", "-n", "3"]);
    out.assert_success();
    assert_eq!(out.frames().len(), 3);
    assert!(
        stderr_of(&out, 1).contains("took longer than 20 ms"),
        "{}",
        stderr_of(&out, 1)
    );
}

#[test]
fn strict_makes_errors_fatal() {
    let dir = scratch_dir("draw-strict");
    let s = write_script(
        &dir,
        "bad.rhai",
        "fn draw(canvas, ctx) {\n  canvas.fill_rect(0, 0, 10, 10, \"not-a-colour\");\n}\n",
    );
    let out = overlay(&s, &["--strict"]);
    assert_eq!(out.stage(1).code, Some(1));
    let err = stderr_of(&out, 1);
    assert!(err.contains("bad.rhai:2:10"), "{err}");
    assert!(err.contains("not a colour"), "{err}");
    // without --strict the same script leaves the stream flowing
    let out = overlay(&s, &[]);
    out.assert_success();
    assert_eq!(out.frames().len(), 6);
}

#[test]
fn a_script_that_does_not_compile_fails_at_start() {
    let dir = scratch_dir("draw-compile");
    let s = write_script(
        &dir,
        "broken.rhai",
        "fn draw(canvas, ctx) {\n  let x = ;\n}\n",
    );
    let out = overlay(&s, &[]);
    assert_eq!(out.stage(1).code, Some(1));
    assert!(
        stderr_of(&out, 1).contains("broken.rhai:2:"),
        "{}",
        stderr_of(&out, 1)
    );
    let s = write_script(&dir, "nodraw.rhai", "fn paint(c) {}\n");
    let out = overlay(&s, &[]);
    assert!(stderr_of(&out, 1).contains("fn draw(canvas, ctx)"));
}

#[test]
fn scripts_cannot_read_files_import_modules_or_eval() {
    let dir = scratch_dir("draw-sandbox");
    // files outside the script's folder
    for (name, file) in [
        ("abs.rhai", "/etc/passwd"),
        ("up.rhai", "../draw-sandbox/x.png"),
    ] {
        let s = write_script(
            &dir,
            name,
            &format!("fn draw(canvas, ctx) {{ let i = load_image(\"{file}\"); }}\n"),
        );
        let out = overlay(&s, &["--strict"]);
        assert_eq!(out.stage(1).code, Some(1), "{name}");
        assert!(
            stderr_of(&out, 1).contains("inside their own folder"),
            "{name}: {}",
            stderr_of(&out, 1)
        );
    }
    // no file functions at all
    let s = write_script(
        &dir,
        "open.rhai",
        "fn draw(canvas, ctx) { let f = open_file(\"/etc/passwd\"); }\n",
    );
    let out = overlay(&s, &["--strict"]);
    assert!(
        stderr_of(&out, 1).contains("Function not found"),
        "{}",
        stderr_of(&out, 1)
    );
    // import
    std::fs::write(dir.join("evil.rhai"), "fn x() { 1 }").unwrap();
    let s = write_script(
        &dir,
        "import.rhai",
        "fn draw(canvas, ctx) {\n  import \"evil\" as e;\n}\n",
    );
    let out = overlay(&s, &["--strict"]);
    assert_eq!(out.stage(1).code, Some(1));
    assert!(
        stderr_of(&out, 1).contains("cannot load modules"),
        "{}",
        stderr_of(&out, 1)
    );
    // eval
    let s = write_script(&dir, "eval.rhai", "fn draw(canvas, ctx) { eval(\"1\"); }\n");
    let out = overlay(&s, &[]);
    assert_eq!(out.stage(1).code, Some(1));
    assert!(
        stderr_of(&out, 1).contains("eval"),
        "{}",
        stderr_of(&out, 1)
    );
}

#[test]
fn print_goes_to_stderr_not_into_the_stream() {
    let dir = scratch_dir("draw-print");
    let s = write_script(
        &dir,
        "talk.rhai",
        "print(\"loaded\");\nfn draw(canvas, ctx) { print(`frame ${ctx.frame_number}`); debug(42); }\n",
    );
    let out = overlay(&s, &["--strict"]);
    out.assert_success();
    assert_eq!(out.frames().len(), 6, "stdout is still a clean stream");
    let err = stderr_of(&out, 1);
    assert!(
        err.contains("loaded") && err.contains("frame 5") && err.contains("42"),
        "{err}"
    );
}

#[test]
fn sandbox_limits_give_clear_messages() {
    let dir = scratch_dir("draw-limits");
    let s = write_script(
        &dir,
        "big.rhai",
        "fn draw(canvas, ctx) { let s = \"x\"; loop { s += s; } }\n",
    );
    let out = overlay(&s, &["--strict"]);
    assert_eq!(out.stage(1).code, Some(1));
    assert!(
        stderr_of(&out, 1).contains("larger than the sandbox allows"),
        "{}",
        stderr_of(&out, 1)
    );
    let s = write_script(
        &dir,
        "deep.rhai",
        "fn f(n) { f(n + 1) }\nfn draw(canvas, ctx) { f(0); }\n",
    );
    let out = overlay(&s, &["--strict"]);
    assert!(
        stderr_of(&out, 1).contains("nested more than"),
        "{}",
        stderr_of(&out, 1)
    );
}

#[test]
fn source_mode_makes_paced_transparent_frames() {
    let dir = scratch_dir("draw-source");
    let s = write_script(
        &dir,
        "half.rhai",
        "fn draw(canvas, ctx) { canvas.fill_rect(0, 0, 4, 8, rgba(255, 0, 0, 0.5)); }\n",
    );
    let out = Pipeline::new()
        .sl(
            "sl-draw",
            &[
                &path_str(&s),
                "--size",
                "8x8",
                "--fps",
                "50",
                "-n",
                "5",
                "--format",
                "bgra",
            ],
        )
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[4].info.pts, 4);
    assert_eq!(frames[4].info.time_base, Rational::new(1, 50));
    assert_eq!(frames[0].format(), PixelFormat::Bgra);
    // straight alpha out: half-transparent red, and untouched pixels fully transparent
    let p = pixel(&frames[0], 1, 1);
    assert!(p[0] >= 254 && p[3].abs_diff(128) <= 1, "{p:?}");
    assert_eq!(pixel(&frames[0], 6, 1), [0, 0, 0, 0]);
}

/// Not a check: writes every example's output over colour bars as PNGs into
/// target/release/e2e-scratch/draw-examples/ to look at.
/// `cargo test --release -p sl-e2e --test sl_draw -- --ignored dump_examples`
#[test]
#[ignore]
fn dump_examples() {
    let dir = scratch_dir("draw-examples");
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        let s = path_str(&p);
        let out = if p.file_name().unwrap() == "boxes.rhai" {
            Pipeline::new()
                .stdin(boxes_stream())
                .sl("sl-draw", &[&s])
                .run()
        } else {
            Pipeline::new()
                .sl("sl-test", &["--fast", "-n", "20", "-s", "640x360"])
                .sl("sl-draw", &[&s, "--set", "home=3", "--set", "away=1"])
                .run()
        };
        out.assert_success();
        let frames = out.frames();
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        write_png(&dir.join(format!("{name}.png")), &frames[frames.len() - 1]);
    }
    eprintln!("PNGs in {}", dir.display());
}

#[test]
fn fonts_load_from_the_script_folder() {
    let system = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf");
    assert!(
        system.exists(),
        "no {}: scripts/setup.sh installs it (fonts-dejavu-core, scripts/deps/sl-draw.apt)",
        system.display()
    );
    let dir = scratch_dir("draw-font");
    std::fs::create_dir_all(dir.join("fonts")).unwrap();
    std::fs::copy(system, dir.join("fonts/serif.ttf")).unwrap();
    let s = write_script(
        &dir,
        "serif.rhai",
        r#"fn init(ctx) { this.serif = load_font("fonts/serif.ttf"); }
        fn draw(canvas, ctx) {
            canvas.clear("black");
            canvas.font(this.serif);
            canvas.font_size(30);
            canvas.text_baseline("top");
            let w = canvas.measure_text("Serif").width;
            if w < 40 || w > 120 { throw `width ${w}`; }
            canvas.text("Serif", 4, 4, "white");
        }"#,
    );
    let f = rgba(&make_frame(&s, "128x48"));
    let lit = f.data().chunks_exact(4).filter(|p| p[0] > 128).count();
    assert!(lit > 100, "{lit} lit pixels");
    // an unknown font name is an error that says what to do
    let s = write_script(
        &dir,
        "nofont.rhai",
        "fn draw(canvas, ctx) { canvas.font(\"comic\"); }",
    );
    let out = overlay(&s, &["--strict"]);
    assert!(
        stderr_of(&out, 1).contains("load_font"),
        "{}",
        stderr_of(&out, 1)
    );
}

#[test]
fn a_second_sl_draw_cannot_take_over_a_control_socket() {
    let dir = scratch_dir("draw-control-twice");
    let s = write_script(&dir, "level.rhai", LEVEL);
    let sock = dir.join("ctl.sock");
    let (s, sock) = (path_str(&s), path_str(&sock));
    let args = [
        s.as_str(),
        "--size",
        "8x8",
        "--fps",
        "100",
        "--control",
        &sock,
    ];
    let mut first = Live::start(&dir, &args);
    assert_eq!(red(&first.next_frame()), 10);
    let second = Pipeline::new()
        .sl("sl-draw", &[args.as_slice(), &["-n", "1"]].concat())
        .timeout(Duration::from_secs(30))
        .run();
    assert_eq!(second.stage(0).code, Some(1), "{}", second.stage(0).stderr);
    assert!(
        second
            .stage(0)
            .stderr
            .contains("another process is listening"),
        "{}",
        second.stage(0).stderr
    );
    // the first one still owns its socket
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    conn.write_all(b"level=200\n").unwrap();
    first.wait_for("level 200", |f| red(f) == 200);
}

#[test]
fn a_script_that_is_a_fifo_is_refused_at_once() {
    let dir = scratch_dir("draw-script-fifo");
    let fifo = dir.join("script.rhai");
    let _ = std::fs::remove_file(&fifo);
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo");
    let out = Pipeline::new()
        .sl(
            "sl-draw",
            &[&path_str(&fifo), "--size", "8x8", "--fast", "-n", "1"],
        )
        .timeout(Duration::from_secs(30))
        .run();
    assert_eq!(out.stage(0).code, Some(2), "{}", out.stage(0).stderr);
    assert!(
        out.stage(0).stderr.contains("not a regular file"),
        "{}",
        out.stage(0).stderr
    );
}

#[test]
fn an_empty_progress_bar_draws_nothing_without_a_warning_per_frame() {
    let dir = scratch_dir("draw-zero-width");
    // a progress bar at 0%, a zero-height line of a chart, a clip to nothing
    let s = write_script(
        &dir,
        "bar.rhai",
        r##"fn draw(canvas, ctx) {
  canvas.fill_rect(2, 2, 0, 10, "#ff0000");
  canvas.fill_rect(2, 2, 10, 0.0, "#ff0000");
  canvas.save();
  canvas.scale(0.0, 1.0);
  canvas.fill_rect(0, 0, 30, 20, "#ff0000");
  canvas.restore();
  canvas.save();
  canvas.clip_rect(0, 0, 0, 0);
  canvas.fill_rect(0, 0, 30, 20, "#ff0000");
  canvas.restore();
}
"##,
    );
    let out = overlay(&s, &["--strict"]);
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 6);
    assert!(
        frames
            .iter()
            .all(|f| pixel(f, 3, 3) == [0x10, 0x20, 0x30, 255]),
        "nothing is drawn"
    );
    let err = stderr_of(&out, 1);
    assert!(!err.contains("cannot be filled"), "{err}");
    assert!(err.trim().is_empty(), "no warnings: {err}");
}
