//! Making one output frame: which layers show, their pixels prepared once per input frame
//! or geometry (the cache), blended in z order, and their metadata carried over.

use sl_blend::band::{Band, bands};
use sl_blend::yuv::{YuvLayer, blend_rgba_yuv_band, blend_yuv_band, fill, fill_band};
use sl_blend::{Mode, Rect, blend_rgba_band, blend_rgba_onto, opacity_u8};
use sl_frame::{BBox, Coeffs, ColorInfo, Metadata, PixelFormat, Value, VideoFrame, convert};

use crate::layout::{OnEnd, OnStale, Placement};
use crate::{Cache, Compositor, Layer};

/// What one layer does this frame.
struct Draw {
    layer: usize,
    x: i64,
    y: i64,
    w: u32,
    h: u32,
    src: Rect,
    opacity: u8,
    mode: Mode,
}

/// A layer's placement, its whole-pixel rectangle (x, y, w, h), and its opacity this frame.
type Placed = (Placement, (i64, i64, u32, u32), f64);

/// Output metadata entries beyond which layers' entries are left out (the wire's bound).
const MAX_META: usize = Metadata::MAX_ENTRIES - 4;

impl Compositor {
    /// Whether layer `i` shows this frame, by its properties and its input's state.
    fn shows(&self, l: &Layer) -> bool {
        if l.frame.is_none() || !l.props.visible {
            return false;
        }
        if l.ended {
            return l.props.end == OnEnd::Freeze;
        }
        let stale = self.now - l.arrived >= self.stale_secs;
        !(stale && l.props.stale == OnStale::Hide)
    }

    /// Each layer's placement this frame (those with a picture), snapped to even for YUV.
    fn placements(&self) -> Vec<Option<Placed>> {
        let yuv = self.canvas.format != PixelFormat::Rgba;
        self.layers
            .iter()
            .map(|l| {
                let (p, o) = l.placement(self.n, self.dims())?;
                let (mut x, mut y, w, h) = p.rounded();
                if yuv {
                    x &= !1;
                    y &= !1;
                }
                Some((p, (x, y, w, h), o))
            })
            .collect()
    }

    pub(crate) fn compose(&mut self, buf: Option<Vec<u8>>) -> anyhow::Result<VideoFrame> {
        let c = self.canvas;
        let places = self.placements();
        let mut draws: Vec<Draw> = self
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| self.shows(l))
            .filter_map(|(i, l)| {
                let (p, (x, y, w, h), o) = places[i]?;
                let opacity = opacity_u8(o);
                (opacity > 0).then_some(Draw {
                    layer: i,
                    x,
                    y,
                    w,
                    h,
                    src: p.src,
                    opacity,
                    mode: l.props.blend,
                })
            })
            .collect();
        draws.sort_by_key(|d| (self.layers[d.layer].props.z, d.layer));
        for d in &draws {
            let yuv_over = c.format != PixelFormat::Rgba && d.mode == Mode::Over;
            prepare(&mut self.layers[d.layer], d, c.format, c.color, yuv_over);
        }
        let size = c.format.frame_size(c.width, c.height);
        let mut canvas = match buf {
            Some(mut b) => {
                b.resize(size, 0);
                VideoFrame::from_packed(c.format, c.width, c.height, b)?
            }
            None => VideoFrame::new(c.format, c.width, c.height)?,
        };
        canvas.color = c.color;
        // the bottom layer covers everything with opaque pixels: no need to clear
        let covered = draws.first().is_some_and(|d| {
            d.opacity == 255
                && d.mode == Mode::Over
                && self.layers[d.layer].cache.opaque
                && d.x <= 0
                && d.y <= 0
                && d.x + d.w as i64 >= c.width as i64
                && d.y + d.h as i64 >= c.height as i64
        });
        let jobs: Vec<Job> = draws
            .iter()
            .map(|d| {
                let l = &self.layers[d.layer];
                let cache = &l.cache;
                let rgba: &[u8] = if cache.use_frame {
                    l.frame.as_ref().map_or(&[], |f| f.data())
                } else {
                    &cache.scaled
                };
                Job {
                    rgba,
                    yuv: cache.yuv_ready.then_some(&cache.yuv),
                    opaque: cache.opaque,
                    d,
                }
            })
            .collect();
        let yuv = c.format != PixelFormat::Rgba;
        if yuv && jobs.iter().any(|j| j.d.mode != Mode::Over) {
            // add and multiply on a YUV canvas go through RGBA regions of the whole frame:
            // one thread, layer after layer
            if !covered {
                fill(&mut canvas, self.background);
            }
            let coeffs = Coeffs::new(c.color);
            for j in &jobs {
                if j.d.mode == Mode::Over {
                    for mut band in bands(&mut canvas, 1) {
                        blend_job(&mut band, j, &coeffs);
                    }
                } else {
                    blend_region_via_rgba(&mut canvas, j.rgba, j.d);
                }
            }
        } else {
            // the canvas in horizontal bands, blended at the same time on the cores there are
            let threads = if (c.width as usize * c.height as usize) < MIN_PIXELS_PER_THREAD * 2 {
                1
            } else {
                self.threads
            };
            let coeffs = Coeffs::new(c.color);
            let background = (!covered).then_some((self.background, c.color));
            let mut parts = bands(&mut canvas, threads);
            let last = parts.pop();
            std::thread::scope(|s| {
                for mut band in parts {
                    let (jobs, coeffs) = (&jobs, &coeffs);
                    s.spawn(move || blend_band(&mut band, jobs, coeffs, background));
                }
                if let Some(mut band) = last {
                    blend_band(&mut band, &jobs, &coeffs, background);
                }
            });
        }
        let mut info = sl_frame::FrameInfo {
            frame_number: self.n,
            pts: self.out_pts.unwrap_or(self.n as i64),
            time_base: c.fps.inverse(),
            duration: 1,
            source_id: "sl-composite".into(),
            ..Default::default()
        };
        // the main frame's stamps, when it is the one shown (its capture time is the picture's age)
        if let Some(f) = &self.layers[0].frame
            && self.main_frame_new
        {
            info.capture_time_ns = f.info.capture_time_ns;
            info.ptp_time_ns = f.info.ptp_time_ns;
        }
        info.metadata = self.metadata(&places, &draws);
        canvas.info = info;
        Ok(canvas)
    }

    /// Every layer's metadata as `LAYER.KEY`, boxes mapped into canvas pixels, and the
    /// boxes of the layers shown under `detections`, all together.
    fn metadata(&self, places: &[Option<Placed>], draws: &[Draw]) -> Metadata {
        let mut md = Metadata::new();
        let mut all = Vec::new();
        let (cw, ch) = self.dims();
        for (i, l) in self.layers.iter().enumerate() {
            let (Some(f), Some((p, (x, y, w, h), _))) = (&l.frame, places[i]) else {
                continue;
            };
            let shown = draws.iter().any(|d| d.layer == i);
            for (k, v) in f.info.metadata.iter() {
                if md.len() >= MAX_META {
                    break;
                }
                let v = match v {
                    Value::Boxes(b) => {
                        let mapped = map_boxes(b, p.src, (x, y, w, h), (cw, ch));
                        if shown && k == "detections" {
                            all.extend(mapped.iter().cloned());
                        }
                        Value::Boxes(mapped)
                    }
                    v => v.clone(),
                };
                md.insert(format!("{}.{k}", l.name), v);
            }
        }
        if !all.is_empty() {
            md.insert("detections", all);
        }
        if let Some(s) = &self.scene {
            md.insert("scene", s.as_str());
        }
        md
    }
}

/// Boxes in a layer's input pixels, in canvas pixels: cut to the shown part of the input,
/// scaled and moved with the layer, clipped to the layer and the canvas (boxes left with
/// nothing on it are dropped). Labels, scores and classes are kept.
fn map_boxes(
    boxes: &[BBox],
    src: Rect,
    (x, y, w, h): (i64, i64, u32, u32),
    (cw, ch): (u32, u32),
) -> Vec<BBox> {
    let sx = w as f64 / src.w as f64;
    let sy = h as f64 / src.h as f64;
    let (lx0, ly0) = ((x.max(0)) as f64, (y.max(0)) as f64);
    let lx1 = ((x + w as i64).min(cw as i64)) as f64;
    let ly1 = ((y + h as i64).min(ch as i64)) as f64;
    boxes
        .iter()
        .filter_map(|b| {
            let x0 = ((b.x as f64 - src.x as f64) * sx + x as f64).clamp(lx0, lx1);
            let y0 = ((b.y as f64 - src.y as f64) * sy + y as f64).clamp(ly0, ly1);
            let x1 = ((b.x as f64 + b.w as f64 - src.x as f64) * sx + x as f64).clamp(lx0, lx1);
            let y1 = ((b.y as f64 + b.h as f64 - src.y as f64) * sy + y as f64).clamp(ly0, ly1);
            (x1 > x0 && y1 > y0).then(|| BBox {
                x: x0 as f32,
                y: y0 as f32,
                w: (x1 - x0) as f32,
                h: (y1 - y0) as f32,
                ..b.clone()
            })
        })
        .collect()
}

/// Canvas pixels below which a band is not worth a thread of its own.
const MIN_PIXELS_PER_THREAD: usize = 256 * 256;

/// One layer's blend this frame: its pixels, ready, and where they go.
struct Job<'a> {
    /// Packed RGBA at the drawn size (for an RGBA canvas, or straight into a YUV one).
    rgba: &'a [u8],
    /// The layer as YUV planes, when the cache has them (a YUV canvas).
    yuv: Option<&'a YuvLayer>,
    opaque: bool,
    d: &'a Draw,
}

/// Every layer, bottom first, onto one band of the canvas (cleared first unless covered).
fn blend_band(
    band: &mut Band,
    jobs: &[Job],
    coeffs: &Coeffs,
    background: Option<([u8; 3], ColorInfo)>,
) {
    if let Some((rgb, color)) = background {
        fill_band(band, rgb, color);
    }
    for j in jobs {
        blend_job(band, j, coeffs);
    }
}

/// One `over` (any mode on an RGBA canvas) onto one band.
fn blend_job(band: &mut Band, j: &Job, coeffs: &Coeffs) {
    let d = j.d;
    match (band.format(), j.yuv) {
        (PixelFormat::Rgba, _) => blend_rgba_band(
            band,
            j.rgba,
            (d.w, d.h),
            (d.x, d.y),
            d.opacity,
            d.mode,
            j.opaque,
        ),
        (_, Some(yuv)) => blend_yuv_band(band, yuv, (d.x, d.y), d.opacity),
        (_, None) => blend_rgba_yuv_band(band, coeffs, j.rgba, (d.w, d.h), (d.x, d.y), d.opacity),
    }
}

/// Bring a layer's pixels to what this frame needs, unless the cache has them already.
fn prepare(layer: &mut Layer, d: &Draw, format: PixelFormat, color: ColorInfo, yuv_over: bool) {
    let key = (layer.seq, d.src, d.w, d.h, yuv_over);
    if layer.cache.key == Some(key) {
        // the same picture on a second output frame: a still layer, worth its YUV planes
        // (made once, then only mixed) rather than blending it from RGBA every frame
        let cache = &mut layer.cache;
        if yuv_over && !cache.yuv_ready {
            let px: &[u8] = if cache.use_frame {
                layer.frame.as_ref().map_or(&[], |f| f.data())
            } else {
                &cache.scaled
            };
            if px.len() == d.w as usize * d.h as usize * 4 {
                YuvLayer::from_rgba(px, (d.w, d.h), color, format, cache.opaque, &mut cache.yuv);
                cache.yuv_ready = true;
            }
        }
        return;
    }
    let Some(frame) = layer.frame.as_ref() else {
        return;
    };
    let cache: &mut Cache = &mut layer.cache;
    let (fw, fh) = (frame.width(), frame.height());
    let whole = d.src
        == Rect {
            x: 0,
            y: 0,
            w: fw,
            h: fh,
        };
    let same_size = (d.src.w, d.src.h) == (d.w, d.h);
    cache.key = Some(key);
    cache.yuv_ready = false;
    // an input already in the canvas' YUV format, shown whole at its size: its planes as they are
    if yuv_over && frame.format() == format && whole && same_size {
        YuvLayer::from_frame(frame, &mut cache.yuv);
        cache.yuv_ready = true;
        cache.opaque = true;
        cache.opaque_of = Some(layer.seq);
        cache.use_frame = false;
        cache.scaled.clear();
        return;
    }
    let own_rgba = frame.format() == PixelFormat::Rgba && frame.is_packed();
    if !own_rgba && cache.rgba_of != Some(layer.seq) {
        cache.rgba = convert::to_format(frame, PixelFormat::Rgba).into_data();
        cache.rgba_of = Some(layer.seq);
    }
    let rgba: &[u8] = if own_rgba { frame.data() } else { &cache.rgba };
    if cache.opaque_of != Some(layer.seq)
        && let Some(opaque) = layer.prep.opaque
    {
        cache.opaque = opaque;
        cache.opaque_of = Some(layer.seq);
    }
    if cache.opaque_of != Some(layer.seq) {
        cache.opaque = !frame.format().has_alpha() || sl_blend::is_opaque_rgba(rgba);
        cache.opaque_of = Some(layer.seq);
    }
    cache.use_frame = own_rgba && whole && same_size;
    if !cache.use_frame {
        sl_blend::resample::crop_scale_rgba(
            rgba,
            (fw, fh),
            d.src,
            (d.w, d.h),
            cache.opaque,
            &mut cache.scaled,
        );
    }
}

/// `add` and `multiply` onto a YUV canvas: the covered region (on whole chroma blocks) to
/// RGBA, blended there, and back. Only that region is converted, never the whole canvas.
fn blend_region_via_rgba(canvas: &mut VideoFrame, rgba: &[u8], d: &Draw) {
    let (cw, ch) = (canvas.width(), canvas.height());
    let Some((_, _, cx, cy, cols, rows)) = sl_blend::clip(d.x, d.y, d.w, d.h, cw, ch) else {
        return;
    };
    let format = canvas.format();
    let rx0 = cx & !1;
    let ry0 = cy & !1;
    let rx1 = ((cx + cols + 1) & !1).min(cw as usize);
    let ry1 = ((cy + rows + 1) & !1).min(ch as usize);
    let (rw, rh) = ((rx1 - rx0) as u32, (ry1 - ry0) as u32);
    let Ok(mut region) = VideoFrame::new(format, rw, rh) else {
        return;
    };
    region.color = canvas.color;
    let k = if format == PixelFormat::Nv12 { 2 } else { 1 };
    let copy = |from: &VideoFrame, to: &mut VideoFrame, into_canvas: bool| {
        for p in 0..format.plane_count() {
            let (sub, bpp) = if p == 0 { (1, 1) } else { (2, k) };
            let rows = if p == 0 {
                rh as usize
            } else {
                (rh as usize).div_ceil(2)
            };
            let cols = if p == 0 {
                rw as usize
            } else {
                (rw as usize).div_ceil(2) * bpp
            };
            let (ox, oy) = (rx0 / sub * bpp, ry0 / sub);
            for r in 0..rows {
                if into_canvas {
                    to.row_mut(p, oy + r)[ox..ox + cols].copy_from_slice(&from.row(p, r)[..cols]);
                } else {
                    to.row_mut(p, r)[..cols].copy_from_slice(&from.row(p, oy + r)[ox..ox + cols]);
                }
            }
        }
    };
    copy(canvas, &mut region, false);
    let mut rgb = convert::to_format(&region, PixelFormat::Rgba);
    blend_rgba_onto(
        &mut rgb,
        rgba,
        (d.w, d.h),
        (d.x - rx0 as i64, d.y - ry0 as i64),
        d.opacity,
        d.mode,
        false,
    );
    if convert::convert(&rgb, &mut region).is_ok() {
        copy(&region, canvas, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_follow_their_layer() {
        let b = BBox {
            x: 100.0,
            y: 50.0,
            w: 200.0,
            h: 100.0,
            score: 0.9,
            class_id: 1,
            label: "face".into(),
        };
        // a 1280x720 input shown at half size at (1000, 500)
        let m = map_boxes(
            std::slice::from_ref(&b),
            Rect {
                x: 0,
                y: 0,
                w: 1280,
                h: 720,
            },
            (1000, 500, 640, 360),
            (1920, 1080),
        );
        assert_eq!(
            (m[0].x, m[0].y, m[0].w, m[0].h),
            (1050.0, 525.0, 100.0, 50.0)
        );
        assert_eq!(m[0].label, "face");
        // cropped away: dropped
        let m = map_boxes(
            &[b],
            Rect {
                x: 400,
                y: 0,
                w: 400,
                h: 400,
            },
            (0, 0, 400, 400),
            (1920, 1080),
        );
        assert!(m.is_empty());
    }
}
