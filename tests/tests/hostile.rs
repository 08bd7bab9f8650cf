//! Hostile input, end to end: what adversarial testing found, kept as tests, and the fuzzing
//! that found it, bounded in time. `SL_FUZZ_LONG=1` runs the fuzzers twenty times longer.
//!
//! - Wire: a message with 65,535 metadata keys is refused at once; mutated streams through
//!   sl-info, sl-info --pass and sl-draw end with exit 0 or 1 (never a panic, a signal or a
//!   hang) under a 2 GB address-space limit.
//! - sl-draw: drawing that could not finish in time passes undrawn with a message (frame
//!   counts); the glyph cache, map keys and images stay bounded (the process's peak RSS,
//!   VmHWM, read while it waits for more input); random scripts never crash it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, sync_channel};
use std::time::Duration;

use sl_e2e::{Outcome, Pipeline, bin, scratch_dir};
use sl_frame::{BBox, PixelFormat, Rational, VideoFrame};
use sl_wire::{Message, Reader, StreamInfo, Writer};

fn long_fuzz() -> bool {
    std::env::var_os("SL_FUZZ_LONG").is_some_and(|v| v != "0")
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

fn write_script(dir: &Path, name: &str, src: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, src).expect("write script");
    p
}

// ---------------------------------------------------------------- wire: metadata

/// A stream whose one DATA message carries `count` int metadata entries under `key(i)`.
fn metadata_bomb(count: usize, key: impl Fn(usize) -> String) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&0u64.to_le_bytes());
    header.extend_from_slice(&0i64.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&30u32.to_le_bytes());
    header.extend_from_slice(&1i64.to_le_bytes());
    header.push(0);
    header.extend_from_slice(&[0; 16]);
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&(count as u16).to_le_bytes());
    for i in 0..count {
        let k = key(i);
        header.extend_from_slice(&(k.len() as u16).to_le_bytes());
        header.extend_from_slice(k.as_bytes());
        header.push(2);
        header.extend_from_slice(&8u32.to_le_bytes());
        header.extend_from_slice(&(i as i64).to_le_bytes());
    }
    let mut bytes = Writer::new(Vec::new()).unwrap().get_ref().clone();
    bytes.extend_from_slice(&[5, 0, 0, 0]);
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[6, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

#[test]
fn a_message_with_65535_metadata_keys_is_refused_by_every_stage() {
    // the repro: 16 MB of header, 65,535 keys that differ only at the end
    let bomb = metadata_bomb(65_535, |i| format!("{i:>240}"));
    assert!(bomb.len() > 16_000_000 && bomb.len() < 16 << 20);
    for args in [&[][..], &["--json"][..], &["--pass"][..]] {
        let out = Pipeline::new()
            .sl("sl-info", args)
            .stdin(bomb.clone())
            .timeout(Duration::from_secs(60))
            .run();
        let s = out.stage(0);
        assert_eq!(s.code, Some(1), "sl-info {args:?}: {}", s.stderr);
        assert!(
            s.stderr.contains("65535 metadata entries") && s.stderr.contains("at most 1024"),
            "sl-info {args:?}: {}",
            s.stderr
        );
    }
    let dir = scratch_dir("hostile-metadata");
    let script = write_script(&dir, "nop.rhai", "fn draw(canvas, ctx) { }\n");
    let out = Pipeline::new()
        .sl("sl-draw", &[&path_str(&script)])
        .stdin(bomb)
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(out.stage(0).code, Some(1), "{}", out.stage(0).stderr);
    assert!(out.stage(0).stderr.contains("at most 1024"));
}

// ---------------------------------------------------------------- wire: mutated streams

/// A small stream with everything in it: video with boxes, audio, data, ends.
fn seed_streams() -> Vec<Vec<u8>> {
    let golden = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/golden-v1.slv"))
        .expect("tests/data/golden-v1.slv");
    let mut w = Writer::new(Vec::new()).unwrap();
    w.write_stream_info(
        0,
        &StreamInfo::raw_video(PixelFormat::I420, 16, 8, Rational::new(30, 1)),
    )
    .unwrap();
    for n in 0..3u64 {
        let mut f = VideoFrame::new(PixelFormat::I420, 16, 8).unwrap();
        f.info.frame_number = n;
        f.info.pts = n as i64;
        f.info.time_base = Rational::new(1, 30);
        f.info.metadata.insert("n", n as i64);
        f.info.metadata.insert(
            "detections",
            vec![BBox {
                x: 1.0,
                y: 2.0,
                w: 3.0,
                h: 4.0,
                score: 0.5,
                class_id: 1,
                label: "x".into(),
            }],
        );
        w.write_video(0, &f).unwrap();
    }
    w.finish().unwrap();
    vec![golden, w.get_ref().clone()]
}

/// One random change to `b`: flipped bytes, boundary values over a length or count field,
/// a cut, a repeated or removed slice. The stream header is left alone most of the time, so
/// the mutations reach the messages.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    let from = if rng.below(10) == 0 { 0 } else { 16 };
    let at =
        |rng: &mut Rng, len: usize| from + rng.below((len.max(from + 1) - from) as u64) as usize;
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = at(rng, b.len());
                if i < b.len() {
                    b[i] = rng.next() as u8;
                }
            }
        }
        1 => {
            let v: u64 = *rng.pick(&[
                0,
                1,
                0x7f,
                0x80,
                0xff,
                0xffff,
                0xffff_ffff,
                u64::MAX,
                1 << 31,
            ]);
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let i = at(rng, b.len());
            for k in 0..width {
                if i + k < b.len() {
                    b[i + k] = (v >> (8 * k)) as u8;
                }
            }
        }
        2 => {
            let i = at(rng, b.len()).min(b.len());
            b.truncate(i);
        }
        3 => {
            let i = at(rng, b.len()).min(b.len());
            let j = (i + rng.below(64) as usize).min(b.len());
            let piece = b[i..j].to_vec();
            let k = at(rng, b.len()).min(b.len());
            b.splice(k..k, piece);
        }
        4 => {
            let i = at(rng, b.len()).min(b.len());
            let j = (i + rng.below(32) as usize).min(b.len());
            b.drain(i..j);
        }
        _ => {
            // a message kind byte right after the stream header, or anywhere
            let i = at(rng, b.len());
            if i < b.len() {
                b[i] = rng.below(9) as u8;
            }
        }
    }
}

/// Run `args` under a 2 GB address-space limit (an allocation past it aborts, which the
/// test sees as a signal).
fn bounded(bin_path: &Path, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        "-c".to_string(),
        "ulimit -v 2097152 && exec \"$0\" \"$@\"".to_string(),
        path_str(bin_path),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

fn assert_clean_end(out: &Outcome, what: &str, input: &[u8]) {
    let s = out.stage(0);
    assert!(
        matches!(s.code, Some(0 | 1)),
        "{what} on a mutated stream exited {:?} (signal {:?}); stderr:\n{}\ninput ({} bytes): {:02x?}",
        s.code,
        s.signal,
        s.stderr,
        input.len(),
        &input[..input.len().min(512)]
    );
}

#[test]
fn mutated_streams_end_cleanly_in_every_stage() {
    let n = if long_fuzz() { 4000 } else { 200 };
    let dir = scratch_dir("hostile-mutations");
    let script = write_script(
        &dir,
        "boxes.rhai",
        "fn draw(canvas, ctx) { for b in ctx.boxes { canvas.stroke_rect(b.x, b.y, b.w, b.h, \"red\"); } canvas.text(`${ctx.frame_number}`, 1, 8, \"white\"); }\n",
    );
    let seeds = seed_streams();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let info = bin("sl-info");
    let draw = bin("sl-draw");
    let script = path_str(&script);
    let stages: [(&Path, Vec<&str>); 3] = [
        (&info, vec!["--json"]),
        (&info, vec!["--pass"]),
        (&draw, vec![script.as_str()]),
    ];
    let mut failures_seen = 0;
    for i in 0..n {
        let mut b = rng.pick(&seeds).clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut rng, &mut b);
        }
        let (program, args) = &stages[i % stages.len()];
        let out = Pipeline::new()
            .cmd(
                "sh",
                &bounded(program, args)
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .stdin(b.clone())
            .timeout(Duration::from_secs(30))
            .run();
        assert_clean_end(&out, &format!("{} {args:?}", program.display()), &b);
        if out.stage(0).code == Some(1) {
            failures_seen += 1;
        }
    }
    // the mutations must actually reach the decoders
    assert!(
        failures_seen > n / 4,
        "only {failures_seen} of {n} mutated streams were refused"
    );
}

// ---------------------------------------------------------------- sl-draw: drawing budget

/// sl-test frames through sl-draw `script`; the outcome.
fn overlay(script: &Path, frames: &str, size: &str, extra: &[&str]) -> Outcome {
    let s = path_str(script);
    let mut args = vec![s.as_str()];
    args.extend_from_slice(extra);
    Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast", "-n", frames, "-s", size, "-p", "solid", "--color", "#102030",
            ],
        )
        .sl("sl-draw", &args)
        .timeout(Duration::from_secs(120))
        .run()
}

fn centre(f: &VideoFrame) -> [u8; 4] {
    let f = sl_frame::convert::to_format(f, PixelFormat::Rgba).to_packed();
    let (x, y) = (f.width() as usize / 2, f.height() as usize / 2);
    let r = f.row(0, y);
    [r[4 * x], r[4 * x + 1], r[4 * x + 2], r[4 * x + 3]]
}

fn assert_undrawn_with_budget_message(out: &Outcome, frames: usize) {
    out.assert_success();
    let got = out.frames();
    assert_eq!(got.len(), frames, "every frame passes");
    assert!(
        got.iter().all(|f| centre(f) == [0x10, 0x20, 0x30, 255]),
        "the frames pass undrawn"
    );
    let err = &out.stage(1).stderr;
    assert!(
        err.contains("frame passes undrawn") && err.contains("--time-limit"),
        "{err}"
    );
    assert_eq!(
        err.matches("canvases' worth").count(),
        1,
        "shown once: {err}"
    );
}

#[test]
fn ninety_nine_thousand_full_frame_fills_pass_undrawn() {
    let dir = scratch_dir("hostile-fills");
    let s = write_script(
        &dir,
        "fills.rhai",
        "fn draw(canvas, ctx) {\n  for i in 0..99999 { canvas.fill_rect(0, 0, ctx.width, ctx.height, \"#ff000080\"); }\n}\n",
    );
    // a generous time limit, so only the drawing budget can stop the frame
    let out = overlay(&s, "4", "640x360", &["--time-limit", "2s"]);
    assert_undrawn_with_budget_message(&out, 4);
}

#[test]
fn twenty_thousand_finely_dashed_lines_pass_undrawn() {
    let dir = scratch_dir("hostile-dashes");
    let s = write_script(
        &dir,
        "dashes.rhai",
        "fn draw(canvas, ctx) {\n  canvas.dash([0.1, 0.1]);\n  for i in 0..20000 { canvas.line(0, 0, ctx.width, ctx.height, \"white\"); }\n}\n",
    );
    let out = overlay(&s, "4", "640x360", &["--time-limit", "2s"]);
    assert_undrawn_with_budget_message(&out, 4);
}

#[test]
fn ordinary_heavy_drawing_stays_within_the_budget() {
    // a busy overlay: 2,000 shapes, 200 dashed lines and a page of text per frame
    let dir = scratch_dir("hostile-busy");
    let s = write_script(
        &dir,
        "busy.rhai",
        r##"fn draw(canvas, ctx) {
  for i in 0..1000 { canvas.fill_rect(i % 64 * 20, i / 64 * 20, 18, 18, "#00ff0040"); }
  for i in 0..1000 { canvas.fill_circle(i % 50 * 25, i / 50 * 36, 9, "#0000ff40"); }
  canvas.dash([4, 4]);
  for i in 0..200 { canvas.line(0, i * 3, ctx.width, ctx.height - i * 3, "yellow"); }
  canvas.font_size(18);
  for l in 0..30 { canvas.text("The quick brown fox jumps over the lazy dog 0123456789", 10, 20 + l * 22, "white"); }
  canvas.fill_rect(0, 0, ctx.width, ctx.height, "#ffffff10");
}
"##,
    );
    let out = overlay(&s, "3", "1280x720", &["--strict", "--time-limit", "5s"]);
    out.assert_success();
    assert_eq!(out.frames().len(), 3);
}

// ---------------------------------------------------------------- sl-draw: memory

/// sl-draw on `frames` frames of `w`x`h` fed by the test. After the last frame has come out,
/// while sl-draw waits for more input, its peak RSS (VmHWM, kB) is read from /proc.
/// Returns (frames out, VmHWM in MB, stderr).
fn draw_and_measure(
    script: &Path,
    extra: &[&str],
    frames: usize,
    w: u32,
    h: u32,
) -> (usize, u64, String) {
    let dir = script.parent().expect("script dir");
    let stderr_path = dir.join("stderr.txt");
    let mut child = Command::new(bin("sl-draw"))
        .arg(script)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start sl-draw");
    let pid = child.id();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (finish_tx, finish_rx) = channel::<()>();
    let feeder = std::thread::spawn(move || {
        let mut wr = Writer::new(stdin)?;
        wr.write_stream_info(
            0,
            &StreamInfo::raw_video(PixelFormat::Rgba, w, h, Rational::new(30, 1)),
        )?;
        for n in 0..frames as u64 {
            let mut f = VideoFrame::new(PixelFormat::Rgba, w, h).unwrap();
            for px in f.data_mut().chunks_exact_mut(4) {
                px.copy_from_slice(&[16, 32, 48, 255]);
            }
            f.info.frame_number = n;
            f.info.pts = n as i64;
            f.info.time_base = Rational::new(1, 30);
            wr.write_video(0, &f)?;
        }
        // keep stdin open until the measurement is taken
        let _ = finish_rx.recv();
        wr.finish()
    });
    let (count_tx, count_rx) = sync_channel::<usize>(0);
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        if let Ok(mut r) = Reader::new(stdout) {
            while let Ok(Some(m)) = r.next_message() {
                if let Message::Video { .. } = m {
                    n += 1;
                    if n == frames {
                        let _ = count_tx.send(n);
                    }
                }
            }
        }
        n
    });
    let got = count_rx.recv_timeout(Duration::from_secs(180));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let _ = finish_tx.send(());
    if got.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = feeder.join();
    let out = reader.join().unwrap_or(0);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        got.is_ok(),
        "sl-draw did not pass {frames} frames (got {out}); stderr:\n{stderr}"
    );
    assert!(hwm_kb > 0, "no VmHWM in /proc/{pid}/status");
    (out, hwm_kb / 1024, stderr)
}

#[test]
fn the_glyph_cache_stays_bounded_with_ever_new_text_sizes() {
    let dir = scratch_dir("hostile-glyphs");
    // 350 different glyphs at a new size every frame: about 1.5 GB of glyphs in 60 frames
    let glyphs: String = (0x21u32..0x17f)
        .filter_map(char::from_u32)
        .filter(|c| !matches!(c, '"' | '\\' | '$' | '`'))
        .collect();
    let s = write_script(
        &dir,
        "sizes.rhai",
        &format!(
            "fn draw(canvas, ctx) {{\n  canvas.font_size(100 + ctx.frame_number * 5);\n  canvas.text(\"{glyphs}\", 0, 400, \"white\");\n}}\n"
        ),
    );
    let (frames, hwm, stderr) = draw_and_measure(&s, &["--time-limit", "10s"], 60, 1280, 720);
    assert_eq!(frames, 60);
    assert!(hwm < 300, "sl-draw peaked at {hwm} MB; stderr:\n{stderr}");
}

#[test]
fn map_keys_count_against_the_memory_limit() {
    let dir = scratch_dir("hostile-map-keys");
    // 100 new half-megabyte keys a frame: 3 GB in 60 frames if nothing stops it
    let s = write_script(
        &dir,
        "keys.rhai",
        r#"fn init(ctx) {
  this.m = #{};
  this.k = "x";
  while this.k.len() < 500000 { this.k += this.k; }
}
fn draw(canvas, ctx) {
  for i in 0..100 { this.m[this.k + (ctx.frame_number * 1000 + i)] = 1; }
}
"#,
    );
    // a time limit a loaded machine cannot hit first: only memory may stop this script
    let (frames, hwm, stderr) = draw_and_measure(&s, &["--time-limit", "30s"], 60, 64, 48);
    assert_eq!(frames, 60);
    assert!(hwm < 800, "sl-draw peaked at {hwm} MB; stderr:\n{stderr}");
    assert!(stderr.contains("state was cleared"), "{stderr}");
}

#[test]
fn one_call_cannot_allocate_past_the_memory_limit() {
    let dir = scratch_dir("hostile-one-call");
    // 2,000 half-megabyte keys in one local map, in one call
    let s = write_script(
        &dir,
        "burst.rhai",
        r#"fn draw(canvas, ctx) {
  let k = "x";
  while k.len() < 500000 { k += k; }
  let m = #{};
  for i in 0..2000 { m[k + i] = 1; }
}
"#,
    );
    let (frames, hwm, stderr) =
        draw_and_measure(&s, &["--max-ops", "0", "--time-limit", "60s"], 3, 64, 48);
    assert_eq!(frames, 3);
    assert!(hwm < 600, "sl-draw peaked at {hwm} MB; stderr:\n{stderr}");
    assert!(stderr.contains("allocated more than 256 MB"), "{stderr}");
}

/// A baseline grey JPEG of `w`x`h` (multiples of 8) whose every block is flat: two bits a
/// block, so a huge image is a small file.
fn flat_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut j = vec![0xff, 0xd8];
    j.extend_from_slice(&[0xff, 0xdb, 0, 67, 0]);
    j.extend_from_slice(&[1; 64]);
    j.extend_from_slice(&[0xff, 0xc0, 0, 11, 8]);
    j.extend_from_slice(&h.to_be_bytes());
    j.extend_from_slice(&w.to_be_bytes());
    j.extend_from_slice(&[1, 1, 0x11, 0]);
    for class in [0x00u8, 0x10] {
        // one code, "0", for symbol 0 (DC: no difference; AC: end of block)
        j.extend_from_slice(&[0xff, 0xc4, 0, 20, class, 1]);
        j.extend_from_slice(&[0; 15]);
        j.push(0);
    }
    j.extend_from_slice(&[0xff, 0xda, 0, 8, 1, 1, 0x00, 0, 63, 0]);
    let blocks = (w as usize / 8) * (h as usize / 8);
    let bytes = (blocks * 2).div_ceil(8);
    j.extend(std::iter::repeat_n(0u8, bytes));
    if !(blocks * 2).is_multiple_of(8) {
        let last = j.len() - 1;
        j[last] = 0xff >> ((blocks * 2) % 8);
    }
    j.extend_from_slice(&[0xff, 0xd9]);
    j
}

#[test]
fn a_huge_image_through_three_hard_links_is_refused_before_decoding() {
    let dir = scratch_dir("hostile-image-links");
    std::fs::write(dir.join("big.jpg"), flat_jpeg(16384, 8192)).unwrap();
    for l in ["b.jpg", "c.jpg"] {
        std::fs::hard_link(dir.join("big.jpg"), dir.join(l)).unwrap();
    }
    let s = write_script(
        &dir,
        "links.rhai",
        r#"fn draw(canvas, ctx) {
  let a = load_image("big.jpg");
  let b = load_image("b.jpg");
  let c = load_image("c.jpg");
  canvas.image(a, 0, 0, 8, 8);
}
"#,
    );
    let (frames, hwm, stderr) = draw_and_measure(&s, &["--time-limit", "60s"], 2, 64, 48);
    assert_eq!(frames, 2);
    assert!(hwm < 300, "sl-draw peaked at {hwm} MB; stderr:\n{stderr}");
    assert!(
        stderr.contains("16384x8192") && stderr.contains("scale it down"),
        "{stderr}"
    );
}

#[test]
fn hard_links_to_one_image_share_one_decoded_copy() {
    let dir = scratch_dir("hostile-image-share");
    std::fs::write(dir.join("a.jpg"), flat_jpeg(4096, 4096)).unwrap();
    for l in ["b.jpg", "c.jpg", "d.jpg"] {
        std::fs::hard_link(dir.join("a.jpg"), dir.join(l)).unwrap();
    }
    // four names, one 64 MB image: decoded four times it would be 256 MB
    let s = write_script(
        &dir,
        "share.rhai",
        r#"fn init(ctx) {
  this.imgs = [load_image("a.jpg"), load_image("b.jpg"), load_image("c.jpg"), load_image("./d.jpg")];
}
fn draw(canvas, ctx) {
  for i in this.imgs { canvas.image(i, 0, 0, 8, 8); }
}
"#,
    );
    let (frames, hwm, stderr) =
        draw_and_measure(&s, &["--strict", "--time-limit", "60s"], 2, 64, 48);
    assert_eq!(frames, 2);
    assert!(hwm < 200, "sl-draw peaked at {hwm} MB; stderr:\n{stderr}");
}

// ---------------------------------------------------------------- sl-draw: random scripts

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "7.5",
    "1e30",
    "-1e30",
    "1e-30",
    "9223372036854775807",
    "(0.0/0.0)",
    "(1.0/0.0)",
    "ctx.width",
    "ctx.height",
    "\"red\"",
    "\"#zzz\"",
    "\"\"",
    "[]",
    "[1, 2]",
    "#{}",
    "()",
    "true",
    "path()",
];

const CALLS: &[(&str, usize)] = &[
    ("canvas.fill_rect", 5),
    ("canvas.stroke_rect", 5),
    ("canvas.fill_round_rect", 6),
    ("canvas.fill_circle", 4),
    ("canvas.stroke_ellipse", 5),
    ("canvas.line", 5),
    ("canvas.polyline", 2),
    ("canvas.fill_polygon", 2),
    ("canvas.text", 4),
    ("canvas.text", 5),
    ("canvas.font_size", 1),
    ("canvas.line_width", 1),
    ("canvas.dash", 1),
    ("canvas.dash", 2),
    ("canvas.alpha", 1),
    ("canvas.translate", 2),
    ("canvas.rotate", 1),
    ("canvas.scale", 2),
    ("canvas.clip_rect", 4),
    ("canvas.save", 0),
    ("canvas.restore", 0),
    ("canvas.clear", 1),
    ("canvas.fill", 1),
    ("canvas.measure_text", 1),
    ("canvas.text_align", 1),
    ("canvas.font", 1),
    ("linear_gradient", 5),
    ("radial_gradient", 4),
    ("rgba", 4),
    ("color", 1),
    ("timecode", 2),
    ("hms", 1),
    ("load_image", 1),
    ("load_font", 1),
];

fn random_script(rng: &mut Rng) -> String {
    let mut body = String::new();
    for _ in 0..=rng.below(12) {
        let (name, arity) = *rng.pick(CALLS);
        let args: Vec<&str> = (0..arity).map(|_| *rng.pick(VALUES)).collect();
        let call = format!("{name}({})", args.join(", "));
        // most calls fail on a bad argument: keep going after each, so later ones run too
        body.push_str(&format!("  try {{ {call}; }} catch (e) {{ }}\n"));
        if rng.below(8) == 0 {
            body.push_str(&format!(
                "  for i in 0..{} {{ try {{ {call}; }} catch (e) {{ }} }}\n",
                rng.below(3000)
            ));
        }
    }
    format!("fn draw(canvas, ctx) {{\n{body}}}\n")
}

#[test]
fn random_scripts_never_crash_or_stall_sl_draw() {
    let n = if long_fuzz() { 1000 } else { 50 };
    let dir = scratch_dir("hostile-scripts");
    let mut rng = Rng(0xD4A3_5C21_0000_7777);
    for i in 0..n {
        let src = random_script(&mut rng);
        let s = write_script(&dir, &format!("r{i}.rhai"), &src);
        let out = Pipeline::new()
            .cmd(
                "sh",
                &bounded(
                    &bin("sl-draw"),
                    &[&path_str(&s), "--size", "96x64", "--fast", "-n", "3"],
                )
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            )
            .timeout(Duration::from_secs(60))
            .run();
        let st = out.stage(0);
        assert_eq!(st.code, Some(0), "script:\n{src}\nstderr:\n{}", st.stderr);
        assert_eq!(
            out.frames().len(),
            3,
            "script:\n{src}\nstderr:\n{}",
            st.stderr
        );
    }
}
