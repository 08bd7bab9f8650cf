//! A camera that is not there: frames in any raw layout, a driver clock, and failures on cue
//! (busy at open, unplugged after N frames, a short buffer). Used by the tests, and by
//! `sl-cam --fake` (hidden) so the real binary's paths can be exercised without hardware.
//!
//! Its picture: the left half bright, the right half dark, and a bright square on the dark
//! side that moves down one row per frame, so a viewer can see frames change.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sl_frame::now_ns;

use crate::decode::RawFrame;
use crate::mode::{FourCc, Mode};
use crate::{CamError, Camera};

#[derive(Debug, Clone)]
pub struct FakeCamera {
    modes: Vec<Mode>,
    mode: Option<Mode>,
    realtime: bool,
    fail_after: Option<u64>,
    short_frame_at: Option<u64>,
    busy: bool,
    n: u64,
    clock_start_ns: i64,
    started: Option<Instant>,
}

impl FakeCamera {
    pub fn new(modes: Vec<Mode>) -> FakeCamera {
        FakeCamera {
            modes,
            mode: None,
            realtime: false,
            fail_after: None,
            short_frame_at: None,
            busy: false,
            n: 0,
            clock_start_ns: 0,
            started: None,
        }
    }

    /// Deliver frames at the mode's rate, like a real camera (default: at once).
    pub fn realtime(mut self) -> Self {
        self.realtime = true;
        self
    }

    /// Act unplugged after `n` frames.
    pub fn fail_after(mut self, n: u64) -> Self {
        self.fail_after = Some(n);
        self
    }

    /// Deliver a truncated buffer as frame `n`.
    pub fn short_frame_at(mut self, n: u64) -> Self {
        self.short_frame_at = Some(n);
        self
    }

    /// Be in use by another program.
    pub fn busy(mut self) -> Self {
        self.busy = true;
        self
    }

    fn picture(&self, m: Mode) -> Vec<u8> {
        let (w, h) = (m.width as usize, m.height as usize);
        let sq = (h / 8).max(1);
        let sq_y = (self.n as usize) % h.max(1);
        let bright = |x: usize, y: usize| {
            x < w / 2 || (x >= w * 3 / 4 && x < w * 3 / 4 + sq && y >= sq_y && y < sq_y + sq)
        };
        match m.fourcc {
            FourCc::Yuyv => {
                let stride = w.div_ceil(2) * 4;
                let mut v = vec![128u8; stride * h];
                for y in 0..h {
                    for x in 0..w {
                        v[y * stride + (x / 2) * 4 + (x % 2) * 2] =
                            if bright(x, y) { 235 } else { 16 };
                    }
                }
                v
            }
            FourCc::Nv12 => {
                let mut v = vec![128u8; FourCc::Nv12.frame_size(m.width, m.height).unwrap()];
                for y in 0..h {
                    for x in 0..w {
                        v[y * w + x] = if bright(x, y) { 235 } else { 16 };
                    }
                }
                v
            }
            FourCc::Gray => (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| if bright(x, y) { 255 } else { 0 })
                .collect(),
            FourCc::Rgb24 | FourCc::Bgr24 => (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .flat_map(|(x, y)| [if bright(x, y) { 255 } else { 0 }; 3])
                .collect(),
            FourCc::Mjpeg => unreachable!("refused in start()"),
        }
    }
}

impl Camera for FakeCamera {
    fn describe(&self) -> String {
        "fake (a test camera)".to_string()
    }

    fn modes(&mut self) -> Result<Vec<Mode>, CamError> {
        Ok(self.modes.clone())
    }

    fn start(&mut self, mode: Mode) -> Result<Mode, CamError> {
        if self.busy {
            return Err(CamError::Busy {
                device: self.describe(),
                path: "/dev/null".into(),
                why: "Device or resource busy".into(),
            });
        }
        if mode.fourcc == FourCc::Mjpeg {
            return Err(CamError::SetMode {
                device: self.describe(),
                mode: mode.to_string(),
                why: "the fake camera cannot make JPEGs".into(),
            });
        }
        self.mode = Some(mode);
        self.n = 0;
        self.clock_start_ns = now_ns();
        self.started = Some(Instant::now());
        Ok(mode)
    }

    fn frame(&mut self) -> Result<RawFrame, CamError> {
        let m = self.mode.ok_or_else(|| CamError::Lost {
            device: self.describe(),
            frames: 0,
            why: "not started".into(),
        })?;
        if self.fail_after.is_some_and(|k| self.n >= k) {
            return Err(CamError::Lost {
                device: self.describe(),
                frames: self.n,
                why: "No such device (os error 19)".into(),
            });
        }
        let offset = Duration::from_secs_f64(self.n as f64 / m.fps.max(1) as f64);
        if self.realtime
            && let Some(t0) = self.started
        {
            let due = t0 + offset;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let mut data = self.picture(m);
        if self.short_frame_at == Some(self.n) {
            data.truncate(data.len() / 2);
        }
        let frame = RawFrame {
            fourcc: m.fourcc,
            width: m.width,
            height: m.height,
            data,
            timestamp_ns: Some(self.clock_start_ns + offset.as_nanos() as i64),
        };
        self.n += 1;
        Ok(frame)
    }
}

/// A fake camera described on the command line: modes separated by commas, each
/// `LAYOUT:WxH@FPS` (`yuyv:640x480@30,nv12:1280x720@30`), then optional `;fail-after=N`,
/// `;busy`, `;short-frame-at=N`.
#[derive(Debug, Clone)]
pub struct FakeSpec(pub FakeCamera);

impl FromStr for FakeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(';');
        let mut modes = Vec::new();
        for m in parts
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|m| !m.is_empty())
        {
            let bad =
                || format!("`{m}` is not a fake mode: use LAYOUT:WxH@FPS, e.g. yuyv:640x480@30");
            let (fourcc, rest) = m.split_once(':').ok_or_else(bad)?;
            let fourcc: FourCc = fourcc.parse()?;
            if fourcc == FourCc::Mjpeg {
                return Err("the fake camera cannot make MJPEG".into());
            }
            let (size, fps) = rest.split_once('@').ok_or_else(bad)?;
            let (w, h) = size.split_once('x').ok_or_else(bad)?;
            let p = |v: &str| v.parse::<u32>().ok().filter(|&v| v > 0).ok_or_else(bad);
            modes.push(Mode {
                fourcc,
                width: p(w)?,
                height: p(h)?,
                fps: p(fps)?,
            });
        }
        let mut cam = FakeCamera::new(modes).realtime();
        for opt in parts {
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("`{opt}`: not a number"))
            };
            match opt.split_once('=') {
                Some(("fail-after", v)) => cam = cam.fail_after(num(v)?),
                Some(("short-frame-at", v)) => cam = cam.short_frame_at(num(v)?),
                None if opt == "busy" => cam = cam.busy(),
                None if opt == "fast" => cam.realtime = false,
                _ => return Err(format!("unknown fake camera option `{opt}`")),
            }
        }
        Ok(FakeSpec(cam))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let FakeSpec(c) = "yuyv:640x480@30,nv12:1280x720@60;fail-after=5"
            .parse()
            .unwrap();
        assert_eq!(c.modes.len(), 2);
        assert_eq!(c.modes[1].fps, 60);
        assert_eq!(c.fail_after, Some(5));
        assert!(c.realtime);
        assert!("mjpeg:640x480@30".parse::<FakeSpec>().is_err());
        assert!("yuyv:640x480".parse::<FakeSpec>().is_err());
        assert!("yuyv:640x480@30;explode".parse::<FakeSpec>().is_err());
    }

    #[test]
    fn realtime_paces_frames() {
        let mut c = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Gray,
            width: 4,
            height: 4,
            fps: 50,
        }])
        .realtime();
        c.start(c.modes[0]).unwrap();
        let t = Instant::now();
        for _ in 0..5 {
            c.frame().unwrap();
        }
        // 5 frames at 50 fps: the 5th is due 80 ms after the first
        assert!(t.elapsed() >= Duration::from_millis(75));
    }
}
