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
use crate::paint::{Color, PaintSpec};
use crate::text;

/// Most drawing operations one frame may record.
pub const MAX_OPS_PER_FRAME: usize = 100_000;
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
        }
    }

    /// Start a new frame: no operations, default state.
    pub fn reset(&mut self, width: u32, height: u32) {
        self.ops.clear();
        self.width = width;
        self.height = height;
        self.state = State::default();
        self.stack.clear();
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    fn push(&mut self, op: Op) -> Result<(), String> {
        if self.ops.len() >= MAX_OPS_PER_FRAME {
            return Err(format!(
                "more than {MAX_OPS_PER_FRAME} drawing operations in one frame"
            ));
        }
        self.ops.push(op);
        Ok(())
    }

    pub fn clear(&mut self, c: Color) -> Result<(), String> {
        // Everything drawn before a clear is invisible: forget it (keeps save/clip ops).
        self.ops
            .retain(|op| matches!(op, Op::Save | Op::Restore | Op::Clip { .. }));
        self.push(Op::Clear(c))
    }

    pub fn fill(&mut self, path: Option<Path>, paint: PaintSpec) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let s = &self.state;
        let op = Op::Fill {
            path,
            paint,
            transform: s.transform,
            anti_alias: s.anti_alias,
            alpha: s.alpha,
            rule: FillRule::Winding,
        };
        self.push(op)
    }

    pub fn stroke(&mut self, path: Option<Path>, paint: PaintSpec) -> Result<(), String> {
        let Some(path) = path else { return Ok(()) };
        let s = &self.state;
        let op = Op::Stroke {
            path,
            paint,
            stroke: s.stroke(),
            transform: s.transform,
            anti_alias: s.anti_alias,
            alpha: s.alpha,
        };
        self.push(op)
    }

    pub fn text(&mut self, text: &str, x: f32, y: f32, color: Color) -> Result<(), String> {
        if text.is_empty() {
            return Ok(());
        }
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
        self.push(op)
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
        let s = &self.state;
        let op = Op::Image {
            image: img.id,
            rect,
            opacity: (opacity * s.alpha).clamp(0.0, 1.0),
            transform: s.transform,
            smooth: s.anti_alias,
        };
        self.push(op)
    }

    pub fn save(&mut self) -> Result<(), String> {
        if self.stack.len() >= MAX_SAVE_DEPTH {
            return Err(format!("more than {MAX_SAVE_DEPTH} nested save() calls"));
        }
        self.stack.push(self.state.clone());
        self.push(Op::Save)
    }

    /// Undo to the last `save()`; a `restore()` without one does nothing.
    pub fn restore(&mut self) -> Result<(), String> {
        if let Some(s) = self.stack.pop() {
            self.state = s;
            self.push(Op::Restore)?;
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
        self.push(op)
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
