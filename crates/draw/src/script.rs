//! A sandboxed Rhai script that draws frames: compile, hot reload, `init`, `draw`.
//!
//! Contract:
//! - The engine has no file, network or process access: `import` finds no modules (the
//!   resolver is a dummy), `eval` is disabled, `print`/`debug` go to stderr. The only files a
//!   script can read are fonts and images in its own folder ([`crate::assets`]).
//! - Every call is bounded: operations (`--max-ops`), wall time (`--time-limit`), string,
//!   array and map sizes, call depth and expression depth. A script that hits a limit gets
//!   an error saying which.
//! - A failed frame (script error, limit, panic in a host function) records nothing: the
//!   frame is left as it came. The caller decides whether that is fatal (`--strict`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{AST, Array, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Position, Scope};
use sl_frame::{FrameInfo, PixelFormat, Value, VideoFrame};
use tiny_skia::PixmapMut;

use crate::assets::Assets;
use crate::memory;
use crate::pixels;
use crate::record::{Canvas, Op, Recorder};
use crate::render::{Overrun, Renderer};

/// Largest script file accepted.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;
/// How often the script file is checked for changes.
const RELOAD_POLL: Duration = Duration::from_millis(200);
/// Most custom variables (`--set`, the control channel) kept; later new names are ignored.
pub const MAX_VARS: usize = 1000;
/// The time limit the drawing budget is sized for ([`crate::record::DRAW_AREAS_PER_FRAME`]).
const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(250);
/// What `on_progress` returns to stop a call that allocated past the memory limit.
const MEMORY_STOP: &str = "memory limit";

/// Sandbox limits for one script call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Rhai operations per call (each `init` or `draw`).
    pub max_operations: u64,
    /// Wall time per call.
    pub time_limit: Duration,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    pub max_call_levels: usize,
    /// Bytes one call may allocate (and keep), and the most the script's state (`this`,
    /// map keys included) may hold between calls. 0: no limit.
    pub max_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 5_000_000,
            time_limit: Duration::from_millis(250),
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 10_000,
            max_call_levels: 64,
            max_memory: 256 << 20,
        }
    }
}

/// What went wrong, and where in the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// `file:line:column` (or just the file when the position is unknown).
    pub location: String,
    pub message: String,
    /// A compile error (as opposed to one while running).
    pub compile: bool,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ScriptError {}

/// What a frame's `ctx` holds besides metadata.
#[derive(Clone, Debug)]
pub struct FrameContext<'a> {
    pub frame_number: u64,
    /// The frame's timestamp in seconds.
    pub time: f64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// The incoming frame's info (overlay mode), for its metadata and capture time.
    pub info: Option<&'a FrameInfo>,
}

/// Time spent on one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameTiming {
    /// In the Rhai call (script and recording).
    pub script: Duration,
    /// Rasterising what was recorded.
    pub render: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// A script ready to draw frames.
pub struct Drawer {
    engine: Engine,
    path: PathBuf,
    name: String,
    ast: AST,
    stamp: Option<Stamp>,
    last_poll: Instant,
    this: Dynamic,
    needs_init: bool,
    vars: Map,
    assets: Rc<Assets>,
    canvas: Canvas,
    renderer: Renderer,
    deadline: Rc<Cell<Option<Instant>>>,
    /// The thread's allocation counter when the current call started.
    mem_base: Rc<Cell<i64>>,
    limits: Limits,
    started: Instant,
}

impl fmt::Debug for Drawer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drawer")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The sandboxed engine, without the drawing API.
fn sandboxed_engine(
    limits: &Limits,
    deadline: Rc<Cell<Option<Instant>>>,
    mem_base: Rc<Cell<i64>>,
    name: &str,
) -> Engine {
    let mut e = Engine::new();
    // No modules from disk (or anywhere): `import` fails with "module not found".
    e.set_module_resolver(DummyModuleResolver::new());
    // `eval` would run code the limits were not set up for and defeat static checks.
    e.disable_symbol("eval");
    e.set_max_operations(limits.max_operations);
    e.set_max_string_size(limits.max_string_size);
    e.set_max_array_size(limits.max_array_size);
    e.set_max_map_size(limits.max_map_size);
    e.set_max_call_levels(limits.max_call_levels);
    e.set_max_expr_depths(64, 32);
    e.set_max_variables(1000);
    e.set_max_functions(1000);
    // Checking the clock on every operation would cost more than the operation itself; the
    // allocation counter is a thread-local read, and one operation can allocate a whole
    // string-limit's worth, so it is checked every time.
    let max_memory = limits.max_memory as i64;
    e.on_progress(move |ops| {
        if max_memory > 0 && memory::thread_net_bytes() - mem_base.get() > max_memory {
            return Some(Dynamic::from(MEMORY_STOP));
        }
        if ops % 1024 == 0
            && let Some(d) = deadline.get()
            && Instant::now() > d
        {
            return Some(Dynamic::from("time limit"));
        }
        None
    });
    // stdout carries frames: script output goes to stderr.
    let n = name.to_string();
    e.on_print(move |s| eprintln!("sl-draw: {n}: {s}"));
    let n = name.to_string();
    e.on_debug(move |s, _src, pos| match pos.line() {
        Some(l) => eprintln!("sl-draw: {n}:{l}: debug: {s}"),
        None => eprintln!("sl-draw: {n}: debug: {s}"),
    });
    e
}

/// Strip Rhai's own " (line l, position p)" suffix: we print positions as file:line:col.
fn without_position(s: &str) -> String {
    match s.rfind(" (line ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s.to_string(),
    }
}

impl Drawer {
    /// Compile the script at `path` (its folder is where it may load fonts and images from).
    pub fn new(path: &Path, limits: Limits) -> Result<Drawer, ScriptError> {
        let name = path.display().to_string();
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let deadline = Rc::new(Cell::new(None));
        let mem_base = Rc::new(Cell::new(0));
        let mut assets = Assets::new(base);
        assets.set_deadline(Rc::clone(&deadline));
        assets.set_mem_base(Rc::clone(&mem_base));
        // the default font is parsed now, not in the first frame's time budget
        let _ = assets.font(0);
        let assets = Rc::new(assets);
        let mut engine =
            sandboxed_engine(&limits, Rc::clone(&deadline), Rc::clone(&mem_base), &name);
        crate::api::register(&mut engine, &assets);
        let mut recorder = Recorder::new(1, 1, Rc::clone(&assets));
        recorder
            .set_budget_scale(limits.time_limit.as_secs_f64() / DEFAULT_TIME_LIMIT.as_secs_f64());
        let canvas = Canvas(Rc::new(RefCell::new(recorder)));
        let mut d = Drawer {
            engine,
            path: path.to_path_buf(),
            name,
            ast: AST::empty(),
            stamp: stamp(path),
            last_poll: Instant::now(),
            this: Dynamic::from_map(Map::new()),
            needs_init: true,
            vars: Map::new(),
            assets,
            canvas,
            renderer: Renderer::new(),
            deadline,
            mem_base,
            limits,
            started: Instant::now(),
        };
        d.ast = d.compile()?;
        d.run_top_level()?;
        Ok(d)
    }

    /// The engine, to register more functions (tests, embedding).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error_at(&self, pos: Position, message: String, compile: bool) -> ScriptError {
        let location = match (pos.line(), pos.position()) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.name),
            (Some(l), None) => format!("{}:{l}", self.name),
            _ => self.name.clone(),
        };
        ScriptError {
            location,
            message,
            compile,
        }
    }

    fn compile(&self) -> Result<AST, ScriptError> {
        let none = Position::NONE;
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| self.error_at(none, format!("cannot read the script: {e}"), true))?;
        // Reading a FIFO or a device would block (or never end) before the first frame.
        if !meta.is_file() {
            return Err(self.error_at(
                none,
                "the script is not a regular file (a FIFO, device or folder?): give the path of a .rhai file".into(),
                true,
            ));
        }
        let len = meta.len();
        if len > MAX_SCRIPT_BYTES {
            return Err(self.error_at(
                none,
                format!("the script is {len} bytes; at most {MAX_SCRIPT_BYTES} are accepted"),
                true,
            ));
        }
        let src = std::fs::read_to_string(&self.path)
            .map_err(|e| self.error_at(none, format!("cannot read the script: {e}"), true))?;
        let ast = self.engine.compile(&src).map_err(|e| {
            let mut msg = without_position(&e.to_string());
            if msg.contains("'eval'") || msg.contains("eval") && src.contains("eval") {
                msg.push_str(" (`eval` is disabled in sl-draw scripts)");
            }
            self.error_at(e.position(), msg, true)
        })?;
        let has_draw = ast
            .iter_functions()
            .any(|f| f.name == "draw" && f.params.len() == 2);
        if !has_draw {
            return Err(self.error_at(
                none,
                "the script defines no `fn draw(canvas, ctx)`".into(),
                true,
            ));
        }
        Ok(ast)
    }

    fn has_init(&self) -> bool {
        self.ast
            .iter_functions()
            .any(|f| f.name == "init" && f.params.len() == 1)
    }

    /// Top-level statements run once, when the script is loaded.
    fn run_top_level(&mut self) -> Result<(), ScriptError> {
        self.deadline
            .set(Some(Instant::now() + self.limits.time_limit));
        self.mem_base.set(memory::thread_net_bytes());
        let r = self.engine.run_ast_with_scope(&mut Scope::new(), &self.ast);
        self.deadline.set(None);
        r.map_err(|e| self.runtime_error(&e))
    }

    /// Set a custom variable (`ctx.vars.NAME`, `ctx.get_var("NAME", default)`).
    /// At most [`MAX_VARS`] names are kept: a new name past that is ignored, with a warning.
    pub fn set_var(&mut self, key: &str, value: &serde_json::Value) {
        if self.vars.len() >= MAX_VARS && !self.vars.contains_key(key) {
            log::warn!("variable `{key}` ignored: at most {MAX_VARS} variables are kept");
            return;
        }
        self.vars.insert(key.into(), json_to_dynamic(value));
    }

    /// If the script file changed (checked every 200 ms), recompile it. `Some(Ok)`: the new
    /// version takes over (its `init` runs before the next frame); `Some(Err)`: it does not
    /// compile and the old one keeps running.
    pub fn poll_reload(&mut self) -> Option<Result<(), ScriptError>> {
        if self.last_poll.elapsed() < RELOAD_POLL {
            return None;
        }
        self.last_poll = Instant::now();
        let now = stamp(&self.path);
        if now == self.stamp || now.is_none() {
            return None;
        }
        self.stamp = now;
        Some(self.reload())
    }

    /// Recompile now; on success the new script replaces the old one.
    pub fn reload(&mut self) -> Result<(), ScriptError> {
        let ast = self.compile()?;
        let old = std::mem::replace(&mut self.ast, ast);
        if let Err(e) = self.run_top_level() {
            self.ast = old;
            return Err(e);
        }
        self.this = Dynamic::from_map(Map::new());
        self.needs_init = true;
        Ok(())
    }

    fn ctx_map(&self, fc: &FrameContext<'_>) -> Map {
        let mut m = Map::new();
        m.insert("frame_number".into(), (fc.frame_number as i64).into());
        m.insert("time".into(), fc.time.into());
        m.insert(
            "elapsed".into(),
            self.started.elapsed().as_secs_f64().into(),
        );
        let clock_ns = fc
            .info
            .and_then(|i| i.capture_time_ns)
            .unwrap_or_else(sl_frame::now_ns);
        m.insert("clock".into(), (clock_ns as f64 / 1e9).into());
        m.insert("width".into(), (fc.width as i64).into());
        m.insert("height".into(), (fc.height as i64).into());
        m.insert("fps".into(), fc.fps.into());
        let mut meta = Map::new();
        let mut boxes = Array::new();
        if let Some(info) = fc.info {
            m.insert("source_id".into(), info.source_id.clone().into());
            for (k, v) in info.metadata.iter() {
                let d = match v {
                    Value::Bool(b) => (*b).into(),
                    Value::Int(i) => (*i).into(),
                    Value::Float(f) => (*f).into(),
                    Value::Str(s) => s.clone().into(),
                    Value::Bytes(b) => Dynamic::from_blob(b.clone()),
                    Value::Boxes(bs) => {
                        let arr: Array = bs.iter().map(box_map).collect();
                        boxes.extend(arr.iter().cloned());
                        arr.into()
                    }
                };
                meta.insert(k.into(), d);
            }
        } else {
            m.insert("source_id".into(), "".into());
        }
        m.insert("meta".into(), meta.into());
        m.insert("boxes".into(), boxes.into());
        m.insert("vars".into(), self.vars.clone().into());
        m
    }

    fn runtime_error(&self, e: &EvalAltResult) -> ScriptError {
        // Find the innermost error and the position closest to it; name the call chain.
        let mut err = e;
        let mut pos = e.position();
        let mut chain = Vec::new();
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, p) = err {
            chain.push(name.clone());
            if !p.is_none() {
                pos = *p;
            }
            err = inner;
        }
        if !err.position().is_none() {
            pos = err.position();
        }
        let l = &self.limits;
        let mut msg = match err {
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "the script ran more than {} operations in one call (an endless loop?): it was stopped; raise --max-ops if it really needs more",
                l.max_operations
            ),
            EvalAltResult::ErrorTerminated(token, _)
                if token
                    .clone()
                    .into_immutable_string()
                    .is_ok_and(|t| t == MEMORY_STOP) =>
            {
                format!(
                    "the script allocated more than {} MB in one call: it was stopped; keep less (map keys count too), or raise --max-memory",
                    l.max_memory >> 20
                )
            }
            EvalAltResult::ErrorTerminated(..) => format!(
                "the script took longer than {} ms in one call: it was stopped; raise --time-limit if it really needs more",
                l.time_limit.as_millis()
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => format!(
                "{what} is larger than the sandbox allows (strings {} bytes, arrays {} items, maps {} items)",
                l.max_string_size, l.max_array_size, l.max_map_size
            ),
            EvalAltResult::ErrorStackOverflow(_) => format!(
                "calls nested more than {} deep (endless recursion?)",
                l.max_call_levels
            ),
            EvalAltResult::ErrorModuleNotFound(m, _) => format!(
                "cannot import `{m}`: sl-draw scripts cannot load modules (put the code in the script)"
            ),
            EvalAltResult::ErrorRuntime(d, _) if d.is_string() => d.to_string(),
            other => without_position(&other.to_string()),
        };
        if !chain.is_empty() {
            msg.push_str(&format!(" (in fn {})", chain.join(" → ")));
        }
        self.error_at(pos, msg, false)
    }

    /// Call `f` with the sandbox deadline set, catching panics from host functions.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Drawer) -> Result<T, Box<EvalAltResult>>,
    ) -> Result<T, ScriptError> {
        self.deadline
            .set(Some(Instant::now() + self.limits.time_limit));
        self.mem_base.set(memory::thread_net_bytes());
        let r = catch_unwind(AssertUnwindSafe(|| f(self)));
        self.deadline.set(None);
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.runtime_error(&e)),
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(self.error_at(
                    Position::NONE,
                    format!("internal error in a drawing function (please report it): {what}"),
                    false,
                ))
            }
        }
    }

    /// Run the script for one frame and draw what it records onto `pm` (premultiplied RGBA
    /// of `fc.width` x `fc.height`). On error `pm` is left untouched.
    pub fn draw(
        &mut self,
        fc: &FrameContext<'_>,
        pm: &mut PixmapMut<'_>,
    ) -> Result<FrameTiming, ScriptError> {
        let script = self.record(fc)?;
        let render = self.render(pm)?;
        Ok(FrameTiming { script, render })
    }

    /// Run the script for one frame (`init` first when due), recording what it draws.
    /// Returns the time the call took. On error nothing stays recorded.
    pub fn record(&mut self, fc: &FrameContext<'_>) -> Result<Duration, ScriptError> {
        let t0 = Instant::now();
        let r = self.record_inner(fc);
        if r.is_err() {
            self.canvas.0.borrow_mut().ops.clear();
        }
        r.map(|()| t0.elapsed())
    }

    /// Keep the script's state within the memory limit: state that grew past it (across
    /// calls, each within its own limit) is dropped, and `init` runs again.
    fn check_state(&mut self) -> Result<(), ScriptError> {
        let max = self.limits.max_memory;
        if max == 0 {
            return Ok(());
        }
        let mut visits = 0usize;
        let bytes = data_bytes(&self.this, 0, &mut visits);
        if bytes <= max {
            return Ok(());
        }
        self.this = Dynamic::from_map(Map::new());
        self.needs_init = true;
        Err(self.error_at(
            Position::NONE,
            format!(
                "the script keeps more than {} MB in `this` (map keys count too): its state was cleared and init runs again; keep less, or raise --max-memory",
                max >> 20
            ),
            false,
        ))
    }

    fn record_inner(&mut self, fc: &FrameContext<'_>) -> Result<(), ScriptError> {
        let r = self.record_calls(fc);
        let state = self.check_state();
        r.and(state)
    }

    fn record_calls(&mut self, fc: &FrameContext<'_>) -> Result<(), ScriptError> {
        let ctx = self.ctx_map(fc);
        self.canvas.0.borrow_mut().reset(fc.width, fc.height);
        if self.needs_init && self.has_init() {
            let ctx = ctx.clone();
            let _: Dynamic = self.guarded(|d| {
                let opts = CallFnOptions::new()
                    .eval_ast(false)
                    .bind_this_ptr(&mut d.this);
                d.engine.call_fn_with_options::<Dynamic>(
                    opts,
                    &mut Scope::new(),
                    &d.ast,
                    "init",
                    (ctx,),
                )
            })?;
        }
        self.needs_init = false;
        let canvas = self.canvas.clone();
        let _: Dynamic = self.guarded(|d| {
            let opts = CallFnOptions::new()
                .eval_ast(false)
                .bind_this_ptr(&mut d.this);
            d.engine.call_fn_with_options::<Dynamic>(
                opts,
                &mut Scope::new(),
                &d.ast,
                "draw",
                (canvas, ctx),
            )
        })?;
        Ok(())
    }

    /// Whether the last [`Drawer::record`] recorded anything to draw.
    pub fn has_drawing(&self) -> bool {
        !self.canvas.0.borrow().ops.is_empty()
    }

    /// Draw what the last [`Drawer::record`] recorded onto `pm`; returns the time it took.
    pub fn render(&mut self, pm: &mut PixmapMut<'_>) -> Result<Duration, ScriptError> {
        let t0 = Instant::now();
        self.render_from(pm, 0, t0)
    }

    /// Draw what the last [`Drawer::record`] recorded onto `frame` (overlay mode), returning
    /// the time it took. The region effects (`pixelate`, `blur`) recorded before anything
    /// else are applied to the frame's own planes, in its own pixel format: an I420 frame
    /// that is only pixelated is neither converted nor changed outside the regions. Whatever
    /// follows is drawn through a premultiplied RGBA view ([`pixels::draw_on`]).
    pub fn render_frame(
        &mut self,
        frame: &mut VideoFrame,
        opaque: Option<bool>,
    ) -> Result<Duration, ScriptError> {
        let t0 = Instant::now();
        let (w, h) = (frame.width(), frame.height());
        // see-through RGBA/BGRA is blurred premultiplied (straight alpha would bleed the
        // colour of invisible pixels), so only opaque packed frames are worked on in place
        let rgba = matches!(frame.format(), PixelFormat::Rgba | PixelFormat::Bgra);
        let opaque = if rgba && frame.is_packed() {
            Some(opaque.unwrap_or_else(|| pixels::is_opaque(frame.data())))
        } else {
            opaque
        };
        let in_place = !rgba || opaque == Some(true);
        let mut done = 0;
        if in_place {
            let rec = self.canvas.0.borrow();
            let renderer = &mut self.renderer;
            let deadline = t0 + self.limits.time_limit;
            let r = catch_unwind(AssertUnwindSafe(|| {
                for op in &rec.ops {
                    let Op::Effect { region, effect } = op else {
                        break;
                    };
                    if done % 16 == 15 && Instant::now() > deadline {
                        return Err(done);
                    }
                    renderer.apply_effect(frame, *region, *effect);
                    done += 1;
                }
                Ok(())
            }));
            let total = rec.ops.len();
            drop(rec);
            match r {
                Ok(Ok(())) => {}
                Ok(Err(drawn)) => return Err(self.overrun(Overrun { drawn, total })),
                Err(_) => return Err(self.render_panic()),
            }
            if done == total {
                return Ok(t0.elapsed());
            }
        }
        match pixels::draw_on(frame, opaque, |pm| {
            debug_assert_eq!((pm.width(), pm.height()), (w, h));
            Some(self.render_from(pm, done, t0))
        }) {
            Some(r) => r,
            None => Ok(t0.elapsed()),
        }
    }

    fn render_from(
        &mut self,
        pm: &mut PixmapMut<'_>,
        first: usize,
        t0: Instant,
    ) -> Result<Duration, ScriptError> {
        let rec = self.canvas.0.borrow();
        let (renderer, assets) = (&mut self.renderer, &self.assets);
        let deadline = Some(t0 + self.limits.time_limit);
        let r = catch_unwind(AssertUnwindSafe(|| {
            renderer
                .render(&rec.ops[first..], assets, pm, deadline)
                .map_err(|o| Overrun {
                    drawn: o.drawn + first,
                    total: o.total + first,
                })
        }));
        drop(rec);
        match r {
            Ok(Ok(())) => Ok(t0.elapsed()),
            Ok(Err(o)) => Err(self.overrun(o)),
            Err(_) => Err(self.render_panic()),
        }
    }

    fn overrun(&self, o: Overrun) -> ScriptError {
        self.error_at(
            Position::NONE,
            format!(
                "rasterising took longer than {} ms: {} of {} drawing operations were skipped, so this frame is partly drawn; draw less, or raise --time-limit",
                self.limits.time_limit.as_millis(),
                o.total - o.drawn,
                o.total
            ),
            false,
        )
    }

    fn render_panic(&self) -> ScriptError {
        self.error_at(
            Position::NONE,
            "internal error while rasterising (please report it); the frame may be partly drawn"
                .into(),
            false,
        )
    }
}

/// Bytes a script value holds, map keys included (Rhai's own size limits leave keys out),
/// with a fixed overhead per value. Stops counting after a million values.
fn data_bytes(d: &Dynamic, depth: usize, visits: &mut usize) -> usize {
    *visits += 1;
    if depth > 64 || *visits > 1_000_000 {
        return 0;
    }
    if let Some(m) = d.read_lock::<Map>() {
        return m
            .iter()
            .map(|(k, v)| 32 + k.len() + data_bytes(v, depth + 1, visits))
            .sum();
    }
    if let Some(a) = d.read_lock::<Array>() {
        return a
            .iter()
            .map(|v| 16 + data_bytes(v, depth + 1, visits))
            .sum();
    }
    if let Some(b) = d.read_lock::<rhai::Blob>() {
        return b.len();
    }
    if let Some(s) = d.read_lock::<rhai::ImmutableString>() {
        return s.len();
    }
    16
}

fn box_map(b: &sl_frame::BBox) -> Dynamic {
    let mut m = Map::new();
    m.insert("x".into(), (b.x as f64).into());
    m.insert("y".into(), (b.y as f64).into());
    m.insert("w".into(), (b.w as f64).into());
    m.insert("h".into(), (b.h as f64).into());
    m.insert("score".into(), (b.score as f64).into());
    m.insert("class_id".into(), (b.class_id as i64).into());
    m.insert("label".into(), b.label.clone().into());
    m.into()
}

/// A JSON value as a script value (numbers stay numbers).
pub fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value as J;
    match v {
        J::Null => Dynamic::UNIT,
        J::Bool(b) => (*b).into(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(0.0).into(),
        },
        J::String(s) => s.clone().into(),
        J::Array(a) => a.iter().map(json_to_dynamic).collect::<Array>().into(),
        J::Object(o) => o
            .iter()
            .map(|(k, v)| (k.into(), json_to_dynamic(v)))
            .collect::<Map>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str, src: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sl-draw-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, src).unwrap();
        p
    }

    fn ctx() -> FrameContext<'static> {
        FrameContext {
            frame_number: 0,
            time: 0.0,
            width: 8,
            height: 8,
            fps: 30.0,
            info: None,
        }
    }

    #[test]
    fn a_panic_in_a_host_function_leaves_the_frame_untouched() {
        let p = script(
            "panic.rhai",
            "fn draw(canvas, ctx) { canvas.clear(\"white\"); boom(); }",
        );
        let mut d = Drawer::new(&p, Limits::default()).unwrap();
        d.engine_mut()
            .register_fn("boom", || -> i64 { panic!("host bug") });
        let mut px = vec![7u8; 8 * 8 * 4];
        let mut pm = PixmapMut::from_bytes(&mut px, 8, 8).unwrap();
        let e = d.draw(&ctx(), &mut pm).unwrap_err();
        assert!(e.message.contains("host bug"), "{e}");
        assert!(px.iter().all(|b| *b == 7));
    }

    #[test]
    fn state_persists_in_this_and_errors_have_positions() {
        let p = script(
            "count.rhai",
            "fn init(ctx) { this.n = 0; }\nfn draw(canvas, ctx) {\n  this.n += 1;\n  if this.n == 3 { throw \"third\"; }\n}",
        );
        let mut d = Drawer::new(&p, Limits::default()).unwrap();
        let mut px = vec![0u8; 8 * 8 * 4];
        let mut pm = PixmapMut::from_bytes(&mut px, 8, 8).unwrap();
        assert!(d.draw(&ctx(), &mut pm).is_ok());
        assert!(d.draw(&ctx(), &mut pm).is_ok());
        let e = d.draw(&ctx(), &mut pm).unwrap_err();
        assert!(e.location.ends_with("count.rhai:4:20"), "{e}");
        assert!(e.message.contains("third"), "{e}");
    }
}
