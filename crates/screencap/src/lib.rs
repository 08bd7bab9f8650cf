//! Screen capture for `sl-screen`, on xcap: a monitor, a region of one, or a window.
//!
//! - [`list`] describes monitors and windows (windows are listed only under a window manager
//!   that keeps `_NET_CLIENT_LIST_STACKING`, which is how xcap finds them on X11).
//! - [`Source::open`] resolves what to capture once, checking it up front (an unknown
//!   monitor, window or an out-of-bounds region is an error naming what exists).
//! - [`Source::grab`] takes one RGBA frame. A failure says whether the target is gone (a
//!   closed window: the natural end of that source) or the capture broke (display gone).
//!
//! xcap on X11 opens a new connection for every grab and draws no cursor; [`cursor`] draws it
//! from XFixes (on by default, [`Source::set_cursor`]).

pub mod cursor;

use std::fmt;
use std::str::FromStr;

use sl_frame::{PixelFormat, VideoFrame};
use xcap::{Monitor, Window};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    #[error(
        "no display: neither DISPLAY nor WAYLAND_DISPLAY is set. Run sl-screen in a desktop \
         session or set DISPLAY (e.g. DISPLAY=:0); on a headless machine start `Xvfb :99` and \
         set DISPLAY=:99"
    )]
    NoDisplay,
    #[error(
        "cannot talk to the display ({display}): {why}. Is the X server running, and may this user connect (xhost, XAUTHORITY)?"
    )]
    Display { display: String, why: String },
    #[error("no monitor matches `{wanted}`; monitors: {found}. `sl-screen --list` shows them")]
    NoMonitor { wanted: String, found: String },
    #[error("the display reports no monitors")]
    NoMonitors,
    #[error("no window matches `{wanted}`; windows: {found}. `sl-screen --list` shows them")]
    NoWindow { wanted: String, found: String },
    #[error(
        "no window matches `{wanted}`: no window manager is running, and windows are found \
         through it. Start one (openbox, say), or capture the screen or a --region instead"
    )]
    NoWindowManager { wanted: String },
    #[error("region {region} is outside {monitor} ({w}x{h})")]
    Region {
        region: Region,
        monitor: String,
        w: u32,
        h: u32,
    },
    #[error("{what} was closed")]
    WindowGone { what: String },
    #[error("capturing {what} failed: {why}")]
    Capture { what: String, why: String },
}

impl ScreenError {
    /// Whether the target is simply gone (a closed window): the end of the source, not a
    /// failure.
    pub fn is_gone(&self) -> bool {
        matches!(self, ScreenError::WindowGone { .. })
    }
}

fn display_name() -> String {
    match (std::env::var("DISPLAY"), std::env::var("WAYLAND_DISPLAY")) {
        (Ok(d), _) if !d.is_empty() => format!("DISPLAY={d}"),
        (_, Ok(w)) if !w.is_empty() => format!("WAYLAND_DISPLAY={w}"),
        _ => "no display set".into(),
    }
}

/// Fail with [`ScreenError::NoDisplay`] unless a display is set.
pub fn check_display() -> Result<(), ScreenError> {
    let set = |k| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if set("DISPLAY") || set("WAYLAND_DISPLAY") {
        Ok(())
    } else {
        Err(ScreenError::NoDisplay)
    }
}

fn display_err(e: xcap::XCapError) -> ScreenError {
    ScreenError::Display {
        display: display_name(),
        why: e.to_string(),
    }
}

/// A rectangle `X,Y,W,H` in a monitor's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a region: use X,Y,WIDTH,HEIGHT, e.g. 0,0,640,480");
        let v: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        match v[..] {
            [x, y, w, h] if w > 0 && h > 0 => Ok(Region { x, y, w, h }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

/// One monitor, as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorInfo {
    pub id: u32,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub primary: bool,
}

/// One window, as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowInfo {
    pub id: u32,
    pub title: String,
    pub app: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub minimized: bool,
}

fn monitor_info(m: &Monitor) -> Result<MonitorInfo, xcap::XCapError> {
    Ok(MonitorInfo {
        id: m.id()?,
        name: m.name()?,
        x: m.x()?,
        y: m.y()?,
        width: m.width()?,
        height: m.height()?,
        primary: m.is_primary().unwrap_or(false),
    })
}

/// A window's title: xcap's (`_NET_WM_NAME`, or `WM_NAME` typed COMPOUND_TEXT), else the
/// plain `WM_NAME` of any type. Programs that set only a STRING `WM_NAME` (ImageMagick's
/// `display`, xterm without a UTF-8 title) have no title for xcap alone.
fn title(w: &Window) -> String {
    let t = w.title().unwrap_or_default();
    if !t.is_empty() {
        return t;
    }
    w.id().ok().and_then(x11_names::wm_name).unwrap_or_default()
}

/// Titles and the window manager, asked of the X server directly.
mod x11_names {
    use xcb::{Connection, XidNew, x};

    fn connect() -> Option<Connection> {
        Connection::connect(None).ok().map(|(c, _)| c)
    }

    fn atom(conn: &Connection, name: &[u8]) -> Option<x::Atom> {
        let cookie = conn.send_request(&x::InternAtom {
            only_if_exists: true,
            name,
        });
        let a = conn.wait_for_reply(cookie).ok()?.atom();
        (a != x::ATOM_NONE).then_some(a)
    }

    fn property(conn: &Connection, window: x::Window, property: x::Atom) -> Option<Vec<u8>> {
        let cookie = conn.send_request(&x::GetProperty {
            delete: false,
            window,
            property,
            r#type: x::ATOM_ANY,
            long_offset: 0,
            long_length: 1024,
        });
        let r = conn.wait_for_reply(cookie).ok()?;
        // xcb asserts the element size matches the property's format: read it as it is
        let v: Vec<u8> = match r.format() {
            8 => r.value::<u8>().to_vec(),
            16 => r
                .value::<u16>()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            32 => r
                .value::<u32>()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
            _ => Vec::new(),
        };
        (!v.is_empty()).then_some(v)
    }

    /// `_NET_WM_NAME` or `WM_NAME` of window `id`, whatever their type.
    pub fn wm_name(id: u32) -> Option<String> {
        let conn = connect()?;
        // an id the server gave xcap; a stale one only makes the requests fail
        let window = x::Window::new(id);
        let net = atom(&conn, b"_NET_WM_NAME");
        for prop in net.into_iter().chain([x::ATOM_WM_NAME]) {
            if let Some(v) = property(&conn, window, prop) {
                let t = String::from_utf8_lossy(&v)
                    .trim_end_matches('\0')
                    .to_string();
                if !t.is_empty() {
                    return Some(t);
                }
            }
        }
        None
    }

    /// Whether an EWMH window manager runs (it sets `_NET_SUPPORTING_WM_CHECK` on the root).
    pub fn window_manager_runs() -> bool {
        let Some(conn) = connect() else { return false };
        let Some(root) = conn.get_setup().roots().next().map(|s| s.root()) else {
            return false;
        };
        let Some(check) = atom(&conn, b"_NET_SUPPORTING_WM_CHECK") else {
            return false;
        };
        property(&conn, root, check).is_some_and(|v| v.len() >= 4)
    }
}

fn window_info(w: &Window) -> Result<WindowInfo, xcap::XCapError> {
    Ok(WindowInfo {
        id: w.id()?,
        title: title(w),
        app: w.app_name().unwrap_or_default(),
        x: w.x()?,
        y: w.y()?,
        width: w.width()?,
        height: w.height()?,
        minimized: w.is_minimized().unwrap_or(false),
    })
}

/// Every monitor and window.
pub fn list() -> Result<(Vec<MonitorInfo>, Vec<WindowInfo>), ScreenError> {
    check_display()?;
    let monitors = Monitor::all()
        .map_err(display_err)?
        .iter()
        .map(monitor_info)
        .collect::<Result<Vec<_>, _>>()
        .map_err(display_err)?;
    // windows that vanish while being listed are skipped
    let windows = all_windows()?
        .iter()
        .filter_map(|w| window_info(w).ok())
        .collect();
    Ok((monitors, windows))
}

/// Every window the window manager knows. Without a window manager (a bare Xvfb) xcap
/// cannot list windows (`_NET_CLIENT_LIST_STACKING` is missing): that is no windows, not an
/// error.
fn all_windows() -> Result<Vec<Window>, ScreenError> {
    match Window::all() {
        Ok(w) => Ok(w),
        Err(e) if e.to_string().contains("_NET_CLIENT_LIST") => {
            log::debug!("no window manager: {e}");
            Ok(Vec::new())
        }
        Err(e) => Err(display_err(e)),
    }
}

/// What to capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A monitor by id or name (None: the primary, or the first), optionally a region of it.
    Monitor {
        wanted: Option<String>,
        region: Option<Region>,
    },
    /// A window by id (decimal or 0x hex) or part of its title.
    Window(String),
}

enum Grabber {
    Monitor(Monitor, Option<Region>),
    Window(Window),
}

/// An opened capture target.
pub struct Source {
    grabber: Grabber,
    what: String,
    /// Screen position of a monitor capture's top-left pixel (windows are asked each grab).
    origin: (i32, i32),
    cursor: Option<cursor::CursorSource>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("what", &self.what).finish()
    }
}

fn parse_id(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Source {
    pub fn open(target: &Target) -> Result<Source, ScreenError> {
        check_display()?;
        match target {
            Target::Monitor { wanted, region } => {
                let monitors = Monitor::all().map_err(display_err)?;
                let infos: Vec<MonitorInfo> = monitors
                    .iter()
                    .map(monitor_info)
                    .collect::<Result<_, _>>()
                    .map_err(display_err)?;
                let i = match wanted {
                    None => infos
                        .iter()
                        .position(|m| m.primary)
                        .or(if infos.is_empty() { None } else { Some(0) })
                        .ok_or(ScreenError::NoMonitors)?,
                    Some(w) => {
                        let id = parse_id(w);
                        infos
                            .iter()
                            .position(|m| Some(m.id) == id || m.name.eq_ignore_ascii_case(w))
                            .ok_or_else(|| ScreenError::NoMonitor {
                                wanted: w.clone(),
                                found: infos
                                    .iter()
                                    .map(|m| format!("{} {}", m.id, m.name))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            })?
                    }
                };
                let info = &infos[i];
                let mut what = format!("monitor {} ({})", info.id, info.name);
                if let Some(r) = region {
                    if r.x.checked_add(r.w).is_none_or(|e| e > info.width)
                        || r.y.checked_add(r.h).is_none_or(|e| e > info.height)
                    {
                        return Err(ScreenError::Region {
                            region: *r,
                            monitor: what,
                            w: info.width,
                            h: info.height,
                        });
                    }
                    what = format!("region {r} of {what}");
                }
                let origin = match region {
                    Some(r) => (info.x + r.x as i32, info.y + r.y as i32),
                    None => (info.x, info.y),
                };
                Ok(Source {
                    grabber: Grabber::Monitor(monitors.into_iter().nth(i).expect("index"), *region),
                    what,
                    origin,
                    cursor: None,
                })
            }
            Target::Window(w) => {
                let windows = all_windows()?;
                let id = parse_id(w);
                let lower = w.to_lowercase();
                let found = windows
                    .iter()
                    .position(|win| win.id().ok() == id)
                    .or_else(|| {
                        windows
                            .iter()
                            .position(|win| title(win).to_lowercase().contains(&lower))
                    });
                let Some(i) = found else {
                    if windows.is_empty() && !x11_names::window_manager_runs() {
                        return Err(ScreenError::NoWindowManager { wanted: w.clone() });
                    }
                    return Err(ScreenError::NoWindow {
                        wanted: w.clone(),
                        found: if windows.is_empty() {
                            "none".into()
                        } else {
                            windows
                                .iter()
                                .filter_map(|w| window_info(w).ok())
                                .map(|w| format!("{:#x} \"{}\"", w.id, w.title))
                                .collect::<Vec<_>>()
                                .join(", ")
                        },
                    });
                };
                let win = windows.into_iter().nth(i).expect("index");
                let what = format!("window {:#x} \"{}\"", win.id().unwrap_or(0), title(&win));
                Ok(Source {
                    grabber: Grabber::Window(win),
                    what,
                    origin: (0, 0),
                    cursor: None,
                })
            }
        }
    }

    /// What is captured, for messages and the default source id.
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// Draw the mouse cursor into frames (X11 with XFixes only). Returns whether it can.
    pub fn set_cursor(&mut self, on: bool) -> bool {
        self.cursor = if on {
            cursor::CursorSource::connect()
        } else {
            None
        };
        self.cursor.is_some()
    }

    /// Grab one frame (RGBA), with the cursor if [`Source::set_cursor`] turned it on.
    pub fn grab(&mut self) -> Result<VideoFrame, ScreenError> {
        let mut frame = self.grab_image()?;
        if let Some(c) = self.cursor.as_mut().and_then(|cs| cs.current()) {
            let origin = match &self.grabber {
                Grabber::Window(w) => match (w.x(), w.y()) {
                    (Ok(x), Ok(y)) => Some((x, y)),
                    _ => None,
                },
                Grabber::Monitor(..) => Some(self.origin),
            };
            if let Some(o) = origin {
                cursor::draw(&mut frame, &c, o);
            }
        }
        Ok(frame)
    }

    fn grab_image(&mut self) -> Result<VideoFrame, ScreenError> {
        let img = match &self.grabber {
            Grabber::Monitor(m, None) => m.capture_image(),
            Grabber::Monitor(m, Some(r)) => m.capture_region(r.x, r.y, r.w, r.h),
            Grabber::Window(w) => w.capture_image(),
        };
        let img = match img {
            Ok(i) => i,
            Err(e) => return Err(self.classify(e)),
        };
        let (w, h) = img.dimensions();
        VideoFrame::from_packed(PixelFormat::Rgba, w, h, img.into_raw()).map_err(|e| {
            ScreenError::Capture {
                what: self.what.clone(),
                why: e.to_string(),
            }
        })
    }

    /// A failed grab: is the window gone, or did the capture break?
    fn classify(&self, e: xcap::XCapError) -> ScreenError {
        if let Grabber::Window(w) = &self.grabber {
            let id = w.id().ok();
            let still_there = Window::all()
                .map(|all| all.iter().any(|x| x.id().ok() == id))
                // cannot even list windows: the display is what failed
                .unwrap_or(true);
            if !still_there {
                return ScreenError::WindowGone {
                    what: self.what.clone(),
                };
            }
        }
        ScreenError::Capture {
            what: self.what.clone(),
            why: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_regions() {
        assert_eq!(
            "10,20,640,480".parse::<Region>().unwrap(),
            Region {
                x: 10,
                y: 20,
                w: 640,
                h: 480
            }
        );
        assert!("10,20,0,480".parse::<Region>().is_err());
        assert!("10,20,640".parse::<Region>().is_err());
        assert!("a,b,c,d".parse::<Region>().is_err());
    }

    #[test]
    fn parses_ids() {
        assert_eq!(parse_id("0x200021"), Some(0x200021));
        assert_eq!(parse_id("42"), Some(42));
        assert_eq!(parse_id("firefox"), None);
    }
}
