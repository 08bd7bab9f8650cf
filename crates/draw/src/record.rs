//! The canvas a script draws on records drawing operations; [`crate::render`] replays them.
//!
//! Recording instead of drawing straight away keeps the script call itself short (it only
//! builds geometry) and means a script that fails half-way through a frame leaves the frame
//! untouched: the partial recording is thrown away.

use std::cell::RefCell;
use std::rc::Rc;

use tiny_skia::{
    FillRule, LineCap, LineJoin, Path, PathBuilder, Rect, Stroke, StrokeDash, Transform,
};

use crate::assets::{Assets, Image};
use crate::effects::{Effect, Region};
use crate::paint::{Color, PaintSpec};
use crate::text;

/// Most drawing operations one frame may record.
pub const MAX_OPS_PER_FRAME: usize = 100_000;
/// What a frame's drawing may cost at the default time limit, in areas of the canvas blended
/// (a full-canvas fill is one). Measured with tiny-skia on the 2-core test machine under a
/// load of 11: a translucent 1080p fill took 29 ms (an opaque one 0.7 ms), a small shape
/// 19 µs, a dash segment about 0.8 µs; 16 translucent 1080p fills take about 0.1 s on an idle
/// core. Scaled with `--time-limit`.
pub const DRAW_AREAS_PER_FRAME: f64 = 16.0;
/// The budget never goes below this many pixels, so small canvases can still draw thousands
/// of small shapes.
pub const MIN_DRAW_BUDGET: u64 = 1 << 23;
/// Fixed cost of any operation (path building, edge setup), in pixels.
const OP_COST: u64 = 1024;
/// Cost of one dash segment (it is stroked and filled as a path of its own), in pixels.
const DASH_COST: u64 = 256;
/// tiny-skia draws nothing for a path that would make more dashes than this.
const MAX_DASHES: f64 = 1_000_000.0;
/// What pixelating one pixel costs, in pixels blended. Measured by
/// `effects::timing::effect_costs` (1080p RGBA, load 10 on 2 cores): a pixelate took 1.1
/// times a translucent fill of the same area...
const PIXELATE_COST: u64 = 1;
/// ...and a blur (six box passes) 9.1 times.
const BLUR_COST: u64 = 9;
/// Most nested `save()`s.
const MAX_SAVE_DEPTH: usize = 256;

/// Horizontal text alignment relative to the x given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

/// Which line of the text the y given refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    Top,
    Middle,
    Alphabetic,
    Bottom,
}

/// Drawing state saved and restored by `save()`/`restore()`.
#[derive(Clone, Debug)]
pub struct State {
    pub transform: Transform,
    pub line_width: f32,
    pub cap: LineCap,
    pub join: LineJoin,
    pub dash: Option<(Vec<f32>, f32)>,
    pub anti_alias: bool,
    pub alpha: f32,
    pub font: usize,
    pub font_size: f32,
    pub align: Align,
    pub baseline: Baseline,
}

impl Default for State {
    fn default() -> Self {
        State {
            transform: Transform::identity(),
            line_width: 1.0,
            cap: LineCap::Butt,
            join: LineJoin::Miter,
            dash: None,
            anti_alias: true,
            alpha: 1.0,
            font: 0,
            font_size: 24.0,
            align: Align::Left,
            baseline: Baseline::Alphabetic,
        }
    }
}

impl State {
    pub fn stroke(&self) -> Stroke {
        Stroke {
            width: self.line_width,
            line_cap: self.cap,
            line_join: self.join,
            dash: self
                .dash
                .as_ref()
                .and_then(|(a, off)| StrokeDash::new(a.clone(), *off)),
            ..Stroke::default()
        }
    }
}

/// One recorded drawing operation, with everything it needs to be replayed.
#[derive(Clone, Debug)]
pub enum Op {
    /// Set every pixel (ignoring transform and clip).
    Clear(Color),
    Fill {
        path: Path,
        paint: PaintSpec,
        transform: Transform,
        anti_alias: bool,
        alpha: f32,
        rule: FillRule,
    },
    Stroke {
        path: Path,
        paint: PaintSpec,
        stroke: Stroke,
        transform: Transform,
        anti_alias: bool,
        alpha: f32,
    },
    Text {
        text: String,
        x: f32,
        y: f32,
        color: Color,
        font: usize,
        size: f32,
        align: Align,
        baseline: Baseline,
        transform: Transform,
    },
    Image {
        image: usize,
        rect: Rect,
        opacity: f32,
        transform: Transform,
        smooth: bool,
    },
    /// Pixelate or blur a region of the frame (in frame pixels: the transform was applied
    /// when it was recorded; the clip does not apply).
    Effect {
        region: Region,
        effect: Effect,
    },
    Save,
    Restore,
    Clip {
        path: Path,
        transform: Transform,
        anti_alias: bool,
    },
}

/// The recording behind a script's `canvas`.
#[derive(Debug)]
pub struct Recorder {
    pub ops: Vec<Op>,
    pub width: u32,
    pub height: u32,
    state: State,
    stack: Vec<State>,
    pub assets: Rc<Assets>,
    /// Estimated cost of what is recorded, in pixels blended (see [`Recorder::work`]).
    work: u64,
    /// Time-limit scale of the budget (1.0 at the default 250 ms).
    budget_scale: f64,
}

impl Recorder {
    pub fn new(width: u32, height: u32, assets: Rc<Assets>) -> Recorder {
        Recorder {
            ops: Vec::new(),
            width,
            height,
            state: State::default(),
            stack: Vec::new(),
            assets,
            work: 0,
            budget_scale: 1.0,
        }
    }

    /// Scale the drawing budget: 1.0 is [`DRAW_AREAS_PER_FRAME`] canvas areas per frame.
    pub fn set_budget_scale(&mut self, scale: f64) {
        self.budget_scale = scale.max(0.01);
    }

    /// Start a new frame: no operations, default state.
    pub fn reset(&mut self, width: u32, height: u32) {
        self.ops.clear();
        self.width = width;
        self.height = height;
        self.state = State::default();
        self.stack.clear();
        self.work = 0;
    }

    fn area(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    /// The most this frame's drawing may cost, in pixels blended.
    pub fn budget(&self) -> u64 {
        let b = DRAW_AREAS_PER_FRAME * self.budget_scale * self.area() as f64;
        (b as u64).max((MIN_DRAW_BUDGET as f64 * self.budget_scale) as u64)
    }

    /// The estimated cost of what this frame recorded so far: pixels blended (clipped to the
    /// canvas), plus a fixed cost per operation and per dash segment. Recording refuses an
    /// operation that would take it past [`Recorder::budget`], so a frame whose drawing could
    /// not finish in time passes undrawn instead of stalling the stream (99,999 full-frame
    /// fills, or 20,000 finely dashed lines, used to take minutes per frame).
    pub fn work(&self) -> u64 {
        self.work
    }

    fn charge(&mut self, cost: u64) -> Result<(), String> {
        let work = self.work.saturating_add(cost);
        let budget = self.budget();
        if work > budget {
            let area = self.area().max(1) as f64;
            return Err(format!(
                "this frame's drawing would blend more than {:.0} canvases' worth of pixels (the budget for --time-limit): it was stopped and the frame passes undrawn; draw fewer, smaller or undashed shapes, or raise --time-limit",
                budget as f64 / area
            ));
        }
        self.work = work;
        Ok(())
    }

    /// Area of `path`'s bounds under `t`, clipped to the canvas.
    fn covered(&self, path: &Path, t: &Transform) -> u64 {
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
        let (w, h) = (self.width as f32, self.height as f32);
        let cw = (x1.min(w) - x0.max(0.0)).max(0.0) + 1.0;
        let ch = (y1.min(h) - y0.max(0.0)).max(0.0) + 1.0;
        if x1 < 0.0 || y1 < 0.0 || x0 > w || y0 > h {
            return 0;
        }
        ((cw * ch) as u64).min(self.area())
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    fn push(&mut self, op: Op, cost: u64) -> Result<(), String> {
        if self.ops.len() >= MAX_OPS_PER_FRAME {
            return Err(format!(
                "more than {MAX_OPS_PER_FRAME} drawing operations in one frame"
            ));
        }
        self.charge(OP_COST + cost)?;
        self.ops.push(op);
        Ok(())
    }

    pub fn clear(&mut self, c: Color) -> Result<(), String> {
        // Everything drawn before a clear is invisible: forget it (keeps save/clip ops), and
        // its cost with it.
        self.ops
            .retain(|op| matches!(op, Op::Save | Op::Restore | Op::Clip { .. }));
        let clips = self
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Clip { .. }))
            .count() as u64;
        self.work = self.ops.len() as u64 * OP_COST + clips * self.area();
        let area = self.area();
        self.push(Op::Clear(c), area)
    }

    pub fn fill(&mut self, path: Option<Path>, paint: PaintSpec) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let cost = self.covered(&path, &self.state.transform) + path.points().len() as u64 * 4;
        let s = &self.state;
        let op = Op::Fill {
            path,
            paint,
            transform: s.transform,
            anti_alias: s.anti_alias,
            alpha: s.alpha,
            rule: FillRule::Winding,
        };
        self.push(op, cost)
    }

    /// Pixels a stroke of `path` may touch, and the dash segments it makes.
    fn stroke_cost(&self, path: &Path) -> u64 {
        let t = &self.state.transform;
        let mut length = 0.0f64;
        for w in path.points().windows(2) {
            length += ((w[1].x - w[0].x) as f64).hypot((w[1].y - w[0].y) as f64);
        }
        let scale = ((t.sx * t.sx + t.ky * t.ky).max(t.kx * t.kx + t.sy * t.sy) as f64).sqrt();
        let width = self.state.line_width as f64 * scale + 2.0;
        let along = (length * scale * width).min(self.area() as f64);
        let pixels = (along as u64).min(self.covered(path, t) + (width * width) as u64);
        let dashes = match &self.state.dash {
            Some((a, _)) => {
                let interval: f64 = a.iter().map(|x| *x as f64).sum();
                if interval > 0.0 {
                    (length * (a.len() / 2) as f64 / interval).min(MAX_DASHES)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        pixels + dashes as u64 * DASH_COST + path.points().len() as u64 * 4
    }

    pub fn stroke(&mut self, path: Option<Path>, paint: PaintSpec) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let cost = self.stroke_cost(&path);
        let s = &self.state;
        let op = Op::Stroke {
            path,
            paint,
            stroke: s.stroke(),
            transform: s.transform,
            anti_alias: s.anti_alias,
            alpha: s.alpha,
        };
        self.push(op, cost)
    }

    pub fn text(&mut self, text: &str, x: f32, y: f32, color: Color) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
        // each glyph blends about 0.7 size x size pixels (scaled), at most the canvas
        let t = &self.state.transform;
        let scale = ((t.sx * t.sx + t.ky * t.ky).max(t.kx * t.kx + t.sy * t.sy) as f64).sqrt();
        let size = self.state.font_size as f64 * scale;
        let glyph = ((0.7 * size * size) as u64).min(self.area()) + 64;
        let cost = glyph.saturating_mul(text.chars().count() as u64);
        let s = &self.state;
        let op = Op::Text {
            text: text.to_string(),
            x,
            y,
            color: color.fade(s.alpha),
            font: s.font,
            size: s.font_size,
            align: s.align,
            baseline: s.baseline,
            transform: s.transform,
        };
        self.push(op, cost)
    }

    /// Width and line metrics of `text` in the current font and size.
    pub fn measure(&self, text: &str) -> text::Measure {
        match self.assets.font(self.state.font) {
            Some(f) => text::measure(&f, text, self.state.font_size),
            None => text::Measure::default(),
        }
    }

    pub fn image(&mut self, img: Image, rect: Option<Rect>, opacity: f32) -> Result<(), String> {
        let Some(rect) = rect else { return Ok(()) };
        let cost = self.covered(&PathBuilder::from_rect(rect), &self.state.transform);
        let s = &self.state;
        let op = Op::Image {
            image: img.id,
            rect,
            opacity: (opacity * s.alpha).clamp(0.0, 1.0),
            transform: s.transform,
            smooth: s.anti_alias,
        };
        self.push(op, cost)
    }

    /// Pixelate or blur the `w` x `h` rectangle at `x`, `y` (negative sizes extend left/up):
    /// the bounds of the rectangle under the current transform, widened to whole pixels and
    /// clipped to the canvas. Nothing is recorded when none of it is on the canvas.
    pub fn effect(&mut self, x: f32, y: f32, w: f32, h: f32, effect: Effect) -> Result<(), String> {
        let t = &self.state.transform;
        let (mut x0, mut y0) = (f32::INFINITY, f32::INFINITY);
        let (mut x1, mut y1) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for (px, py) in [(x, y), (x + w, y), (x, y + h), (x + w, y + h)] {
            let tx = px * t.sx + py * t.kx + t.tx;
            let ty = px * t.ky + py * t.sy + t.ty;
            x0 = x0.min(tx);
            x1 = x1.max(tx);
            y0 = y0.min(ty);
            y1 = y1.max(ty);
        }
        let Some(region) = Region::clipped(x0, y0, x1, y1, self.width, self.height) else {
            return Ok(());
        };
        let per_pixel = match effect {
            Effect::Pixelate { .. } => PIXELATE_COST,
            Effect::Blur { .. } => BLUR_COST,
        };
        self.push(Op::Effect { region, effect }, region.area() * per_pixel)
    }

    pub fn save(&mut self) -> Result<(), String> {
        if self.stack.len() >= MAX_SAVE_DEPTH {
            return Err(format!("more than {MAX_SAVE_DEPTH} nested save() calls"));
        }
        self.stack.push(self.state.clone());
        self.push(Op::Save, 0)
    }

    /// Undo to the last `save()`; a `restore()` without one does nothing.
    pub fn restore(&mut self) -> Result<(), String> {
        if let Some(s) = self.stack.pop() {
            self.state = s;
            self.push(Op::Restore, 0)?;
        }
        Ok(())
    }

    pub fn clip(&mut self, path: Option<Path>) -> Result<(), String> {
        // An empty clip path clips everything away: use an empty rectangle far off-canvas.
        let path = path.unwrap_or_else(|| {
            PathBuilder::from_rect(Rect::from_xywh(-10.0, -10.0, 1.0, 1.0).expect("valid"))
        });
        let op = Op::Clip {
            path,
            transform: self.state.transform,
            anti_alias: self.state.anti_alias,
        };
        let area = self.area();
        self.push(op, area)
    }

    pub fn transform(&mut self, t: Transform) {
        self.state.transform = self.state.transform.pre_concat(t);
    }
}

/// The `canvas` a script's `draw` receives: a shared handle on the frame's [`Recorder`].
#[derive(Clone, Debug)]
pub struct Canvas(pub Rc<RefCell<Recorder>>);

/// A path a script builds with `path()`, `move_to`, `line_to`, `quad_to`, `cubic_to`, `close`.
#[derive(Clone, Debug, Default)]
pub struct ScriptPath(pub PathBuilder);
