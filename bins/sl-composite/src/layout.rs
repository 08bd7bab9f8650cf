//! Layer properties, their compact flag syntax (`cam:x=1440,y=60,w=400,opacity=0.8`), and
//! layout files (TOML or JSON) with named scenes.
//!
//! A layer's properties are resolved in layers of their own: the defaults, then the layout
//! file's `[layers.NAME]`, then `--layer NAME:...` flags (together, the *base*), then the
//! active scene's entry for the layer, if it has one. Live `set` commands change the
//! resolved properties until the next scene switch.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use sl_blend::Mode;

/// A length or position: pixels, or a percentage of the canvas' width or height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Len {
    Px(f64),
    Pct(f64),
}

impl Len {
    pub fn resolve(self, total: u32) -> f64 {
        match self {
            Len::Px(v) => v,
            Len::Pct(p) => p / 100.0 * total as f64,
        }
    }

    fn parse(key: &str, s: &str) -> Result<Len, String> {
        let bad = || {
            format!(
                "{key}={s}: give pixels (e.g. {key}=120) or a percentage of the canvas ({key}=25%)"
            )
        };
        let v = if let Some(p) = s.strip_suffix('%') {
            Len::Pct(p.trim().parse().map_err(|_| bad())?)
        } else {
            Len::Px(
                s.trim()
                    .strip_suffix("px")
                    .unwrap_or(s.trim())
                    .parse()
                    .map_err(|_| bad())?,
            )
        };
        let x = match v {
            Len::Px(x) | Len::Pct(x) => x,
        };
        if !x.is_finite() || x.abs() > 1e6 {
            return Err(bad());
        }
        Ok(v)
    }
}

/// Which point of the layer `x`, `y` place (and where a `contain`ed picture sits in its box).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Anchor {
    #[default]
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

impl Anchor {
    /// The anchor's position as fractions of the layer's width and height.
    pub fn fractions(self) -> (f64, f64) {
        use Anchor::*;
        match self {
            TopLeft => (0.0, 0.0),
            Top => (0.5, 0.0),
            TopRight => (1.0, 0.0),
            Left => (0.0, 0.5),
            Center => (0.5, 0.5),
            Right => (1.0, 0.5),
            BottomLeft => (0.0, 1.0),
            Bottom => (0.5, 1.0),
            BottomRight => (1.0, 1.0),
        }
    }

    fn parse(s: &str) -> Result<Anchor, String> {
        use Anchor::*;
        Ok(match s {
            "tl" | "top-left" => TopLeft,
            "t" | "top" => Top,
            "tr" | "top-right" => TopRight,
            "l" | "left" => Left,
            "c" | "center" | "centre" => Center,
            "r" | "right" => Right,
            "bl" | "bottom-left" => BottomLeft,
            "b" | "bottom" => Bottom,
            "br" | "bottom-right" => BottomRight,
            _ => {
                return Err(format!(
                    "anchor={s}: use tl, t, tr, l, c, r, bl, b or br (top-left ... bottom-right)"
                ));
            }
        })
    }
}

/// How a picture fills a box given both `w` and `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fit {
    /// Inside the box, aspect kept (the default).
    #[default]
    Contain,
    /// Fills the box, aspect kept, the overhang cut off.
    Cover,
    /// Exactly the box, aspect not kept.
    Stretch,
}

/// What a layer whose input stalls shows after `--stale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnStale {
    /// Its last frame, for as long as the input stays silent.
    #[default]
    Keep,
    /// Nothing, until a new frame comes.
    Hide,
}

/// What a layer whose input ended shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnEnd {
    /// Its last frame, from then on (a logo from a still image).
    #[default]
    Freeze,
    /// Nothing.
    Remove,
}

/// A part of the input picture, in its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Crop {
    fn parse(s: &str) -> Result<Crop, String> {
        let bad =
            || format!("crop={s}: give WxH+X+Y in the input's pixels, e.g. crop=640x360+100+50");
        let (size, rest) = s.split_once('+').ok_or_else(bad)?;
        let (x, y) = rest.split_once('+').ok_or_else(bad)?;
        let (w, h) = size.split_once(['x', 'X']).ok_or_else(bad)?;
        let n = |v: &str| v.trim().parse::<u32>().map_err(|_| bad());
        let c = Crop {
            x: n(x)?,
            y: n(y)?,
            w: n(w)?,
            h: n(h)?,
        };
        if c.w == 0 || c.h == 0 || c.w > sl_frame::MAX_DIMENSION || c.h > sl_frame::MAX_DIMENSION {
            return Err(bad());
        }
        Ok(c)
    }
}

/// A change to some of a layer's properties (unset fields stay as they are).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patch {
    pub z: Option<i32>,
    pub x: Option<Len>,
    pub y: Option<Len>,
    /// `Some(None)`: back to the input's own size.
    pub w: Option<Option<Len>>,
    pub h: Option<Option<Len>>,
    pub crop: Option<Option<Crop>>,
    pub opacity: Option<f64>,
    pub visible: Option<bool>,
    pub anchor: Option<Anchor>,
    pub fit: Option<Fit>,
    pub blend: Option<Mode>,
    pub stale: Option<OnStale>,
    pub end: Option<OnEnd>,
}

/// The keys a layer takes, for error messages.
pub const KEYS: &str = "z, x, y, w, h, crop, opacity, visible, anchor, fit, blend, stale, end";

fn parse_bool(key: &str, s: &str) -> Result<bool, String> {
    match s {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{key}={s}: use true or false")),
    }
}

impl Patch {
    /// Set one property from its text form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = value.trim();
        match key.trim() {
            "z" => {
                self.z = Some(
                    v.parse()
                        .map_err(|_| format!("z={v}: give a whole number (higher is in front)"))?,
                )
            }
            "x" => self.x = Some(Len::parse("x", v)?),
            "y" => self.y = Some(Len::parse("y", v)?),
            "w" | "width" => {
                self.w = Some(if v == "auto" {
                    None
                } else {
                    Some(Len::parse("w", v)?)
                })
            }
            "h" | "height" => {
                self.h = Some(if v == "auto" {
                    None
                } else {
                    Some(Len::parse("h", v)?)
                })
            }
            "crop" => {
                self.crop = Some(if v == "none" {
                    None
                } else {
                    Some(Crop::parse(v)?)
                })
            }
            "opacity" | "alpha" => {
                let o: f64 = v
                    .strip_suffix('%')
                    .map(|p| p.parse::<f64>().map(|p| p / 100.0))
                    .unwrap_or_else(|| v.parse())
                    .map_err(|_| format!("opacity={v}: give 0..1 or a percentage"))?;
                if !(0.0..=1.0).contains(&o) {
                    return Err(format!(
                        "opacity={v}: out of range, give 0..1 (or 0%..100%)"
                    ));
                }
                self.opacity = Some(o);
            }
            "visible" => self.visible = Some(parse_bool("visible", v)?),
            "hidden" => self.visible = Some(!parse_bool("hidden", v)?),
            "anchor" => self.anchor = Some(Anchor::parse(v)?),
            "fit" => {
                self.fit = Some(match v {
                    "contain" => Fit::Contain,
                    "cover" => Fit::Cover,
                    "stretch" => Fit::Stretch,
                    _ => return Err(format!("fit={v}: use contain, cover or stretch")),
                })
            }
            "blend" | "mode" => self.blend = Some(v.parse()?),
            "stale" => {
                self.stale = Some(match v {
                    "keep" => OnStale::Keep,
                    "hide" => OnStale::Hide,
                    _ => return Err(format!("stale={v}: use keep or hide")),
                })
            }
            "end" => {
                self.end = Some(match v {
                    "freeze" => OnEnd::Freeze,
                    "remove" => OnEnd::Remove,
                    _ => return Err(format!("end={v}: use freeze or remove")),
                })
            }
            other => return Err(format!("unknown property `{other}`: a layer has {KEYS}")),
        }
        Ok(())
    }

    /// `key=value,key=value`.
    pub fn parse_list(s: &str) -> Result<Patch, String> {
        let mut p = Patch::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not KEY=VALUE (a layer has {KEYS})"))?;
            p.set(k, v)?;
        }
        Ok(p)
    }

    /// Fields set in `other` override this one's.
    pub fn then(&mut self, other: &Patch) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(
            z, x, y, w, h, crop, opacity, visible, anchor, fit, blend, stale, end
        );
    }
}

/// Every property of a layer, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Props {
    pub z: i32,
    pub x: Len,
    pub y: Len,
    pub w: Option<Len>,
    pub h: Option<Len>,
    pub crop: Option<Crop>,
    pub opacity: f64,
    pub visible: bool,
    pub anchor: Anchor,
    pub fit: Fit,
    pub blend: Mode,
    pub stale: OnStale,
    pub end: OnEnd,
}

impl Props {
    /// The defaults of the `index`th input: stacked in the order given, at the top left, at
    /// its own size, fully opaque.
    pub fn defaults(index: usize) -> Props {
        Props {
            z: index as i32,
            x: Len::Px(0.0),
            y: Len::Px(0.0),
            w: None,
            h: None,
            crop: None,
            opacity: 1.0,
            visible: true,
            anchor: Anchor::TopLeft,
            fit: Fit::Contain,
            blend: Mode::Over,
            stale: OnStale::Keep,
            end: OnEnd::Freeze,
        }
    }

    pub fn apply(&mut self, p: &Patch) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &p.$f { self.$f = v.clone(); } )* };
        }
        set!(
            z, x, y, w, h, crop, opacity, visible, anchor, fit, blend, stale, end
        );
    }
}

/// `NAME:key=value,...` (a `--layer` flag, or a `set` command).
pub fn parse_layer_arg(s: &str) -> Result<(String, Patch), String> {
    let (name, list) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not NAME:KEY=VALUE,... (e.g. cam:x=1440,y=60,w=400)"))?;
    Ok((name.trim().to_string(), Patch::parse_list(list)?))
}

/// A layout file: base properties per layer, and named scenes.
#[derive(Clone, Debug, Default)]
pub struct LayoutFile {
    pub layers: BTreeMap<String, Patch>,
    pub scenes: BTreeMap<String, BTreeMap<String, Patch>>,
    /// The scene to start in when `--scene` is not given.
    pub scene: Option<String>,
}

fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn patch_from(v: &serde_json::Value, what: &str) -> Result<Patch, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{what} must be a table of properties ({KEYS})"))?;
    let mut p = Patch::default();
    for (k, v) in obj {
        let text = value_text(v)
            .ok_or_else(|| format!("{what}.{k}: give a number, string or true/false"))?;
        p.set(k, &text).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(p)
}

impl LayoutFile {
    /// Parse a layout from text: JSON if `json`, else TOML.
    pub fn parse(text: &str, json: bool) -> Result<LayoutFile, String> {
        let root: serde_json::Value = if json {
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?
        } else {
            toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?
        };
        let obj = root
            .as_object()
            .ok_or("the layout must be a table (TOML) or object (JSON)")?;
        let mut out = LayoutFile::default();
        for (k, v) in obj {
            match k.as_str() {
                "layers" => {
                    let layers = v.as_object().ok_or("`layers` must be a table of layers")?;
                    for (name, props) in layers {
                        out.layers
                            .insert(name.clone(), patch_from(props, &format!("layers.{name}"))?);
                    }
                }
                "scenes" => {
                    let scenes = v.as_object().ok_or("`scenes` must be a table of scenes")?;
                    for (scene, layers) in scenes {
                        let layers = layers
                            .as_object()
                            .ok_or_else(|| format!("scenes.{scene} must be a table of layers"))?;
                        let mut m = BTreeMap::new();
                        for (name, props) in layers {
                            m.insert(
                                name.clone(),
                                patch_from(props, &format!("scenes.{scene}.{name}"))?,
                            );
                        }
                        out.scenes.insert(scene.clone(), m);
                    }
                }
                "scene" => {
                    out.scene = Some(
                        v.as_str()
                            .ok_or("`scene` must be the name of a scene")?
                            .to_string(),
                    )
                }
                other => {
                    return Err(format!(
                        "unknown top-level key `{other}`: a layout has `layers`, `scenes` and `scene`"
                    ));
                }
            }
        }
        if let Some(s) = &out.scene
            && !out.scenes.contains_key(s)
        {
            return Err(format!("scene = \"{s}\" names no scene in `scenes`"));
        }
        Ok(out)
    }

    pub fn load(path: &Path) -> anyhow::Result<LayoutFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the layout file {}", path.display()))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        LayoutFile::parse(&text, json)
            .map_err(|e| sl_cli::usage(format!("layout file {}: {e}", path.display())))
    }

    /// Check every layer the file names is an input.
    pub fn check_names(&self, names: &[String]) -> Result<(), String> {
        let known = |n: &String| names.contains(n);
        for n in self.layers.keys() {
            if !known(n) {
                return Err(format!(
                    "[layers.{n}] names no input (the inputs are: {})",
                    names.join(", ")
                ));
            }
        }
        for (s, layers) in &self.scenes {
            for n in layers.keys() {
                if !known(n) {
                    return Err(format!(
                        "[scenes.{s}.{n}] names no input (the inputs are: {})",
                        names.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Where a layer lands on the canvas this frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// The part of the input picture shown.
    pub src: sl_blend::Rect,
    /// Where it goes on the canvas, scaled to this size.
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Placement {
    pub fn lerp(a: &Placement, b: &Placement, t: f64) -> Placement {
        let l = |p: f64, q: f64| p + (q - p) * t;
        Placement {
            src: b.src,
            x: l(a.x, b.x),
            y: l(a.y, b.y),
            w: l(a.w, b.w),
            h: l(a.h, b.h),
        }
    }

    /// Whole pixels: top-left corner, and size (at least 1x1).
    pub fn rounded(&self) -> (i64, i64, u32, u32) {
        (
            self.x.round() as i64,
            self.y.round() as i64,
            (self.w.round() as i64).clamp(1, sl_frame::MAX_DIMENSION as i64) as u32,
            (self.h.round() as i64).clamp(1, sl_frame::MAX_DIMENSION as i64) as u32,
        )
    }
}

/// Place a `sw`x`sh` input with properties `p` on a `cw`x`ch` canvas.
pub fn place(p: &Props, (sw, sh): (u32, u32), (cw, ch): (u32, u32)) -> Placement {
    // the crop, clamped to the picture
    let mut src = match p.crop {
        Some(c) => {
            let x = c.x.min(sw - 1);
            let y = c.y.min(sh - 1);
            sl_blend::Rect {
                x: x as i64,
                y: y as i64,
                w: c.w.min(sw - x),
                h: c.h.min(sh - y),
            }
        }
        None => sl_blend::Rect {
            x: 0,
            y: 0,
            w: sw,
            h: sh,
        },
    };
    let (iw, ih) = (src.w as f64, src.h as f64);
    let bw = p.w.map(|l| l.resolve(cw).max(1.0));
    let bh = p.h.map(|l| l.resolve(ch).max(1.0));
    let (fx, fy) = p.anchor.fractions();
    // the box the anchor places, and the picture's size and offset inside it
    let (bw, bh, w, h) = match (bw, bh) {
        (None, None) => (iw, ih, iw, ih),
        (Some(w), None) => (w, w * ih / iw, w, w * ih / iw),
        (None, Some(h)) => (h * iw / ih, h, h * iw / ih, h),
        (Some(bw), Some(bh)) => match p.fit {
            Fit::Stretch => (bw, bh, bw, bh),
            Fit::Contain => {
                let s = (bw / iw).min(bh / ih);
                (bw, bh, iw * s, ih * s)
            }
            Fit::Cover => {
                let s = (bw / iw).max(bh / ih);
                // cut the picture to the box's aspect, at the anchor
                let (vw, vh) = ((bw / s).min(iw), (bh / s).min(ih));
                let (vw, vh) = (vw.round().max(1.0) as u32, vh.round().max(1.0) as u32);
                src.x += ((src.w - vw) as f64 * fx).round() as i64;
                src.y += ((src.h - vh) as f64 * fy).round() as i64;
                src.w = vw;
                src.h = vh;
                (bw, bh, bw, bh)
            }
        },
    };
    let bx = p.x.resolve(cw) - fx * bw;
    let by = p.y.resolve(ch) - fy * bh;
    Placement {
        src,
        x: bx + fx * (bw - w),
        y: by + fy * (bh - h),
        w,
        h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_errors_say_what_to_give() {
        let (n, p) = parse_layer_arg("cam:x=1440,y=60,w=400,opacity=0.8,z=2").unwrap();
        assert_eq!(n, "cam");
        assert_eq!(p.x, Some(Len::Px(1440.0)));
        assert_eq!(p.w, Some(Some(Len::Px(400.0))));
        assert_eq!(p.opacity, Some(0.8));
        assert_eq!(p.z, Some(2));
        assert!(
            parse_layer_arg("cam:opacity=2")
                .unwrap_err()
                .contains("0..1")
        );
        assert!(
            parse_layer_arg("cam:colour=red")
                .unwrap_err()
                .contains("unknown property")
        );
        assert!(parse_layer_arg("cam").is_err());
        let (_, p) = parse_layer_arg("hud:x=50%,anchor=c,crop=10x20+1+2,blend=add").unwrap();
        assert_eq!(p.x, Some(Len::Pct(50.0)));
        assert_eq!(
            p.crop,
            Some(Some(Crop {
                x: 1,
                y: 2,
                w: 10,
                h: 20
            }))
        );
        assert_eq!(p.blend, Some(Mode::Add));
    }

    #[test]
    fn placement_keeps_aspect_unless_told() {
        let mut p = Props::defaults(0);
        p.w = Some(Len::Px(400.0));
        let pl = place(&p, (1280, 720), (1920, 1080));
        assert_eq!(pl.rounded(), (0, 0, 400, 225));
        p.h = Some(Len::Px(400.0));
        let pl = place(&p, (1280, 720), (1920, 1080));
        assert_eq!(
            pl.rounded(),
            (0, 0, 400, 225),
            "contain, at the top left of its box"
        );
        p.anchor = Anchor::Center;
        p.x = Len::Px(200.0);
        p.y = Len::Px(200.0);
        let pl = place(&p, (1280, 720), (1920, 1080));
        assert_eq!(
            pl.rounded(),
            (0, 88, 400, 225),
            "contain, centred in its box"
        );
    }

    #[test]
    fn anchors_and_cover() {
        let mut p = Props::defaults(0);
        p.anchor = Anchor::BottomRight;
        p.x = Len::Pct(100.0);
        p.y = Len::Pct(100.0);
        let pl = place(&p, (100, 50), (1920, 1080));
        assert_eq!(pl.rounded(), (1820, 1030, 100, 50));
        let mut p = Props::defaults(0);
        p.w = Some(Len::Px(100.0));
        p.h = Some(Len::Px(100.0));
        p.fit = Fit::Cover;
        p.anchor = Anchor::Center;
        p.x = Len::Px(50.0);
        p.y = Len::Px(50.0);
        let pl = place(&p, (200, 100), (1920, 1080));
        assert_eq!(pl.rounded(), (0, 0, 100, 100));
        assert_eq!(
            pl.src,
            sl_blend::Rect {
                x: 50,
                y: 0,
                w: 100,
                h: 100
            }
        );
    }

    #[test]
    fn the_example_layouts_parse() {
        let names = ["main".to_string(), "cam".to_string()];
        for (text, json) in [
            (include_str!("../../../examples/pip.toml"), false),
            (include_str!("../../../examples/pip.json"), true),
        ] {
            let l = LayoutFile::parse(text, json).unwrap();
            l.check_names(&names).unwrap();
            assert_eq!(l.scene.as_deref(), Some("pip"));
        }
    }

    #[test]
    fn layout_files_check_names_and_values() {
        let l = LayoutFile::parse(
            "scene = \"pip\"\n[layers.cam]\nx = 10\n[scenes.pip.cam]\nw = \"25%\"\n[scenes.full.cam]\nvisible = false\n",
            false,
        )
        .unwrap();
        assert_eq!(l.scene.as_deref(), Some("pip"));
        assert_eq!(l.layers["cam"].x, Some(Len::Px(10.0)));
        assert_eq!(l.scenes["full"]["cam"].visible, Some(false));
        assert!(
            l.check_names(&["main".into()])
                .unwrap_err()
                .contains("names no input")
        );
        assert!(
            LayoutFile::parse("[layers.cam]\nopacity = 3\n", false)
                .unwrap_err()
                .contains("layers.cam")
        );
        assert!(
            LayoutFile::parse("{\"layer\": {}}", true)
                .unwrap_err()
                .contains("unknown top-level key")
        );
        assert!(
            LayoutFile::parse("[layers", false)
                .unwrap_err()
                .contains("TOML")
        );
    }
}
