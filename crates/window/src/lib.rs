//! A window that shows streamlib frames, for `sl-show`.
//!
//! - [`Viewer`] owns a minifb window (X11; on Wayland desktops it runs under XWayland). Any
//!   pixel format is converted to BGRA, then placed with [`scale`] (fit or 1:1).
//! - [`check_display`] tells "no display at all" apart before a window is tried, so the user
//!   gets a message naming `DISPLAY`/`WAYLAND_DISPLAY` rather than an Xlib error.
//! - [`save_png`] writes a frame as an RGBA PNG.
//!
//! Nothing here panics on a missing or lost display: every failure is a [`WindowError`].

pub mod scale;

use std::path::Path;

use minifb::{Key, KeyRepeat, Window, WindowOptions};
use sl_frame::convert::convert;
use sl_frame::{PixelFormat, VideoFrame};

pub use scale::ScaleMode;

/// What can go wrong with a window.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error(
        "no display: neither DISPLAY nor WAYLAND_DISPLAY is set. Run sl-show in a desktop \
         session, set DISPLAY (e.g. DISPLAY=:0), or use `ssh -X`; for a headless machine, start \
         a virtual display with `Xvfb :99 &` and set DISPLAY=:99"
    )]
    NoDisplay,
    #[error(
        "cannot open a window on display {display} ({why}): is an X server running there and \
         may this user connect to it (xhost, XAUTHORITY)? Set DISPLAY (or WAYLAND_DISPLAY with \
         XWayland) to a display that works"
    )]
    Open { display: String, why: String },
    #[error("cannot update the window: {0}")]
    Update(String),
    #[error("cannot save {path}: {why}")]
    Save { path: String, why: String },
}

/// Fail with [`WindowError::NoDisplay`] unless `DISPLAY` or `WAYLAND_DISPLAY` is set.
pub fn check_display() -> Result<(), WindowError> {
    let set = |k| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") {
        Ok(())
    } else {
        Err(WindowError::NoDisplay)
    }
}

/// Something the user asked for with a key, or by closing the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// q, Esc or the window's close button.
    Quit,
    /// space
    TogglePause,
    /// f
    ToggleFit,
    /// s
    Save,
}

/// A window showing frames.
pub struct Viewer {
    window: Window,
    mode: ScaleMode,
    bgra: Option<VideoFrame>,
    buffer: Vec<u32>,
    size: (usize, usize),
    /// Actions seen by window updates not yet taken by [`Viewer::poll`]. Every update
    /// (drawing included) resets minifb's "pressed" state, so each one is harvested here.
    pending: Vec<Action>,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("mode", &self.mode)
            .field("size", &self.size)
            .finish()
    }
}

impl Viewer {
    /// Open a resizable window of `width` x `height` pixels.
    pub fn open(title: &str, width: usize, height: usize) -> Result<Viewer, WindowError> {
        check_display()?;
        let opts = WindowOptions {
            resize: true,
            ..WindowOptions::default()
        };
        let mut window = Window::new(title, width.max(1), height.max(1), opts).map_err(|e| {
            let display = match std::env::var("DISPLAY") {
                Ok(d) if !d.is_empty() => format!("`{d}`"),
                // Wayland only: the X11 window needs XWayland, which sets DISPLAY
                _ => "(DISPLAY is unset: on Wayland, sl-show needs XWayland)".into(),
            };
            WindowError::Open {
                display,
                why: e.to_string(),
            }
        })?;
        // Pacing is ours (by frame timestamps); minifb's own limiter would add up to 4 ms.
        window.set_target_fps(0);
        Ok(Viewer {
            window,
            mode: ScaleMode::Fit,
            bgra: None,
            buffer: Vec::new(),
            size: (width, height),
            pending: Vec::new(),
        })
    }

    pub fn mode(&self) -> ScaleMode {
        self.mode
    }

    pub fn set_mode(&mut self, mode: ScaleMode) {
        self.mode = mode;
    }

    pub fn set_title(&mut self, title: &str) {
        self.window.set_title(title);
    }

    /// Whether the window is still open (not closed by the user or the window manager).
    pub fn is_open(&self) -> bool {
        self.window.is_open()
    }

    /// Show `frame` (any pixel format), scaled to the window's current size.
    pub fn show(&mut self, frame: &VideoFrame) -> Result<(), WindowError> {
        let mut bgra = match self.bgra.take() {
            Some(b) if b.width() == frame.width() && b.height() == frame.height() => b,
            _ => VideoFrame::new(PixelFormat::Bgra, frame.width(), frame.height())
                .map_err(|e| WindowError::Update(e.to_string()))?,
        };
        // BGRA to BGRA is a row copy; the copy is kept for redraws after a resize
        convert(frame, &mut bgra).map_err(|e| WindowError::Update(e.to_string()))?;
        let r = self.draw(&bgra);
        self.bgra = Some(bgra);
        r
    }

    /// Draw the last shown frame again (after a resize or a mode change).
    pub fn redraw(&mut self) -> Result<(), WindowError> {
        match self.bgra.take() {
            Some(b) => {
                let r = self.draw(&b);
                self.bgra = Some(b);
                r
            }
            None => {
                self.window.update();
                self.collect();
                Ok(())
            }
        }
    }

    fn draw(&mut self, bgra: &VideoFrame) -> Result<(), WindowError> {
        let (w, h) = self.window.get_size();
        let (w, h) = (w.max(1), h.max(1));
        self.size = (w, h);
        scale::draw_bgra(
            bgra.data(),
            bgra.stride(0),
            bgra.width(),
            bgra.height(),
            self.mode,
            &mut self.buffer,
            w,
            h,
        );
        let r = self
            .window
            .update_with_buffer(&self.buffer, w, h)
            .map_err(|e| WindowError::Update(e.to_string()));
        self.collect();
        r
    }

    /// Process window events (without drawing) and return what the user asked for since
    /// the last call.
    pub fn poll(&mut self) -> Vec<Action> {
        self.window.update();
        self.collect();
        if self.window.get_size() != self.size {
            // a resize needs a redraw at the new size
            let _ = self.redraw();
        }
        std::mem::take(&mut self.pending)
    }

    /// Note what the user asked for in the update that just happened.
    fn collect(&mut self) {
        if !self.window.is_open() {
            if !self.pending.contains(&Action::Quit) {
                self.pending.push(Action::Quit);
            }
            return;
        }
        for key in self.window.get_keys_pressed(KeyRepeat::No) {
            self.pending.push(match key {
                Key::Q | Key::Escape => Action::Quit,
                Key::Space => Action::TogglePause,
                Key::F => Action::ToggleFit,
                Key::S => Action::Save,
                _ => continue,
            });
        }
    }
}

/// Save `frame` (any pixel format) as an 8-bit RGBA PNG.
pub fn save_png(frame: &VideoFrame, path: &Path) -> Result<(), WindowError> {
    let err = |why: String| WindowError::Save {
        path: path.display().to_string(),
        why,
    };
    let rgba = sl_frame::convert::to_format(frame, PixelFormat::Rgba).to_packed();
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), rgba.width(), rgba.height());
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| err(e.to_string()))?;
    w.write_image_data(rgba.data())
        .map_err(|e| err(e.to_string()))?;
    w.finish().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_a_png_of_any_format() {
        let dir = std::env::temp_dir().join(format!("sl-window-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = VideoFrame::new(PixelFormat::I420, 4, 2).unwrap();
        sl_frame::ops::fill(&mut f, [255, 0, 0, 255]);
        let path = dir.join("x.png");
        save_png(&f, &path).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (4, 2));
        assert!(buf[0] > 240 && buf[1] < 16 && buf[2] < 16 && buf[3] == 255);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_display_is_named() {
        let msg = WindowError::NoDisplay.to_string();
        assert!(msg.contains("DISPLAY") && msg.contains("WAYLAND_DISPLAY"));
    }
}
