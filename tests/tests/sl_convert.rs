//! sl-convert as a user meets it: scale, crop, pad, pixel format and frame rate in the middle
//! of a pipe, judged against ffmpeg's scale/crop/pad/fps filters doing the same on the same
//! frames.

use std::path::Path;
use std::process::{Command, Stdio};

use sl_e2e::{Pipeline, require, scratch_dir};
use sl_frame::{PixelFormat, Rational, VideoFrame};
use sl_wire::Message;

/// The same frames `sl-test ARGS --fast` makes.
fn source(args: &[&str]) -> Vec<VideoFrame> {
    let mut a = args.to_vec();
    a.push("--fast");
    let out = Pipeline::new().sl("sl-test", &a).run();
    out.assert_success();
    out.frames()
}

/// `sl-test ARGS --fast | sl-convert CONVERT`: every message out.
fn convert(args: &[&str], convert: &[&str]) -> Vec<Message> {
    let mut a = args.to_vec();
    a.push("--fast");
    let out = Pipeline::new()
        .sl("sl-test", &a)
        .sl("sl-convert", convert)
        .run();
    out.assert_success();
    out.messages()
}

fn frames(messages: &[Message]) -> Vec<VideoFrame> {
    sl_e2e::video_frames(messages)
}

/// ffmpeg's rawvideo output for the given frames (all `in_format` at one size, 30 fps)
/// through `-vf FILTER`, as `out_format` frames of `w`x`h`.
fn ffmpeg_frames(
    dir: &Path,
    input: &[VideoFrame],
    filter: &str,
    out_format: PixelFormat,
    (w, h): (u32, u32),
) -> Vec<Vec<u8>> {
    require("ffmpeg");
    let raw = dir.join("in.raw");
    let mut bytes = Vec::new();
    for f in input {
        bytes.extend_from_slice(f.to_packed().data());
    }
    std::fs::write(&raw, &bytes).unwrap();
    let f0 = &input[0];
    let size = format!("{}x{}", f0.width(), f0.height());
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-f", "rawvideo", "-pix_fmt"])
        .args([f0.format().ffmpeg_name(), "-s", &size, "-r", "30", "-i"])
        .arg(&raw)
        .args([
            "-vf",
            filter,
            "-f",
            "rawvideo",
            "-pix_fmt",
            out_format.ffmpeg_name(),
            "-",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "ffmpeg -vf {filter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = out_format.frame_size(w, h);
    assert_eq!(
        out.stdout.len() % n,
        0,
        "ffmpeg's output is whole {w}x{h} frames"
    );
    out.stdout.chunks(n).map(<[u8]>::to_vec).collect()
}

/// Mean and largest absolute difference of two buffers.
fn diff(a: &[u8], b: &[u8]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let mut sum = 0u64;
    let mut max = 0u8;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        sum += u64::from(d);
        max = max.max(d);
    }
    (sum as f64 / a.len() as f64, max)
}

#[test]
fn scaling_matches_ffmpeg_scale() {
    let dir = scratch_dir("sl_convert_scale");
    let args = ["-p", "box", "-s", "320x240", "-n", "5"];
    let input = source(&args);
    for (fmt, size, filter) in [
        (PixelFormat::Rgba, (160, 90), "scale=160:90:flags=bicubic"),
        (PixelFormat::I420, (640, 360), "scale=640:360:flags=bicubic"),
    ] {
        let s = format!("{}x{}", size.0, size.1);
        let got = frames(&convert(&args, &["-s", &s, "-f", fmt.name()]));
        let want = ffmpeg_frames(&dir, &input, filter, fmt, size);
        assert_eq!(got.len(), 5, "{s} {fmt}: frame count");
        assert_eq!(want.len(), 5);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!((g.format(), g.width(), g.height()), (fmt, size.0, size.1));
            let (mean, max) = diff(g.to_packed().data(), w);
            assert!(
                mean < 1.0 && max <= 16,
                "{s} {fmt} frame {i}: differs from ffmpeg by {mean:.2} on average, {max} at most"
            );
        }
    }
}

#[test]
fn crop_and_pad_are_exact_and_match_ffmpeg() {
    let dir = scratch_dir("sl_convert_crop_pad");
    let args = ["-p", "noise", "-s", "64x48", "-n", "3"];
    let input = source(&args);
    let got = frames(&convert(&args, &["--crop", "20x10+5+7"]));
    assert_eq!(got.len(), 3);
    let want = ffmpeg_frames(&dir, &input, "crop=20:10:5:7", PixelFormat::Rgba, (20, 10));
    for (i, g) in got.iter().enumerate() {
        assert_eq!((g.width(), g.height()), (20, 10));
        for y in 0..10 {
            assert_eq!(
                g.row(0, y),
                &input[i].row(0, y + 7)[5 * 4..25 * 4],
                "frame {i} row {y}"
            );
        }
        assert_eq!(
            g.to_packed().data(),
            &want[i][..],
            "frame {i} is ffmpeg's crop"
        );
    }

    let got = frames(&convert(
        &args,
        &["--pad", "80x60", "--pad-color", "#ff0000"],
    ));
    let want = ffmpeg_frames(
        &dir,
        &input,
        "pad=80:60:8:6:color=red",
        PixelFormat::Rgba,
        (80, 60),
    );
    assert_eq!(got.len(), 3);
    for (i, g) in got.iter().enumerate() {
        assert_eq!((g.width(), g.height()), (80, 60));
        assert_eq!(&g.row(0, 0)[..4], &[255, 0, 0, 255], "the padding is red");
        for y in 0..48 {
            assert_eq!(
                &g.row(0, y + 6)[8 * 4..72 * 4],
                input[i].row(0, y),
                "frame {i} row {y}"
            );
        }
        assert_eq!(
            g.to_packed().data(),
            &want[i][..],
            "frame {i} is ffmpeg's pad"
        );
    }

    // i420 in and out: crop at even positions is a plain copy of every plane
    let args = ["-p", "noise", "-s", "64x48", "-n", "2", "-f", "i420"];
    let input = source(&args);
    let got = frames(&convert(&args, &["--crop", "32x16+8+4"]));
    let want = ffmpeg_frames(&dir, &input, "crop=32:16:8:4", PixelFormat::I420, (32, 16));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.to_packed().data(), &w[..], "i420 crop is ffmpeg's");
    }
}

#[test]
fn fit_contain_letterboxes_and_cover_fills() {
    let args = [
        "-p", "solid", "--color", "#ffffff", "-s", "320x180", "-n", "1",
    ];
    let g = &frames(&convert(&args, &["-s", "100x100", "--fit", "contain"]))[0];
    assert_eq!((g.width(), g.height()), (100, 100));
    // 320x180 in 100x100: 100x56 in the middle, black bars of 22 rows above and below
    assert_eq!(&g.row(0, 10)[..4], &[0, 0, 0, 255], "a black bar on top");
    assert_eq!(
        &g.row(0, 50)[200..204],
        &[255, 255, 255, 255],
        "the picture in the middle"
    );
    assert_eq!(&g.row(0, 90)[..4], &[0, 0, 0, 255], "a black bar below");
    let g = &frames(&convert(&args, &["-s", "100x100", "--fit", "cover"]))[0];
    assert_eq!((g.width(), g.height()), (100, 100));
    assert!(
        g.data().chunks(4).all(|p| p == [255, 255, 255, 255]),
        "no bars"
    );
}

#[test]
fn frame_rate_drops_and_repeats_as_ffmpeg_fps_does() {
    let dir = scratch_dir("sl_convert_fps");
    let args = ["-p", "noise", "-s", "32x24", "-n", "30", "-r", "30"];
    let input = source(&args);
    for (rate, count) in [(15, 15), (24, 24), (60, 60), (7, 7)] {
        let msgs = convert(&args, &["-r", &rate.to_string()]);
        let info = msgs
            .iter()
            .find_map(|m| match m {
                Message::Stream { stream: 0, info } => info.video().cloned(),
                _ => None,
            })
            .expect("a video stream description");
        assert_eq!(
            info.fps,
            Rational::new(rate, 1),
            "the description says {rate} fps"
        );
        let got = frames(&msgs);
        assert_eq!(got.len(), count, "1 s at {rate} fps");
        for (i, f) in got.iter().enumerate() {
            assert_eq!(f.info.pts, i as i64, "{rate} fps: frame {i}'s timestamp");
            assert_eq!(f.info.time_base, Rational::new(1, rate));
        }
        let want = ffmpeg_frames(
            &dir,
            &input,
            &format!("fps={rate}"),
            PixelFormat::Rgba,
            (32, 24),
        );
        assert_eq!(want.len(), count, "ffmpeg makes as many");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.data(),
                &w[..],
                "{rate} fps: frame {i} is the one ffmpeg's fps picks"
            );
        }
    }
}

#[test]
fn audio_and_other_streams_pass_untouched() {
    let args = ["--tone", "440", "-s", "64x48", "-n", "10"];
    let mut a = args.to_vec();
    a.push("--fast");
    let plain = Pipeline::new().sl("sl-test", &a).run().messages();
    let msgs = convert(&args, &["-s", "32x24", "-f", "i420", "-r", "15"]);
    let audio = |ms: &[Message]| -> Vec<Vec<u8>> {
        ms.iter()
            .filter_map(|m| match m {
                Message::Audio { chunk, .. } => Some(chunk.data().to_vec()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(audio(&msgs).len(), 10);
    assert_eq!(audio(&msgs), audio(&plain), "audio passes byte for byte");
    let audio_info = |ms: &[Message]| {
        ms.iter().find_map(|m| match m {
            Message::Stream { stream: 1, info } => Some(info.clone()),
            _ => None,
        })
    };
    assert!(
        audio_info(&msgs) == audio_info(&plain),
        "the audio description is kept"
    );
    let v = msgs
        .iter()
        .find_map(|m| match m {
            Message::Stream { stream: 0, info } => info.video().cloned(),
            _ => None,
        })
        .unwrap();
    assert_eq!((v.width, v.height, v.fps), (32, 24, Rational::new(15, 1)));
    assert_eq!(v.format, sl_wire::VideoFormat::Raw(PixelFormat::I420));
    assert_eq!(frames(&msgs).len(), 5);
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (args, says) in [
        (vec![], "nothing to convert"),
        (vec!["--crop", "big"], "is not a crop"),
        (vec!["-s", "0x10"], "out of range"),
        (vec!["-f", "yuv9"], "yuv9"),
        (
            vec!["--crop", "100x100+0+0"],
            "reaches outside the 64x48 input",
        ),
        (vec!["--pad", "10x10"], "smaller than the 64x48 picture"),
        (vec!["--fit", "cover"], "--size"),
    ] {
        let out = Pipeline::new()
            .sl("sl-test", &["-s", "64x48", "-n", "2", "--fast"])
            .sl("sl-convert", &args)
            .run();
        let s = out.stage(1);
        assert_eq!(s.code, Some(2), "sl-convert {args:?}: {}", s.stderr);
        assert!(
            s.stderr.contains(says),
            "sl-convert {args:?} says: {}",
            s.stderr
        );
    }
}
