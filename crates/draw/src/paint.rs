//! Colours and gradients as scripts name them, and their conversion to tiny-skia shaders.

use rhai::{Array, Dynamic};
use tiny_skia::{GradientStop, Point, Shader, SpreadMode, Transform};

/// A straight-alpha (not premultiplied) 8-bit colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Color {
    pub const TRANSPARENT: Color = Color::rgba(0, 0, 0, 0);
    pub const WHITE: Color = Color::rgba(255, 255, 255, 255);

    pub const fn rgba(r: u8, g: u8, b: u8, a: u8) -> Color {
        Color { r, g, b, a }
    }

    /// Parse `#rgb`, `#rrggbb`, `#rrggbbaa` or a CSS colour name (`red`, `rebeccapurple`,
    /// `transparent`...).
    pub fn parse(s: &str) -> Result<Color, String> {
        let hex = s.strip_prefix('#').unwrap_or(s);
        if hex.len() == 3 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let d = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).unwrap_or(0) * 17;
            return Ok(Color::rgba(d(0), d(1), d(2), 255));
        }
        // the shared parser's error lists every CSS name (and suggests near ones)
        let [r, g, b, a] = sl_pattern::parse_colour(s)
            .map_err(|e| format!("{e}; or rgba(r, g, b, a) in a script"))?;
        Ok(Color::rgba(r, g, b, a))
    }

    /// The same colour with its alpha multiplied by `opacity` (0..1).
    pub fn fade(self, opacity: f32) -> Color {
        let a = (self.a as f32 * opacity.clamp(0.0, 1.0)).round() as u8;
        Color { a, ..self }
    }

    pub fn to_skia(self) -> tiny_skia::Color {
        tiny_skia::Color::from_rgba8(self.r, self.g, self.b, self.a)
    }

    /// As a `#rrggbbaa` string.
    pub fn to_hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}{:02x}", self.r, self.g, self.b, self.a)
    }
}

/// The geometry of a gradient, in the coordinates current when it is used.
#[derive(Clone, Debug, PartialEq)]
pub enum GradientKind {
    Linear { x0: f32, y0: f32, x1: f32, y1: f32 },
    Radial { cx: f32, cy: f32, r: f32 },
}

/// A linear or radial gradient with its colour stops (offsets in 0..1).
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    pub kind: GradientKind,
    pub stops: Vec<(f32, Color)>,
}

impl Gradient {
    /// Build from a script's stop list: either colours, spread evenly
    /// (`["#f00", "#00f"]`), or `[offset, colour]` pairs (`[[0.0, "#f00"], [1.0, "#00f"]]`).
    pub fn new(kind: GradientKind, stops: Array) -> Result<Gradient, String> {
        if stops.len() < 2 {
            return Err("a gradient needs at least two colour stops".into());
        }
        let n = stops.len();
        let mut out = Vec::with_capacity(n);
        for (i, s) in stops.into_iter().enumerate() {
            if let Some(pair) = s.clone().try_cast::<Array>() {
                if pair.len() != 2 {
                    return Err("a gradient stop is a colour or [offset, colour]".into());
                }
                let off = number(&pair[0], "a gradient stop's offset")?;
                out.push((off.clamp(0.0, 1.0), color_of(&pair[1])?));
            } else {
                out.push((i as f32 / (n - 1) as f32, color_of(&s)?));
            }
        }
        Ok(Gradient { kind, stops: out })
    }

    /// The shader, with `transform` the current transform of the drawing that uses it and
    /// `opacity` the global alpha.
    pub fn shader(&self, transform: Transform, opacity: f32) -> Option<Shader<'static>> {
        let stops: Vec<GradientStop> = self
            .stops
            .iter()
            .map(|(o, c)| GradientStop::new(*o, c.fade(opacity).to_skia()))
            .collect();
        match self.kind {
            GradientKind::Linear { x0, y0, x1, y1 } => tiny_skia::LinearGradient::new(
                Point::from_xy(x0, y0),
                Point::from_xy(x1, y1),
                stops,
                SpreadMode::Pad,
                transform,
            ),
            GradientKind::Radial { cx, cy, r } => tiny_skia::RadialGradient::new(
                Point::from_xy(cx, cy),
                0.0,
                Point::from_xy(cx, cy),
                r,
                stops,
                SpreadMode::Pad,
                transform,
            ),
        }
    }
}

/// What a shape is filled or stroked with.
#[derive(Clone, Debug, PartialEq)]
pub enum PaintSpec {
    Solid(Color),
    Gradient(Gradient),
}

impl PaintSpec {
    /// Read a script value: a colour string, a [`Color`], a [`Gradient`], or `[r, g, b(, a)]`.
    pub fn from_dynamic(d: &Dynamic) -> Result<PaintSpec, String> {
        if let Some(g) = d.clone().try_cast::<Gradient>() {
            return Ok(PaintSpec::Gradient(g));
        }
        color_of(d).map(PaintSpec::Solid)
    }
}

/// A script value as a colour: a string, a [`Color`] or `[r, g, b]` / `[r, g, b, a]` with
/// components in 0..255 (alpha too).
pub fn color_of(d: &Dynamic) -> Result<Color, String> {
    if let Some(c) = d.clone().try_cast::<Color>() {
        return Ok(c);
    }
    if d.is_string() {
        let s = d.clone().into_immutable_string().unwrap_or_default();
        return Color::parse(&s);
    }
    if let Some(a) = d.clone().try_cast::<Array>()
        && (a.len() == 3 || a.len() == 4)
    {
        let c = |i: usize| -> Result<u8, String> {
            Ok(number(&a[i], "a colour component")?
                .clamp(0.0, 255.0)
                .round() as u8)
        };
        let alpha = if a.len() == 4 { c(3)? } else { 255 };
        return Ok(Color::rgba(c(0)?, c(1)?, c(2)?, alpha));
    }
    Err(format!(
        "expected a colour (\"#rrggbb\", a name, rgba(...), [r, g, b]), not {}",
        d.type_name()
    ))
}

/// A script number (integer or float) as f32.
pub fn number(d: &Dynamic, what: &str) -> Result<f32, String> {
    if let Ok(f) = d.as_float() {
        Ok(f as f32)
    } else if let Ok(i) = d.as_int() {
        Ok(i as f32)
    } else {
        Err(format!("{what} must be a number, not {}", d.type_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert_eq!(
            Color::parse("#ff8000").unwrap(),
            Color::rgba(255, 128, 0, 255)
        );
        assert_eq!(
            Color::parse("#ff800080").unwrap(),
            Color::rgba(255, 128, 0, 128)
        );
        assert_eq!(Color::parse("#f80").unwrap(), Color::rgba(255, 136, 0, 255));
        assert_eq!(Color::parse("red").unwrap(), Color::rgba(255, 0, 0, 255));
        assert!(Color::parse("nope").unwrap_err().contains("not a colour"));
        let arr: Dynamic = vec![
            Dynamic::from(1_i64),
            Dynamic::from(2.0_f64),
            Dynamic::from(3_i64),
        ]
        .into();
        assert_eq!(color_of(&arr).unwrap(), Color::rgba(1, 2, 3, 255));
    }

    #[test]
    fn gradient_stops() {
        let g = Gradient::new(
            GradientKind::Linear {
                x0: 0.0,
                y0: 0.0,
                x1: 1.0,
                y1: 0.0,
            },
            vec!["#000".into(), "#fff".into(), "red".into()],
        )
        .unwrap();
        assert_eq!(g.stops[1].0, 0.5);
        assert!(Gradient::new(g.kind.clone(), vec!["#000".into()]).is_err());
    }
}
