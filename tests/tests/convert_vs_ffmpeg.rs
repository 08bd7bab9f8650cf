//! Pixel-format conversions agree with FFmpeg's swscale (an independent implementation) within
//! ±2 per channel, for BT.601 and BT.709, limited range.

use std::io::Write;
use std::process::{Command, Stdio};

use sl_frame::convert::to_format;
use sl_frame::{ColorInfo, Matrix, PixelFormat, Range, VideoFrame};
use sl_pattern::{Generator, Pattern};

const W: u32 = 384;
const H: u32 = 256;

/// Run ffmpeg converting one raw frame from `from` to `to` with the given colour matrix.
fn ffmpeg_convert(input: &[u8], from: PixelFormat, to: PixelFormat, matrix: Matrix) -> Vec<u8> {
    let m = match matrix {
        Matrix::Bt601 => "bt601",
        Matrix::Bt709 => "bt709",
    };
    // The YUV side's matrix and range are stated explicitly on whichever side is YUV.
    // For YUV -> RGB the reference is swscale's accurate mode: its default fast paths differ
    // from each other (yuv420p uses lookup tables, nv12 the generic scaler) and round up to 3
    // below the exact value near the clamping limits, so they are no fixed reference.
    let vf = if to.is_yuv() || to == PixelFormat::Gray8 {
        let range = if to == PixelFormat::Gray8 {
            "full"
        } else {
            "tv"
        };
        format!("scale=out_color_matrix={m}:out_range={range}")
    } else {
        format!("scale=in_color_matrix={m}:in_range=tv:flags=accurate_rnd+full_chroma_int")
    };
    let mut child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
        ])
        .arg(from.ffmpeg_name())
        .args([
            "-s",
            &format!("{W}x{H}"),
            "-i",
            "-",
            "-vf",
            &vf,
            "-f",
            "rawvideo",
            "-pix_fmt",
        ])
        .arg(to.ffmpeg_name())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed by scripts/setup.sh");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "ffmpeg failed");
    out.stdout
}

fn source() -> VideoFrame {
    let mut g = Generator::new(Pattern::Gradient, PixelFormat::Rgba, W, H, [0; 4], 1).unwrap();
    let mut f = g.blank();
    g.render(0, 0.0, &mut f);
    f
}

fn compare(ours: &[u8], theirs: &[u8], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: sizes differ");
    let mut worst = 0;
    let mut at = 0;
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let d = (*a as i32 - *b as i32).abs();
        if d > worst {
            worst = d;
            at = i;
        }
    }
    assert!(
        worst <= 2,
        "{what}: differs from swscale by up to {worst} (at byte {at}: ours {} theirs {})",
        ours[at],
        theirs[at]
    );
}

#[test]
fn rgb_to_yuv_and_gray_match_swscale() {
    let src = source();
    for matrix in [Matrix::Bt601, Matrix::Bt709] {
        for to in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Gray8] {
            let mut ours = VideoFrame::new(to, W, H).unwrap();
            ours.color = ColorInfo {
                matrix,
                range: if to == PixelFormat::Gray8 {
                    Range::Full
                } else {
                    Range::Limited
                },
            };
            sl_frame::convert::convert(&src, &mut ours).unwrap();
            let theirs = ffmpeg_convert(src.data(), PixelFormat::Rgba, to, matrix);
            compare(ours.data(), &theirs, &format!("rgba -> {to} ({matrix:?})"));
        }
    }
}

#[test]
fn yuv_to_rgb_matches_swscale() {
    let src = source();
    for matrix in [Matrix::Bt601, Matrix::Bt709] {
        for from in [PixelFormat::I420, PixelFormat::Nv12] {
            // Make the YUV input with ffmpeg, so both sides start from the same bytes.
            let yuv_bytes = ffmpeg_convert(src.data(), PixelFormat::Rgba, from, matrix);
            let mut yuv = VideoFrame::from_packed(from, W, H, yuv_bytes.clone()).unwrap();
            yuv.color = ColorInfo {
                matrix,
                range: Range::Limited,
            };
            for to in [PixelFormat::Rgba, PixelFormat::Bgra, PixelFormat::Rgb24] {
                let ours = to_format(&yuv, to);
                let theirs = ffmpeg_convert(&yuv_bytes, from, to, matrix);
                compare(
                    ours.data(),
                    &theirs,
                    &format!("{from} -> {to} ({matrix:?})"),
                );
            }
        }
    }
}

#[test]
fn packed_rgb_swizzles_match_swscale() {
    let src = source();
    for to in [PixelFormat::Bgra, PixelFormat::Rgb24] {
        let ours = to_format(&src, to);
        let theirs = ffmpeg_convert(src.data(), PixelFormat::Rgba, to, Matrix::Bt601);
        compare(ours.data(), &theirs, &format!("rgba -> {to}"));
    }
}
