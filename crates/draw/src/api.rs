//! The functions scripts call: the `canvas` methods, colours, gradients, paths, fonts,
//! images and helpers. docs/sl-draw.md documents each one; keep the two in step.

use std::cell::RefMut;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map};
use tiny_skia::{LineCap, LineJoin, Path, PathBuilder, Rect, Transform};

use crate::assets::{Assets, Image};
use crate::effects::{self, Effect};
use crate::paint::{Color, Gradient, GradientKind, PaintSpec, color_of};
use crate::record::{Align, Baseline, Canvas, Recorder, ScriptPath};

type Rr<T> = Result<T, Box<EvalAltResult>>;

fn num(d: &Dynamic, what: &str) -> Rr<f32> {
    let v = crate::paint::number(d, what)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{what} must be a finite number").into())
    }
}

/// A whole number of pixels in `min..=max` (a float is rounded).
fn whole(d: &Dynamic, what: &str, min: u32, max: u32) -> Rr<u32> {
    let v = num(d, what)?.round();
    if v < min as f32 || v > max as f32 {
        return Err(format!("{what} must be {min} to {max} pixels, not {v}").into());
    }
    Ok(v as u32)
}

fn paint(d: &Dynamic) -> Rr<PaintSpec> {
    Ok(PaintSpec::from_dynamic(d)?)
}

fn rec(c: &mut Canvas) -> RefMut<'_, Recorder> {
    c.0.borrow_mut()
}

fn rect_path(x: f32, y: f32, w: f32, h: f32) -> Option<Path> {
    // negative sizes draw towards the left/top, as in HTML canvas
    let (x, w) = if w < 0.0 { (x + w, -w) } else { (x, w) };
    let (y, h) = if h < 0.0 { (y + h, -h) } else { (y, h) };
    Rect::from_xywh(x, y, w, h).map(PathBuilder::from_rect)
}

fn round_rect_path(x: f32, y: f32, w: f32, h: f32, r: f32) -> Option<Path> {
    let (x, w) = if w < 0.0 { (x + w, -w) } else { (x, w) };
    let (y, h) = if h < 0.0 { (y + h, -h) } else { (y, h) };
    let r = r.max(0.0).min(w / 2.0).min(h / 2.0);
    if r <= 0.0 {
        return rect_path(x, y, w, h);
    }
    // cubic approximation of a quarter circle
    let k = r * 0.552_284_8;
    let mut pb = PathBuilder::new();
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.cubic_to(x + w - r + k, y, x + w, y + r - k, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.cubic_to(x + w, y + h - r + k, x + w - r + k, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.cubic_to(x + r - k, y + h, x, y + h - r + k, x, y + h - r);
    pb.line_to(x, y + r);
    pb.cubic_to(x, y + r - k, x + r - k, y, x + r, y);
    pb.close();
    pb.finish()
}

fn ellipse_path(cx: f32, cy: f32, rx: f32, ry: f32) -> Option<Path> {
    Rect::from_xywh(cx - rx.abs(), cy - ry.abs(), 2.0 * rx.abs(), 2.0 * ry.abs())
        .and_then(PathBuilder::from_oval)
}

/// Points from `[[x, y], ...]` or `[x0, y0, x1, y1, ...]`.
fn points(a: &Array) -> Rr<Vec<(f32, f32)>> {
    let mut out = Vec::with_capacity(a.len());
    if a.first().is_some_and(|d| d.is_array()) {
        for p in a {
            let p = p.read_lock::<Array>().ok_or("a point is [x, y]")?;
            if p.len() != 2 {
                return Err("a point is [x, y]".into());
            }
            out.push((num(&p[0], "x")?, num(&p[1], "y")?));
        }
    } else {
        if !a.len().is_multiple_of(2) {
            return Err("points are [[x, y], ...] or [x0, y0, x1, y1, ...]".into());
        }
        for p in a.chunks_exact(2) {
            out.push((num(&p[0], "x")?, num(&p[1], "y")?));
        }
    }
    Ok(out)
}

fn poly_path(pts: &[(f32, f32)], close: bool) -> Option<Path> {
    let (&(x0, y0), rest) = pts.split_first()?;
    let mut pb = PathBuilder::new();
    pb.move_to(x0, y0);
    for &(x, y) in rest {
        pb.line_to(x, y);
    }
    if close {
        pb.close();
    }
    pb.finish()
}

fn opt_rect(x: f32, y: f32, w: f32, h: f32) -> Option<Rect> {
    Rect::from_xywh(x, y, w, h)
}

/// Seconds as `HH:MM:SS:FF` at `fps` frames per second.
pub fn timecode(secs: f64, fps: f64) -> String {
    let fps = if fps > 0.0 { fps } else { 30.0 };
    let secs = secs.max(0.0);
    let whole = secs.floor() as u64;
    let ff = ((secs - whole as f64) * fps).floor() as u64;
    format!(
        "{:02}:{:02}:{:02}:{:02}",
        whole / 3600,
        whole / 60 % 60,
        whole % 60,
        ff
    )
}

/// Seconds as `HH:MM:SS` (of the day, for Unix times).
pub fn hms(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn map_get(m: &Map, key: &str, default: Dynamic) -> Dynamic {
    match m.get(key) {
        Some(v) if !v.is_unit() => v.clone(),
        _ => default,
    }
}

/// Register every script function on `engine`. `assets` is where `load_font`/`load_image`
/// look (the script's folder).
pub fn register(engine: &mut Engine, assets: &Rc<Assets>) {
    engine.register_type_with_name::<Canvas>("Canvas");
    engine.register_type_with_name::<Color>("Color");
    engine.register_type_with_name::<Gradient>("Gradient");
    engine.register_type_with_name::<ScriptPath>("Path");
    engine.register_type_with_name::<Image>("Image");

    // --- colours and gradients
    engine.register_fn("rgb", |r: Dynamic, g: Dynamic, b: Dynamic| -> Rr<Color> {
        let c = |d: &Dynamic| -> Rr<u8> {
            Ok(num(d, "a colour component")?.clamp(0.0, 255.0).round() as u8)
        };
        Ok(Color::rgba(c(&r)?, c(&g)?, c(&b)?, 255))
    });
    engine.register_fn(
        "rgba",
        |r: Dynamic, g: Dynamic, b: Dynamic, a: Dynamic| -> Rr<Color> {
            let c = |d: &Dynamic| -> Rr<u8> {
                Ok(num(d, "a colour component")?.clamp(0.0, 255.0).round() as u8)
            };
            let a = num(&a, "alpha")?.clamp(0.0, 1.0);
            Ok(Color::rgba(
                c(&r)?,
                c(&g)?,
                c(&b)?,
                (a * 255.0).round() as u8,
            ))
        },
    );
    engine.register_fn("color", |s: Dynamic| -> Rr<Color> { Ok(color_of(&s)?) });
    engine.register_fn("with_alpha", |c: Dynamic, a: Dynamic| -> Rr<Color> {
        let c = color_of(&c)?;
        let a = num(&a, "alpha")?.clamp(0.0, 1.0);
        Ok(Color {
            a: (a * 255.0).round() as u8,
            ..c
        })
    });
    engine.register_fn("to_string", |c: &mut Color| c.to_hex());
    engine.register_fn("to_debug", |c: &mut Color| c.to_hex());
    engine.register_fn(
        "linear_gradient",
        |x0: Dynamic, y0: Dynamic, x1: Dynamic, y1: Dynamic, stops: Array| -> Rr<Gradient> {
            let kind = GradientKind::Linear {
                x0: num(&x0, "x0")?,
                y0: num(&y0, "y0")?,
                x1: num(&x1, "x1")?,
                y1: num(&y1, "y1")?,
            };
            Ok(Gradient::new(kind, stops)?)
        },
    );
    engine.register_fn(
        "radial_gradient",
        |cx: Dynamic, cy: Dynamic, r: Dynamic, stops: Array| -> Rr<Gradient> {
            let kind = GradientKind::Radial {
                cx: num(&cx, "cx")?,
                cy: num(&cy, "cy")?,
                r: num(&r, "radius")?.abs(),
            };
            Ok(Gradient::new(kind, stops)?)
        },
    );

    // --- paths
    engine.register_fn("path", ScriptPath::default);
    engine.register_fn(
        "move_to",
        |p: &mut ScriptPath, x: Dynamic, y: Dynamic| -> Rr<()> {
            p.0.move_to(num(&x, "x")?, num(&y, "y")?);
            Ok(())
        },
    );
    engine.register_fn(
        "line_to",
        |p: &mut ScriptPath, x: Dynamic, y: Dynamic| -> Rr<()> {
            p.0.line_to(num(&x, "x")?, num(&y, "y")?);
            Ok(())
        },
    );
    engine.register_fn(
        "quad_to",
        |p: &mut ScriptPath, x1: Dynamic, y1: Dynamic, x: Dynamic, y: Dynamic| -> Rr<()> {
            p.0.quad_to(
                num(&x1, "x1")?,
                num(&y1, "y1")?,
                num(&x, "x")?,
                num(&y, "y")?,
            );
            Ok(())
        },
    );
    engine.register_fn(
        "cubic_to",
        |p: &mut ScriptPath,
         x1: Dynamic,
         y1: Dynamic,
         x2: Dynamic,
         y2: Dynamic,
         x: Dynamic,
         y: Dynamic|
         -> Rr<()> {
            p.0.cubic_to(
                num(&x1, "x1")?,
                num(&y1, "y1")?,
                num(&x2, "x2")?,
                num(&y2, "y2")?,
                num(&x, "x")?,
                num(&y, "y")?,
            );
            Ok(())
        },
    );
    engine.register_fn("close", |p: &mut ScriptPath| p.0.close());
    engine.register_fn(
        "rect",
        |p: &mut ScriptPath, x: Dynamic, y: Dynamic, w: Dynamic, h: Dynamic| -> Rr<()> {
            if let Some(r) = opt_rect(num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?) {
                p.0.push_rect(r);
            }
            Ok(())
        },
    );
    engine.register_fn(
        "circle",
        |p: &mut ScriptPath, cx: Dynamic, cy: Dynamic, r: Dynamic| -> Rr<()> {
            p.0.push_circle(num(&cx, "cx")?, num(&cy, "cy")?, num(&r, "radius")?.abs());
            Ok(())
        },
    );

    // --- fonts and images (the only file access scripts have)
    let a = Rc::clone(assets);
    engine.register_fn("load_font", move |file: &str| -> Rr<String> {
        Ok(a.load_font(file)?)
    });
    let a = Rc::clone(assets);
    engine.register_fn("load_image", move |file: &str| -> Rr<Image> {
        Ok(a.load_image(file)?)
    });
    engine.register_get("width", |i: &mut Image| i.width as i64);
    engine.register_get("height", |i: &mut Image| i.height as i64);

    // --- helpers
    engine.register_fn("timecode", |s: Dynamic, fps: Dynamic| -> Rr<String> {
        Ok(timecode(
            num(&s, "seconds")? as f64,
            num(&fps, "fps")? as f64,
        ))
    });
    engine.register_fn("hms", |s: Dynamic| -> Rr<String> {
        // f32 would lose whole seconds on Unix times: read f64 directly
        let v = s.as_float().or_else(|_| s.as_int().map(|i| i as f64));
        Ok(hms(v.map_err(|_| "hms() takes a number of seconds")?))
    });
    engine.register_fn("get", |m: &mut Map, key: &str, default: Dynamic| {
        map_get(m, key, default)
    });
    engine.register_fn(
        "get_var",
        |m: &mut Map, key: &str, default: Dynamic| match m
            .get("vars")
            .and_then(|v| v.read_lock::<Map>())
        {
            Some(vars) => map_get(&vars, key, default),
            None => default,
        },
    );

    register_canvas(engine);
}

/// Register `name` a second and third time with exact types: every number an INT, or every
/// number a FLOAT, and the paint a string. Rhai resolves an exact match with one hash lookup;
/// a signature with `Dynamic` parameters is found only after trying up to 2^n masked hashes
/// in every package, on every frame (its resolution cache lives for one call). Measured on
/// the HUD at 1080p, where each frame's pixels evict the interpreter's tables from the CPU
/// caches, that search was most of the script's time.
macro_rules! typed_overloads {
    ($engine:expr, $name:literal, |$c:ident, $($a:ident),+ ; $p:ident| $body:expr) => {{
        $engine.register_fn(
            $name,
            |$c: &mut Canvas, $($a: rhai::INT,)+ $p: ImmutableString| -> Rr<()> {
                $(let $a = $a as f32;)+
                let $p = PaintSpec::Solid(Color::parse(&$p)?);
                $body
            },
        );
        $engine.register_fn(
            $name,
            |$c: &mut Canvas, $($a: rhai::FLOAT,)+ $p: ImmutableString| -> Rr<()> {
                $(let $a = $a as f32;)+
                let $p = PaintSpec::Solid(Color::parse(&$p)?);
                $body
            },
        );
    }};
}

fn register_typed(engine: &mut Engine) {
    typed_overloads!(engine, "fill_rect", |c, x, y, w, h; p| Ok(rec(c).fill(rect_path(x, y, w, h), p)?));
    typed_overloads!(engine, "stroke_rect", |c, x, y, w, h; p| Ok(rec(c).stroke(rect_path(x, y, w, h), p)?));
    typed_overloads!(engine, "fill_round_rect", |c, x, y, w, h, r; p| Ok(rec(c).fill(round_rect_path(x, y, w, h, r), p)?));
    typed_overloads!(engine, "stroke_round_rect", |c, x, y, w, h, r; p| Ok(rec(c).stroke(round_rect_path(x, y, w, h, r), p)?));
    typed_overloads!(engine, "fill_circle", |c, x, y, r; p| Ok(rec(c).fill(ellipse_path(x, y, r, r), p)?));
    typed_overloads!(engine, "stroke_circle", |c, x, y, r; p| Ok(rec(c).stroke(ellipse_path(x, y, r, r), p)?));
    typed_overloads!(engine, "fill_ellipse", |c, x, y, rx, ry; p| Ok(rec(c).fill(ellipse_path(x, y, rx, ry), p)?));
    typed_overloads!(engine, "stroke_ellipse", |c, x, y, rx, ry; p| Ok(rec(c).stroke(ellipse_path(x, y, rx, ry), p)?));
    typed_overloads!(engine, "line", |c, x0, y0, x1, y1; p| Ok(rec(c).stroke(poly_path(&[(x0, y0), (x1, y1)], false), p)?));
    fn text_typed(c: &mut Canvas, s: &str, x: f32, y: f32, col: &str) -> Rr<()> {
        let col = Color::parse(col)?;
        Ok(rec(c).text(s, x, y, col)?)
    }
    engine.register_fn(
        "text",
        |c: &mut Canvas, s: ImmutableString, x: rhai::INT, y: rhai::INT, col: ImmutableString| {
            text_typed(c, &s, x as f32, y as f32, &col)
        },
    );
    engine.register_fn(
        "text",
        |c: &mut Canvas,
         s: ImmutableString,
         x: rhai::FLOAT,
         y: rhai::FLOAT,
         col: ImmutableString| { text_typed(c, &s, x as f32, y as f32, &col) },
    );
}

fn register_canvas(engine: &mut Engine) {
    register_typed(engine);
    engine.register_get("width", |c: &mut Canvas| c.0.borrow().width as i64);
    engine.register_get("height", |c: &mut Canvas| c.0.borrow().height as i64);

    engine.register_fn("clear", |c: &mut Canvas| -> Rr<()> {
        Ok(rec(c).clear(Color::TRANSPARENT)?)
    });
    engine.register_fn("clear", |c: &mut Canvas, p: Dynamic| -> Rr<()> {
        Ok(rec(c).clear(color_of(&p)?)?)
    });
    engine.register_fn("fill", |c: &mut Canvas, p: Dynamic| -> Rr<()> {
        let paint = paint(&p)?;
        let mut r = rec(c);
        let (w, h) = (r.width as f32, r.height as f32);
        // in device space, whatever the transform
        let saved = r.state().transform;
        r.state_mut().transform = Transform::identity();
        let res = r.fill(rect_path(0.0, 0.0, w, h), paint);
        r.state_mut().transform = saved;
        Ok(res?)
    });

    // rectangles, circles, ellipses
    engine.register_fn(
        "fill_rect",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, w: Dynamic, h: Dynamic, p: Dynamic| -> Rr<()> {
            let path = rect_path(num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            Ok(rec(c).fill(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "stroke_rect",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, w: Dynamic, h: Dynamic, p: Dynamic| -> Rr<()> {
            let path = rect_path(num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            Ok(rec(c).stroke(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "fill_round_rect",
        |c: &mut Canvas,
         x: Dynamic,
         y: Dynamic,
         w: Dynamic,
         h: Dynamic,
         r: Dynamic,
         p: Dynamic|
         -> Rr<()> {
            let path = round_rect_path(
                num(&x, "x")?,
                num(&y, "y")?,
                num(&w, "w")?,
                num(&h, "h")?,
                num(&r, "radius")?,
            );
            Ok(rec(c).fill(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "stroke_round_rect",
        |c: &mut Canvas,
         x: Dynamic,
         y: Dynamic,
         w: Dynamic,
         h: Dynamic,
         r: Dynamic,
         p: Dynamic|
         -> Rr<()> {
            let path = round_rect_path(
                num(&x, "x")?,
                num(&y, "y")?,
                num(&w, "w")?,
                num(&h, "h")?,
                num(&r, "radius")?,
            );
            Ok(rec(c).stroke(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "fill_circle",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, r: Dynamic, p: Dynamic| -> Rr<()> {
            let r = num(&r, "radius")?;
            let path = ellipse_path(num(&x, "cx")?, num(&y, "cy")?, r, r);
            Ok(rec(c).fill(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "stroke_circle",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, r: Dynamic, p: Dynamic| -> Rr<()> {
            let r = num(&r, "radius")?;
            let path = ellipse_path(num(&x, "cx")?, num(&y, "cy")?, r, r);
            Ok(rec(c).stroke(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "fill_ellipse",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, rx: Dynamic, ry: Dynamic, p: Dynamic| -> Rr<()> {
            let path = ellipse_path(
                num(&x, "cx")?,
                num(&y, "cy")?,
                num(&rx, "rx")?,
                num(&ry, "ry")?,
            );
            Ok(rec(c).fill(path, paint(&p)?)?)
        },
    );
    engine.register_fn(
        "stroke_ellipse",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, rx: Dynamic, ry: Dynamic, p: Dynamic| -> Rr<()> {
            let path = ellipse_path(
                num(&x, "cx")?,
                num(&y, "cy")?,
                num(&rx, "rx")?,
                num(&ry, "ry")?,
            );
            Ok(rec(c).stroke(path, paint(&p)?)?)
        },
    );

    // lines, polylines, polygons, paths
    engine.register_fn(
        "line",
        |c: &mut Canvas,
         x0: Dynamic,
         y0: Dynamic,
         x1: Dynamic,
         y1: Dynamic,
         p: Dynamic|
         -> Rr<()> {
            let pts = [
                (num(&x0, "x0")?, num(&y0, "y0")?),
                (num(&x1, "x1")?, num(&y1, "y1")?),
            ];
            Ok(rec(c).stroke(poly_path(&pts, false), paint(&p)?)?)
        },
    );
    engine.register_fn(
        "polyline",
        |c: &mut Canvas, pts: Array, p: Dynamic| -> Rr<()> {
            let pts = points(&pts)?;
            Ok(rec(c).stroke(poly_path(&pts, false), paint(&p)?)?)
        },
    );
    engine.register_fn(
        "fill_polygon",
        |c: &mut Canvas, pts: Array, p: Dynamic| -> Rr<()> {
            let pts = points(&pts)?;
            Ok(rec(c).fill(poly_path(&pts, true), paint(&p)?)?)
        },
    );
    engine.register_fn(
        "stroke_polygon",
        |c: &mut Canvas, pts: Array, p: Dynamic| -> Rr<()> {
            let pts = points(&pts)?;
            Ok(rec(c).stroke(poly_path(&pts, true), paint(&p)?)?)
        },
    );
    engine.register_fn(
        "fill_path",
        |c: &mut Canvas, path: ScriptPath, p: Dynamic| -> Rr<()> {
            Ok(rec(c).fill(path.0.finish(), paint(&p)?)?)
        },
    );
    engine.register_fn(
        "stroke_path",
        |c: &mut Canvas, path: ScriptPath, p: Dynamic| -> Rr<()> {
            Ok(rec(c).stroke(path.0.finish(), paint(&p)?)?)
        },
    );

    // stroke style and drawing state
    engine.register_fn("line_width", |c: &mut Canvas, w: Dynamic| -> Rr<()> {
        rec(c).state_mut().line_width = num(&w, "line width")?.max(0.0);
        Ok(())
    });
    engine.register_fn("line_cap", |c: &mut Canvas, s: &str| -> Rr<()> {
        rec(c).state_mut().cap = match s {
            "butt" => LineCap::Butt,
            "round" => LineCap::Round,
            "square" => LineCap::Square,
            _ => {
                return Err(
                    format!("line_cap is \"butt\", \"round\" or \"square\", not \"{s}\"").into(),
                );
            }
        };
        Ok(())
    });
    engine.register_fn("line_join", |c: &mut Canvas, s: &str| -> Rr<()> {
        rec(c).state_mut().join = match s {
            "miter" => LineJoin::Miter,
            "round" => LineJoin::Round,
            "bevel" => LineJoin::Bevel,
            _ => {
                return Err(
                    format!("line_join is \"miter\", \"round\" or \"bevel\", not \"{s}\"").into(),
                );
            }
        };
        Ok(())
    });
    fn set_dash(c: &mut Canvas, a: &Array, offset: f32) -> Rr<()> {
        let mut v = a
            .iter()
            .map(|d| num(d, "a dash length").map(f32::abs))
            .collect::<Rr<Vec<f32>>>()?;
        if v.len() % 2 == 1 {
            // as HTML canvas: an odd list is repeated to make it even
            v.extend_from_within(..);
        }
        if v.iter().all(|x| *x == 0.0) {
            v.clear();
        }
        rec(c).state_mut().dash = if v.is_empty() {
            None
        } else {
            Some((v, offset))
        };
        Ok(())
    }
    engine.register_fn("dash", |c: &mut Canvas, a: Array| set_dash(c, &a, 0.0));
    engine.register_fn("dash", |c: &mut Canvas, a: Array, off: Dynamic| -> Rr<()> {
        set_dash(c, &a, num(&off, "dash offset")?)
    });
    engine.register_fn("anti_alias", |c: &mut Canvas, on: bool| {
        rec(c).state_mut().anti_alias = on;
    });
    engine.register_fn("alpha", |c: &mut Canvas, a: Dynamic| -> Rr<()> {
        rec(c).state_mut().alpha = num(&a, "alpha")?.clamp(0.0, 1.0);
        Ok(())
    });

    // transforms, save/restore, clipping
    engine.register_fn(
        "translate",
        |c: &mut Canvas, x: Dynamic, y: Dynamic| -> Rr<()> {
            let t = Transform::from_translate(num(&x, "x")?, num(&y, "y")?);
            rec(c).transform(t);
            Ok(())
        },
    );
    engine.register_fn("rotate", |c: &mut Canvas, deg: Dynamic| -> Rr<()> {
        let t = Transform::from_rotate(num(&deg, "degrees")?);
        rec(c).transform(t);
        Ok(())
    });
    engine.register_fn(
        "rotate",
        |c: &mut Canvas, deg: Dynamic, cx: Dynamic, cy: Dynamic| -> Rr<()> {
            let t =
                Transform::from_rotate_at(num(&deg, "degrees")?, num(&cx, "cx")?, num(&cy, "cy")?);
            rec(c).transform(t);
            Ok(())
        },
    );
    engine.register_fn("scale", |c: &mut Canvas, s: Dynamic| -> Rr<()> {
        let s = num(&s, "scale")?;
        rec(c).transform(Transform::from_scale(s, s));
        Ok(())
    });
    engine.register_fn(
        "scale",
        |c: &mut Canvas, sx: Dynamic, sy: Dynamic| -> Rr<()> {
            let t = Transform::from_scale(num(&sx, "sx")?, num(&sy, "sy")?);
            rec(c).transform(t);
            Ok(())
        },
    );
    engine.register_fn("reset_transform", |c: &mut Canvas| {
        rec(c).state_mut().transform = Transform::identity();
    });
    engine.register_fn("save", |c: &mut Canvas| -> Rr<()> { Ok(rec(c).save()?) });
    engine.register_fn("restore", |c: &mut Canvas| -> Rr<()> {
        Ok(rec(c).restore()?)
    });
    engine.register_fn(
        "clip_rect",
        |c: &mut Canvas, x: Dynamic, y: Dynamic, w: Dynamic, h: Dynamic| -> Rr<()> {
            let path = rect_path(num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            Ok(rec(c).clip(path)?)
        },
    );
    engine.register_fn("clip_path", |c: &mut Canvas, path: ScriptPath| -> Rr<()> {
        Ok(rec(c).clip(path.0.finish())?)
    });

    // text
    engine.register_fn("font", |c: &mut Canvas, name: &str| -> Rr<()> {
        let mut r = rec(c);
        let id = r.assets.font_id(name)?;
        r.state_mut().font = id;
        Ok(())
    });
    engine.register_fn("font_size", |c: &mut Canvas, px: Dynamic| -> Rr<()> {
        rec(c).state_mut().font_size = num(&px, "font size")?.clamp(1.0, 1000.0);
        Ok(())
    });
    engine.register_fn("text_align", |c: &mut Canvas, s: &str| -> Rr<()> {
        rec(c).state_mut().align = match s {
            "left" | "start" => Align::Left,
            "center" | "centre" => Align::Center,
            "right" | "end" => Align::Right,
            _ => {
                return Err(format!(
                    "text_align is \"left\", \"center\" or \"right\", not \"{s}\""
                )
                .into());
            }
        };
        Ok(())
    });
    engine.register_fn("text_baseline", |c: &mut Canvas, s: &str| -> Rr<()> {
        rec(c).state_mut().baseline = match s {
            "top" => Baseline::Top,
            "middle" => Baseline::Middle,
            "alphabetic" | "baseline" => Baseline::Alphabetic,
            "bottom" => Baseline::Bottom,
            _ => {
                return Err(format!(
                    "text_baseline is \"top\", \"middle\", \"alphabetic\" or \"bottom\", not \"{s}\""
                )
                .into());
            }
        };
        Ok(())
    });
    fn text(c: &mut Canvas, s: &Dynamic, x: &Dynamic, y: &Dynamic, col: Color) -> Rr<()> {
        let s = if s.is_string() {
            s.clone().into_immutable_string().unwrap_or_default()
        } else {
            ImmutableString::from(s.to_string())
        };
        Ok(rec(c).text(&s, num(x, "x")?, num(y, "y")?, col)?)
    }
    engine.register_fn(
        "text",
        |c: &mut Canvas, s: Dynamic, x: Dynamic, y: Dynamic| -> Rr<()> {
            text(c, &s, &x, &y, Color::WHITE)
        },
    );
    engine.register_fn(
        "text",
        |c: &mut Canvas, s: Dynamic, x: Dynamic, y: Dynamic, col: Dynamic| -> Rr<()> {
            text(c, &s, &x, &y, color_of(&col)?)
        },
    );
    engine.register_fn("measure_text", |c: &mut Canvas, s: &str| -> Map {
        let m = rec(c).measure(s);
        let mut out = Map::new();
        out.insert("width".into(), (m.width as f64).into());
        out.insert("height".into(), (m.height as f64).into());
        out.insert("ascent".into(), (m.ascent as f64).into());
        out.insert("descent".into(), (m.descent as f64).into());
        out.insert("line_height".into(), (m.line_height as f64).into());
        out.insert("lines".into(), (m.lines as i64).into());
        out
    });

    // region effects (anonymising faces, hiding plates): on the frame's own pixels
    engine.register_fn(
        "pixelate",
        |c: &mut Canvas,
         x: Dynamic,
         y: Dynamic,
         w: Dynamic,
         h: Dynamic,
         block: Dynamic|
         -> Rr<()> {
            let block = whole(&block, "the pixelate block", 1, effects::MAX_BLOCK)?;
            let (x, y, w, h) = (num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            Ok(rec(c).effect(x, y, w, h, Effect::Pixelate { block })?)
        },
    );
    engine.register_fn(
        "blur",
        |c: &mut Canvas,
         x: Dynamic,
         y: Dynamic,
         w: Dynamic,
         h: Dynamic,
         radius: Dynamic|
         -> Rr<()> {
            let radius = whole(&radius, "the blur radius", 0, effects::MAX_RADIUS)?;
            let (x, y, w, h) = (num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            if radius == 0 {
                return Ok(());
            }
            Ok(rec(c).effect(x, y, w, h, Effect::Blur { radius })?)
        },
    );

    // images
    engine.register_fn(
        "image",
        |c: &mut Canvas, img: Image, x: Dynamic, y: Dynamic| -> Rr<()> {
            let r = opt_rect(
                num(&x, "x")?,
                num(&y, "y")?,
                img.width as f32,
                img.height as f32,
            );
            Ok(rec(c).image(img, r, 1.0)?)
        },
    );
    engine.register_fn(
        "image",
        |c: &mut Canvas, img: Image, x: Dynamic, y: Dynamic, w: Dynamic, h: Dynamic| -> Rr<()> {
            let r = opt_rect(num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            Ok(rec(c).image(img, r, 1.0)?)
        },
    );
    engine.register_fn(
        "image",
        |c: &mut Canvas,
         img: Image,
         x: Dynamic,
         y: Dynamic,
         w: Dynamic,
         h: Dynamic,
         opacity: Dynamic|
         -> Rr<()> {
            let r = opt_rect(num(&x, "x")?, num(&y, "y")?, num(&w, "w")?, num(&h, "h")?);
            Ok(rec(c).image(img, r, num(&opacity, "opacity")?)?)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats() {
        assert_eq!(timecode(3723.5, 30.0), "01:02:03:15");
        assert_eq!(timecode(0.0, 25.0), "00:00:00:00");
        assert_eq!(hms(86400.0 + 3661.0), "01:01:01");
    }

    #[test]
    fn shapes_build_paths() {
        assert!(round_rect_path(0.0, 0.0, 10.0, 10.0, 3.0).is_some());
        assert!(rect_path(10.0, 10.0, -5.0, -5.0).is_some());
        let flat: Array = vec![0.into(), 0.into(), 10.into(), 0.into()];
        assert_eq!(points(&flat).unwrap().len(), 2);
        let odd: Array = vec![0.into()];
        assert!(points(&odd).is_err());
    }
}
