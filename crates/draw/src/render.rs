//! Replays recorded operations onto a premultiplied RGBA pixmap with tiny-skia.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use tiny_skia::{
    ColorU8, FillRule, FilterQuality, IntSize, Mask, Paint, Path, Pixmap, PixmapMut, PixmapPaint,
    Transform,
};

use crate::assets::Assets;
use crate::effects;
use crate::paint::{Color, PaintSpec};
use crate::record::Op;
use crate::text;

/// Glyph pixmaps kept between frames; cleared when it would grow past this many entries...
const GLYPH_CACHE_MAX: usize = 8192;
/// ...or past this many bytes of pixels. Each new text size rasterises new glyphs: a script
/// cycling through sizes grew the cache by about 290 MB/s before it was bounded by bytes.
pub const GLYPH_CACHE_BYTES: usize = 32 << 20;

/// Why rendering stopped before the last operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overrun {
    /// Operations drawn before the deadline passed.
    pub drawn: usize,
    pub total: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct GlyphKey {
    font: usize,
    glyph: u16,
    size_bits: u32,
    color: Color,
}

/// A rasterised glyph in one colour, with its offset from the pen position on the baseline.
struct Glyph {
    pixmap: Option<Pixmap>,
    left: i32,
    top: i32,
}

/// Replays [`Op`]s. Keeps a glyph cache between frames, bounded in entries and bytes.
#[derive(Default)]
pub struct Renderer {
    glyphs: HashMap<GlyphKey, Glyph>,
    glyph_bytes: usize,
    /// A copy of the region a blur works on (at most one frame), reused between frames.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("cached_glyphs", &self.glyphs.len())
            .field("cached_glyph_bytes", &self.glyph_bytes)
            .field("scratch_bytes", &self.scratch.capacity())
            .finish()
    }
}

/// Whether filling `path` under `t` would cover nothing because its transformed bounds have
/// no width or height (a 0-width progress bar, say). tiny-skia logs a warning for each such
/// fill, which would repeat on every frame; skipping it draws exactly the same.
pub fn fills_nothing(path: &Path, t: &Transform) -> bool {
    let (mut x0, mut y0) = (f32::INFINITY, f32::INFINITY);
    let (mut x1, mut y1) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for p in path.points() {
        let x = p.x * t.sx + p.y * t.kx + t.tx;
        let y = p.x * t.ky + p.y * t.sy + t.ty;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    // tiny-skia's own test: either side "nearly zero" (1/4096)
    !(x1 - x0 > 1.0 / 4096.0 && y1 - y0 > 1.0 / 4096.0)
}

fn is_translate(t: &Transform) -> bool {
    t.sx == 1.0 && t.sy == 1.0 && t.kx == 0.0 && t.ky == 0.0
}

fn paint_for(spec: &PaintSpec, alpha: f32, anti_alias: bool) -> Option<Paint<'static>> {
    let mut p = Paint {
        anti_alias,
        ..Paint::default()
    };
    match spec {
        PaintSpec::Solid(c) => {
            let c = c.fade(alpha);
            if c.a == 0 {
                return None;
            }
            p.set_color(c.to_skia());
        }
        PaintSpec::Gradient(g) => p.shader = g.shader(Transform::identity(), alpha)?,
    }
    Some(p)
}

impl Renderer {
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// Bytes of glyph pixels cached now.
    pub fn glyph_cache_bytes(&self) -> usize {
        self.glyph_bytes
    }

    /// Draw `ops` onto `pm`. If `deadline` passes, the remaining operations are skipped (the
    /// recorder's work budget should stop such frames first; this is the backstop).
    pub fn render(
        &mut self,
        ops: &[Op],
        assets: &Assets,
        pm: &mut PixmapMut<'_>,
        deadline: Option<Instant>,
    ) -> Result<(), Overrun> {
        let (w, h) = (pm.width(), pm.height());
        let mut clip: Option<Rc<Mask>> = None;
        let mut saved: Vec<Option<Rc<Mask>>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if i % 16 == 15
                && let Some(d) = deadline
                && Instant::now() > d
            {
                return Err(Overrun {
                    drawn: i,
                    total: ops.len(),
                });
            }
            let mask = clip.as_deref();
            match op {
                Op::Clear(c) => pm.fill(c.to_skia()),
                Op::Fill {
                    path,
                    paint,
                    transform,
                    anti_alias,
                    alpha,
                    rule,
                } => {
                    if fills_nothing(path, transform) {
                        continue;
                    }
                    if let Some(p) = paint_for(paint, *alpha, *anti_alias) {
                        pm.fill_path(path, &p, *rule, *transform, mask);
                    }
                }
                Op::Stroke {
                    path,
                    paint,
                    stroke,
                    transform,
                    anti_alias,
                    alpha,
                } => {
                    if let Some(p) = paint_for(paint, *alpha, *anti_alias) {
                        pm.stroke_path(path, &p, stroke, *transform, mask);
                    }
                }
                Op::Text {
                    text,
                    x,
                    y,
                    color,
                    font,
                    size,
                    align,
                    baseline,
                    transform,
                } => {
                    if color.a == 0 {
                        continue;
                    }
                    let Some(f) = assets.font(*font) else {
                        continue;
                    };
                    let lines = text::layout(&f, text, *size);
                    for (line, lx, by) in text::place(&f, &lines, *size, *x, *y, *align, *baseline)
                    {
                        for &(g, gx) in &line.glyphs {
                            self.draw_glyph(
                                pm,
                                &f,
                                *font,
                                g,
                                *size,
                                *color,
                                lx + gx,
                                by,
                                transform,
                                mask,
                            );
                        }
                    }
                }
                Op::Image {
                    image,
                    rect,
                    opacity,
                    transform,
                    smooth,
                } => {
                    let Some(img) = assets.image(*image) else {
                        continue;
                    };
                    let t = transform.pre_translate(rect.x(), rect.y()).pre_scale(
                        rect.width() / img.width() as f32,
                        rect.height() / img.height() as f32,
                    );
                    let paint = PixmapPaint {
                        opacity: *opacity,
                        quality: if *smooth {
                            FilterQuality::Bilinear
                        } else {
                            FilterQuality::Nearest
                        },
                        ..PixmapPaint::default()
                    };
                    pm.draw_pixmap(0, 0, img.as_ref().as_ref(), &paint, t, mask);
                }
                Op::Effect { region, effect } => {
                    let Some(region) = region.within(w, h) else {
                        continue;
                    };
                    let stride = w as usize * 4;
                    let mut plane = effects::Plane {
                        data: pm.data_mut(),
                        stride,
                        cpp: 4,
                        width: w as usize,
                        height: h as usize,
                    };
                    effects::apply(&mut plane, region, *effect, &mut self.scratch);
                }
                Op::Save => saved.push(clip.clone()),
                Op::Restore => clip = saved.pop().unwrap_or(None),
                Op::Clip {
                    path,
                    transform,
                    anti_alias,
                } => {
                    if fills_nothing(path, transform) {
                        // a clip with no area hides everything after it
                        clip = Mask::new(w, h).map(Rc::new);
                        continue;
                    }
                    let m = match &clip {
                        Some(m) => {
                            let mut m = (**m).clone();
                            m.intersect_path(path, FillRule::Winding, *anti_alias, *transform);
                            Some(m)
                        }
                        None => Mask::new(w, h).map(|mut m| {
                            m.fill_path(path, FillRule::Winding, *anti_alias, *transform);
                            m
                        }),
                    };
                    clip = m.map(Rc::new);
                }
            }
        }
        Ok(())
    }

    /// Apply a region effect to `frame` in its own pixel format (see
    /// [`effects::apply_to_frame`]).
    pub fn apply_effect(
        &mut self,
        frame: &mut sl_frame::VideoFrame,
        region: effects::Region,
        effect: effects::Effect,
    ) {
        if let Some(region) = region.within(frame.width(), frame.height()) {
            effects::apply_to_frame(frame, region, effect, &mut self.scratch);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn draw_glyph(
        &mut self,
        pm: &mut PixmapMut<'_>,
        font: &fontdue::Font,
        font_id: usize,
        glyph: u16,
        size: f32,
        color: Color,
        x: f32,
        baseline: f32,
        transform: &Transform,
        mask: Option<&Mask>,
    ) {
        let key = GlyphKey {
            font: font_id,
            glyph,
            size_bits: size.to_bits(),
            color,
        };
        if !self.glyphs.contains_key(&key) {
            let g = rasterize(font, glyph, size, color);
            let bytes = g.pixmap.as_ref().map_or(0, |p| p.data().len()) + 64;
            // Clearing before the insert keeps the cache under its bound plus one glyph;
            // each glyph is drawn right after it is cached, so nothing in use is lost.
            if self.glyphs.len() >= GLYPH_CACHE_MAX || self.glyph_bytes + bytes > GLYPH_CACHE_BYTES
            {
                self.glyphs.clear();
                self.glyph_bytes = 0;
            }
            self.glyph_bytes += bytes;
            self.glyphs.insert(key, g);
        }
        let g = &self.glyphs[&key];
        let Some(pixmap) = &g.pixmap else { return };
        let paint = PixmapPaint::default();
        if is_translate(transform) {
            // Whole-pixel placement keeps glyphs crisp and takes tiny-skia's fast path.
            let px = (x + transform.tx).round() as i32 + g.left;
            let py = (baseline + transform.ty).round() as i32 + g.top;
            pm.draw_pixmap(px, py, pixmap.as_ref(), &paint, Transform::identity(), mask);
        } else {
            let t = transform.pre_translate(x + g.left as f32, baseline + g.top as f32);
            let paint = PixmapPaint {
                quality: FilterQuality::Bilinear,
                ..paint
            };
            pm.draw_pixmap(0, 0, pixmap.as_ref(), &paint, t, mask);
        }
    }
}

fn rasterize(font: &fontdue::Font, glyph: u16, size: f32, color: Color) -> Glyph {
    let (m, coverage) = font.rasterize_indexed(glyph, size);
    let left = m.xmin;
    let top = -(m.ymin + m.height as i32);
    let pixmap = IntSize::from_wh(m.width as u32, m.height as u32).and_then(|sz| {
        let mut data = Vec::with_capacity(coverage.len() * 4);
        for &c in &coverage {
            let a = (color.a as u32 * c as u32 + 127) / 255;
            let p = ColorU8::from_rgba(color.r, color.g, color.b, a as u8).premultiply();
            data.extend_from_slice(&[p.red(), p.green(), p.blue(), p.alpha()]);
        }
        Pixmap::from_vec(data, sz)
    });
    Glyph { pixmap, left, top }
}
