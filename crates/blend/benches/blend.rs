//! The blend kernels on one core, per 1080p frame: `cargo bench -p sl-blend`.
//! Figures and what they mean are in docs/performance.md.

use divan::{Bencher, black_box};
use sl_blend::yuv::{YuvLayer, blend_yuv_onto};
use sl_blend::{Mode, blend_rgba, mix_plane};
use sl_frame::{ColorInfo, PixelFormat, VideoFrame};

const W: usize = 1920;
const H: usize = 1080;

fn main() {
    divan::main();
}

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

#[divan::bench(args = ["over", "add", "multiply"])]
fn rgba_1080p(b: Bencher, mode: &str) {
    let mode: Mode = mode.parse().unwrap();
    let src = pattern(W * H * 4, 1);
    let mut dst = pattern(W * H * 4, 2);
    b.counter(divan::counter::BytesCount::new(W * H * 4))
        .bench_local(|| blend_rgba(black_box(&mut dst), black_box(&src), 200, mode));
}

#[divan::bench]
fn plane_1080p_luma(b: Bencher) {
    let src = pattern(W * H, 1);
    let alpha = pattern(W * H, 3);
    let mut dst = pattern(W * H, 2);
    b.counter(divan::counter::BytesCount::new(W * H))
        .bench_local(|| mix_plane(black_box(&mut dst), black_box(&src), black_box(&alpha), 200));
}

#[divan::bench(args = [PixelFormat::I420, PixelFormat::Nv12])]
fn rgba_layer_onto_yuv_1080p(b: Bencher, format: PixelFormat) {
    let rgba = pattern(W * H * 4, 1);
    let mut layer = YuvLayer::default();
    YuvLayer::from_rgba(
        &rgba,
        (W as u32, H as u32),
        ColorInfo::BT601_LIMITED,
        format,
        false,
        &mut layer,
    );
    let mut canvas = VideoFrame::new(format, W as u32, H as u32).unwrap();
    b.bench_local(|| blend_yuv_onto(black_box(&mut canvas), black_box(&layer), (0, 0), 200));
}

/// RGBA to Y, U, V and alpha planes, once per input frame: `uniform` alpha (a layer at 50%
/// everywhere: each chroma block a plain mean) and `mixed` (every block's four alphas
/// differ: the alpha-weighted mean, a division per block; the worst case).
#[divan::bench(args = ["uniform", "mixed"])]
fn rgba_to_yuv_layer_1080p(b: Bencher, alpha: &str) {
    let mut rgba = pattern(W * H * 4, 1);
    if alpha == "uniform" {
        for p in rgba.chunks_exact_mut(4) {
            p[3] = 128;
        }
    }
    let mut layer = YuvLayer::default();
    b.bench_local(|| {
        YuvLayer::from_rgba(
            black_box(&rgba),
            (W as u32, H as u32),
            ColorInfo::BT601_LIMITED,
            PixelFormat::I420,
            false,
            &mut layer,
        )
    });
}

/// An RGBA layer (50% alpha everywhere, as in scripts/bench-composite.sh) blended straight
/// into a YUV canvas, no planes in between: what sl-composite does for a layer whose frame
/// is new this output frame.
#[divan::bench(args = [PixelFormat::I420, PixelFormat::Nv12])]
fn rgba_straight_into_yuv_1080p(b: Bencher, format: PixelFormat) {
    let mut rgba = pattern(W * H * 4, 1);
    for p in rgba.chunks_exact_mut(4) {
        p[3] = 128;
    }
    let mut canvas = VideoFrame::new(format, W as u32, H as u32).unwrap();
    b.bench_local(|| {
        sl_blend::yuv::blend_rgba_onto_yuv(
            black_box(&mut canvas),
            black_box(&rgba),
            (W as u32, H as u32),
            (0, 0),
            255,
        )
    });
}
