//! The face anonymiser's drawing half: frames carrying `detections` boxes (what sl-ml
//! attaches), made here with sl-wire, piped through `sl-draw examples/anonymise.rhai`.
//! Pixels inside each (padded) box change, pixelated tiles are uniform and hold the average
//! of what they cover, and every pixel outside the boxes is unchanged, bit for bit, in RGBA,
//! I420 and NV12; boxes past the frame's edges are clipped; frames without boxes pass
//! through bit-exact.

use std::path::Path;

use sl_e2e::Pipeline;
use sl_frame::{BBox, PixelFormat, Rational, Value, VideoFrame};
use sl_wire::{StreamInfo, Writer};

const W: u32 = 160;
const H: u32 = 120;
const FRAMES: usize = 3;
const BLOCK: u32 = 8;

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/anonymise.rhai")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// Noise, so that any averaging shows.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect()
}

fn bbox(x: f32, y: f32, w: f32, h: f32) -> BBox {
    BBox {
        x,
        y,
        w,
        h,
        score: 0.9,
        class_id: 0,
        label: "face".into(),
    }
}

/// Frame `i`'s boxes: one moving right by 2 px a frame, one past the top-right corner.
/// With the default padding (10% of the size on every side) both land on even pixels:
/// x 36+2i..84+2i, y 26..74; and x 136..160 (of 136..184), y 0..34 (of -14..34).
fn boxes(i: usize) -> Vec<BBox> {
    vec![
        bbox(40.0 + 2.0 * i as f32, 30.0, 40.0, 40.0),
        bbox(140.0, -10.0, 40.0, 40.0),
    ]
}

/// The padded boxes of frame `i` in pixels, clipped to the frame: (x0, y0, x1, y1).
fn regions(i: usize) -> Vec<(u32, u32, u32, u32)> {
    vec![
        (36 + 2 * i as u32, 26, 84 + 2 * i as u32, 74),
        (136, 0, 160, 34),
    ]
}

/// A stream of [`FRAMES`] noise frames in `format`; `detections` gives each frame's
/// metadata (None: no metadata at all).
fn stream(format: PixelFormat, detections: impl Fn(usize) -> Option<Vec<BBox>>) -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).unwrap();
    w.write_stream_info(
        0,
        &StreamInfo::raw_video(format, W, H, Rational::new(30, 1)),
    )
    .unwrap();
    for i in 0..FRAMES {
        let mut f = VideoFrame::new(format, W, H).unwrap();
        let n = f.data().len();
        f.data_mut().copy_from_slice(&noise(n, i as u32 + 1));
        if format.has_alpha() {
            for px in f.data_mut().chunks_exact_mut(4) {
                px[3] = 255;
            }
        }
        f.info.frame_number = i as u64;
        f.info.pts = i as i64;
        if let Some(b) = detections(i) {
            f.info.metadata.insert("detections", b);
        }
        w.write_video(0, &f).unwrap();
    }
    w.finish().unwrap();
    w.get_ref().clone()
}

fn input_frames(bytes: &[u8]) -> Vec<VideoFrame> {
    sl_e2e::video_frames(&sl_e2e::decode(bytes).unwrap())
}

/// Run the example on `input` with `--set` assignments; its output frames.
fn anonymise(input: Vec<u8>, sets: &[&str]) -> Vec<VideoFrame> {
    let s = script();
    let mut args = vec![s.as_str(), "--strict"];
    for a in sets {
        args.extend(["--set", a]);
    }
    let out = Pipeline::new().stdin(input).sl("sl-draw", &args).run();
    out.assert_success();
    assert!(
        out.stage(0).stderr.is_empty(),
        "sl-draw said: {}",
        out.stage(0).stderr
    );
    let frames = out.frames();
    assert_eq!(frames.len(), FRAMES);
    frames
}

/// Plane `p`'s geometry in `format`: bytes per pixel and how far it is subsampled.
fn plane_layout(format: PixelFormat, p: usize) -> (usize, u32) {
    match (format, p) {
        (PixelFormat::Rgba | PixelFormat::Bgra, _) => (4, 1),
        (PixelFormat::Rgb24, _) => (3, 1),
        (_, 0) => (1, 1),
        (PixelFormat::Nv12, _) => (2, 2),
        _ => (1, 2),
    }
}

/// A region in plane `p`'s pixels (chroma: every sample the region touches).
fn in_plane(r: (u32, u32, u32, u32), sub: u32) -> (u32, u32, u32, u32) {
    (r.0 / sub, r.1 / sub, r.2.div_ceil(sub), r.3.div_ceil(sub))
}

fn inside(r: &[(u32, u32, u32, u32)], x: u32, y: u32) -> bool {
    r.iter()
        .any(|&(x0, y0, x1, y1)| (x0..x1).contains(&x) && (y0..y1).contains(&y))
}

/// Every pixel outside `regions` equal in `a` and `b`, in every plane; returns the share of
/// pixels inside that changed (in plane 0).
fn check_outside_unchanged(
    a: &VideoFrame,
    b: &VideoFrame,
    regions: &[(u32, u32, u32, u32)],
) -> f64 {
    assert_eq!(
        (a.format(), a.width(), a.height()),
        (b.format(), b.width(), b.height())
    );
    let mut changed = 0u64;
    let mut total = 0u64;
    for p in 0..a.plane_count() {
        let (cpp, sub) = plane_layout(a.format(), p);
        let rs: Vec<_> = regions.iter().map(|r| in_plane(*r, sub)).collect();
        let rows = a.plane_dims(p).1;
        for y in 0..rows {
            let (ra, rb) = (a.row(p, y), b.row(p, y));
            for (x, (pa, pb)) in ra.chunks_exact(cpp).zip(rb.chunks_exact(cpp)).enumerate() {
                if inside(&rs, x as u32, y as u32) {
                    if p == 0 {
                        total += 1;
                        changed += (pa != pb) as u64;
                    }
                } else {
                    assert_eq!(
                        pa,
                        pb,
                        "{}: plane {p} pixel {x},{y} outside the boxes changed",
                        a.format()
                    );
                }
            }
        }
    }
    changed as f64 / total.max(1) as f64
}

/// In plane 0, each `block`-tile of the frame's grid, cut by each region, is one colour:
/// the rounded average of the input's pixels it covers.
fn check_tiles(input: &VideoFrame, output: &VideoFrame, regions: &[(u32, u32, u32, u32)]) {
    let (cpp, _) = plane_layout(input.format(), 0);
    for &(x0, y0, x1, y1) in regions {
        let mut ty = y0;
        while ty < y1 {
            let ty1 = ((ty / BLOCK + 1) * BLOCK).min(y1);
            let mut tx = x0;
            while tx < x1 {
                let tx1 = ((tx / BLOCK + 1) * BLOCK).min(x1);
                let n = ((tx1 - tx) * (ty1 - ty)) as u64;
                for c in 0..cpp {
                    let at = |f: &VideoFrame, x: u32, y: u32| {
                        f.row(0, y as usize)[x as usize * cpp + c] as u64
                    };
                    let sum: u64 = (ty..ty1)
                        .flat_map(|y| (tx..tx1).map(move |x| (x, y)))
                        .map(|(x, y)| at(input, x, y))
                        .sum();
                    let want = (sum + n / 2) / n;
                    for y in ty..ty1 {
                        for x in tx..tx1 {
                            assert_eq!(
                                at(output, x, y),
                                want,
                                "{}: tile at {tx},{ty} is not uniform at {x},{y} (channel {c})",
                                input.format()
                            );
                        }
                    }
                }
                tx = tx1;
            }
            ty = ty1;
        }
    }
}

/// Sum of differences between horizontal neighbours inside the regions (plane 0).
fn roughness(f: &VideoFrame, regions: &[(u32, u32, u32, u32)]) -> u64 {
    let (cpp, _) = plane_layout(f.format(), 0);
    let mut s = 0;
    for &(x0, y0, x1, y1) in regions {
        for y in y0..y1 {
            let row = &f.row(0, y as usize)[x0 as usize * cpp..x1 as usize * cpp];
            s += row
                .windows(cpp + 1)
                .map(|p| p[0].abs_diff(p[cpp]) as u64)
                .sum::<u64>();
        }
    }
    s
}

#[test]
fn detected_boxes_are_pixelated_and_nothing_else_changes() {
    for format in [PixelFormat::Rgba, PixelFormat::I420, PixelFormat::Nv12] {
        let input = stream(format, |i| Some(boxes(i)));
        let before = input_frames(&input);
        let after = anonymise(input, &[&format!("block={BLOCK}")]);
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            let rs = regions(i);
            let changed = check_outside_unchanged(a, b, &rs);
            assert!(
                changed > 0.9,
                "{format} frame {i}: only {:.0}% of the pixels inside the boxes changed",
                changed * 100.0
            );
            check_tiles(a, b, &rs);
            // the metadata travels on, for stages further down
            assert!(
                matches!(b.info.metadata.get("detections"), Some(Value::Boxes(v)) if v.len() == 2),
                "{format} frame {i}: detections lost"
            );
        }
    }
}

#[test]
fn blur_mode_blurs_the_boxes_and_nothing_else() {
    for format in [PixelFormat::Rgba, PixelFormat::I420] {
        let input = stream(format, |i| Some(boxes(i)));
        let before = input_frames(&input);
        let after = anonymise(input, &["mode=blur"]);
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            let rs = regions(i);
            let changed = check_outside_unchanged(a, b, &rs);
            assert!(
                changed > 0.9,
                "{format} frame {i}: only {:.0}% of the pixels inside the boxes changed",
                changed * 100.0
            );
            let (ra, rb) = (roughness(a, &rs), roughness(b, &rs));
            assert!(
                rb * 10 < ra,
                "{format} frame {i}: the boxes are not blurred (neighbour differences {ra} before, {rb} after)"
            );
        }
    }
}

#[test]
fn a_box_wholly_outside_the_frame_or_with_no_area_changes_nothing() {
    let input = stream(PixelFormat::Rgba, |_| {
        Some(vec![
            bbox(-100.0, 10.0, 50.0, 50.0),
            bbox(200.0, 200.0, 30.0, 30.0),
            bbox(50.0, 50.0, 0.0, 0.0),
        ])
    });
    let before = input_frames(&input);
    let after = anonymise(input, &["padding=0"]);
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.data(), b.data());
    }
}

#[test]
fn frames_without_detections_pass_through_bit_exact() {
    for format in [PixelFormat::Rgba, PixelFormat::I420, PixelFormat::Nv12] {
        // an empty list, then no metadata at all
        let input = stream(format, |i| (i == 0).then(Vec::new));
        let before = input_frames(&input);
        for mode in ["mode=pixelate", "mode=blur"] {
            let after = anonymise(input.clone(), &[mode]);
            for (i, (a, b)) in before.iter().zip(&after).enumerate() {
                assert_eq!(a.data(), b.data(), "{format} {mode} frame {i} changed");
                assert_eq!(a.format(), b.format());
            }
        }
    }
}
