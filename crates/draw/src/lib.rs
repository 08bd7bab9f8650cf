//! Scripted drawing for streamlib's `sl-draw`: a sandboxed Rhai script draws shapes, text
//! and images on each frame (or makes frames), rasterised with tiny-skia and fontdue.
//!
//! - [`script::Drawer`] owns the engine and the compiled script: it builds each frame's `ctx`,
//!   calls `init`/`draw` within the sandbox limits, hot-reloads the file and renders.
//! - [`record`]: the `canvas` records operations during the script call; [`render`] replays
//!   them afterwards, so a failing script leaves its frame untouched.
//! - [`api`]: every function scripts can call (documented in `docs/sl-draw.md`).
//! - [`assets`]: fonts (DejaVu built in) and images, confined to the script's folder.
//! - [`pixels`]: frames of any pixel format as premultiplied RGBA pixmaps.
//! - [`effects`]: `pixelate` and `blur` of a region, on a pixmap or on a frame's own planes.
//! - [`vars`], [`control`]: `--set key=value` and the control socket/FIFO.
//! - [`memory`]: the allocation counter that bounds a script's memory.

pub mod api;
pub mod assets;
pub mod control;
pub mod effects;
pub mod memory;
pub mod paint;
pub mod pixels;
pub mod record;
pub mod render;
pub mod script;
pub mod text;
pub mod vars;

pub use control::Control;
pub use script::{Drawer, FrameContext, FrameTiming, Limits, ScriptError};
