//! Capture modes (pixel layout, size, rate) and choosing the closest one to a request.

use std::fmt;
use std::str::FromStr;

/// How a camera delivers pixels (its V4L2 fourcc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FourCc {
    /// Motion JPEG: one JPEG per frame. Most USB cameras' only way to high sizes and rates.
    Mjpeg,
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// 4:2:0, a Y plane then interleaved U, V.
    Nv12,
    /// 8-bit luma.
    Gray,
    /// Packed R, G, B.
    Rgb24,
    /// Packed B, G, R.
    Bgr24,
}

pub const FOURCCS: [(&str, FourCc); 6] = [
    ("MJPEG", FourCc::Mjpeg),
    ("YUYV", FourCc::Yuyv),
    ("NV12", FourCc::Nv12),
    ("GRAY", FourCc::Gray),
    ("RGB24", FourCc::Rgb24),
    ("BGR24", FourCc::Bgr24),
];

impl FourCc {
    pub fn name(self) -> &'static str {
        FOURCCS
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    /// Bytes of one `width` x `height` frame, or None for compressed layouts.
    pub fn frame_size(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        match self {
            FourCc::Mjpeg => None,
            FourCc::Yuyv => Some(w.div_ceil(2) * 4 * h),
            FourCc::Nv12 => Some(w * h + w.div_ceil(2) * 2 * h.div_ceil(2)),
            FourCc::Gray => Some(w * h),
            FourCc::Rgb24 | FourCc::Bgr24 => Some(w * h * 3),
        }
    }

    /// Preference among layouts that give the same size and rate: uncompressed first (no
    /// decode cost, no artefacts), 4:2:0 before 4:2:2.
    fn rank(self) -> u8 {
        match self {
            FourCc::Nv12 => 0,
            FourCc::Yuyv => 1,
            FourCc::Rgb24 | FourCc::Bgr24 => 2,
            FourCc::Mjpeg => 3,
            FourCc::Gray => 4,
        }
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FourCc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let up = s.to_ascii_uppercase();
        let alias = match up.as_str() {
            "MJPG" | "JPEG" => "MJPEG",
            "YUY2" | "YUYV422" => "YUYV",
            "GREY" | "GRAY8" | "Y8" => "GRAY",
            "RGB" | "RGB3" => "RGB24",
            "BGR" | "BGR3" => "BGR24",
            other => other,
        };
        FOURCCS
            .iter()
            .find(|(n, _)| *n == alias)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let names: Vec<_> = FOURCCS.iter().map(|(n, _)| *n).collect();
                format!("unknown input format `{s}` (known: {})", names.join(", "))
            })
    }
}

/// One way a camera can capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    /// Frames per second (V4L2 cameras report whole rates through nokhwa).
    pub fps: u32,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {} fps",
            self.fourcc, self.width, self.height, self.fps
        )
    }
}

/// What the user asked for; anything left out is "whatever is best".
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Request {
    pub size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub fourcc: Option<FourCc>,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(c) = self.fourcc {
            parts.push(c.to_string());
        }
        if let Some((w, h)) = self.size {
            parts.push(format!("{w}x{h}"));
        }
        if let Some(r) = self.fps {
            parts.push(format!("@ {r} fps"));
        }
        if parts.is_empty() {
            f.write_str("the default")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// What [`choose`] picked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub mode: Mode,
    /// Whether it is exactly what was asked for (every given part matches).
    pub exact: bool,
}

/// The default when no size is asked for: 720p, what most cameras do well at 30 fps.
pub const DEFAULT_SIZE: (u32, u32) = (1280, 720);
/// The default when no rate is asked for.
pub const DEFAULT_FPS: f64 = 30.0;

/// Pick the mode closest to `req`, in this order of importance: the asked layout (if the
/// camera has it at all), the size (by how far width and height are off, relative to the
/// request), the rate, then the layout's rank (uncompressed before MJPEG).
pub fn choose(modes: &[Mode], req: &Request) -> Option<Choice> {
    let (tw, th) = req.size.unwrap_or(DEFAULT_SIZE);
    let tf = req.fps.unwrap_or(DEFAULT_FPS);
    let has_fourcc = req
        .fourcc
        .is_some_and(|c| modes.iter().any(|m| m.fourcc == c));
    let score = |m: &Mode| {
        let fourcc_off = (has_fourcc && Some(m.fourcc) != req.fourcc) as u8;
        // relative size error, in thousandths
        let size_off = ((m.width as f64 - tw as f64).abs() / tw as f64
            + (m.height as f64 - th as f64).abs() / th as f64)
            * 1000.0;
        // a rate below the request is worse than one above it (frames can be dropped later,
        // not invented)
        let fps = m.fps as f64;
        let fps_off = if fps >= tf {
            (fps - tf) / tf
        } else {
            2.0 * (tf - fps) / tf
        } * 1000.0;
        (
            fourcc_off,
            size_off.round() as u64,
            fps_off.round() as u64,
            m.fourcc.rank(),
        )
    };
    let best = modes.iter().min_by_key(|m| score(m))?;
    let exact = req.fourcc.is_none_or(|c| c == best.fourcc)
        && req.size.is_none_or(|s| s == (best.width, best.height))
        && req.fps.is_none_or(|f| (f - best.fps as f64).abs() < 0.01);
    Some(Choice { mode: *best, exact })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(fourcc: FourCc, width: u32, height: u32, fps: u32) -> Mode {
        Mode {
            fourcc,
            width,
            height,
            fps,
        }
    }

    fn typical_webcam() -> Vec<Mode> {
        vec![
            m(FourCc::Yuyv, 640, 480, 30),
            m(FourCc::Yuyv, 1280, 720, 10),
            m(FourCc::Yuyv, 1920, 1080, 5),
            m(FourCc::Mjpeg, 640, 480, 30),
            m(FourCc::Mjpeg, 1280, 720, 30),
            m(FourCc::Mjpeg, 1920, 1080, 30),
        ]
    }

    #[test]
    fn parses_layouts_and_aliases() {
        assert_eq!("mjpg".parse::<FourCc>().unwrap(), FourCc::Mjpeg);
        assert_eq!("YUY2".parse::<FourCc>().unwrap(), FourCc::Yuyv);
        assert_eq!("nv12".parse::<FourCc>().unwrap(), FourCc::Nv12);
        assert!("h264".parse::<FourCc>().unwrap_err().contains("MJPEG"));
    }

    #[test]
    fn default_is_720p30_uncompressed_if_possible() {
        let c = choose(&typical_webcam(), &Request::default()).unwrap();
        // YUYV only does 10 fps at 720p: MJPEG wins on rate
        assert_eq!(c.mode, m(FourCc::Mjpeg, 1280, 720, 30));
        assert!(c.exact);
        let mut modes = typical_webcam();
        modes.push(m(FourCc::Yuyv, 1280, 720, 30));
        assert_eq!(
            choose(&modes, &Request::default()).unwrap().mode,
            m(FourCc::Yuyv, 1280, 720, 30)
        );
    }

    #[test]
    fn asked_layout_comes_first() {
        let req = Request {
            size: Some((1280, 720)),
            fps: Some(30.0),
            fourcc: Some(FourCc::Yuyv),
        };
        let c = choose(&typical_webcam(), &req).unwrap();
        assert_eq!(c.mode, m(FourCc::Yuyv, 1280, 720, 10));
        assert!(!c.exact);
    }

    #[test]
    fn missing_layout_falls_back_to_the_closest() {
        let req = Request {
            size: Some((640, 480)),
            fps: None,
            fourcc: Some(FourCc::Nv12),
        };
        let c = choose(&typical_webcam(), &req).unwrap();
        assert_eq!(c.mode, m(FourCc::Yuyv, 640, 480, 30));
        assert!(!c.exact);
    }

    #[test]
    fn closest_size_and_rate() {
        let req = Request {
            size: Some((1900, 1000)),
            fps: Some(25.0),
            fourcc: None,
        };
        let c = choose(&typical_webcam(), &req).unwrap();
        assert_eq!(c.mode, m(FourCc::Mjpeg, 1920, 1080, 30));
        assert!(!c.exact);
        assert_eq!(choose(&[], &req), None);
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(FourCc::Yuyv.frame_size(4, 2), Some(16));
        assert_eq!(FourCc::Nv12.frame_size(4, 2), Some(12));
        assert_eq!(FourCc::Mjpeg.frame_size(4, 2), None);
    }
}
