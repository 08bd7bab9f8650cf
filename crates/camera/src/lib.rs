//! Cameras for `sl-cam`.
//!
//! A camera is anything that implements the small [`Camera`] trait: list its [`Mode`]s,
//! start one, hand over [`RawFrame`]s. [`v4l::V4lCamera`] is the real one (nokhwa's V4L2
//! backend); [`fake::FakeCamera`] makes frames in any raw layout, can fail on cue, and is how
//! the stage's logic is tested on machines without a camera (no v4l2loopback there).
//!
//! [`capture`] is the stage: choose the mode closest to the request ([`mode::choose`]),
//! decode each buffer ([`decode`]), convert to the asked wire format, stamp times (the
//! driver's capture time where it gives one), write, and on any failure end the output
//! stream cleanly before returning the error.

pub mod decode;
pub mod fake;
pub mod mode;
pub mod v4l;

use std::io::Write;

use sl_frame::convert::to_format;
use sl_frame::{PixelFormat, Rational, now_ns};
use sl_wire::{StreamInfo, WireError, Writer};

pub use decode::{DecodeError, Memory, RawFrame};
pub use mode::{Choice, FourCc, Mode, Request};

/// A source of camera frames.
pub trait Camera {
    /// A name for messages: the device and what it is (`/dev/video0 (HD Webcam)`).
    fn describe(&self) -> String;
    /// Every mode the camera offers.
    fn modes(&mut self) -> Result<Vec<Mode>, CamError>;
    /// Start capturing in `mode`; returns the mode the device actually set.
    fn start(&mut self, mode: Mode) -> Result<Mode, CamError>;
    /// The next frame, waiting for it.
    fn frame(&mut self) -> Result<RawFrame, CamError>;
}

/// What went wrong with a camera. Every message says which device, what happened and what
/// to try.
#[derive(Debug, thiserror::Error)]
pub enum CamError {
    #[error(
        "no camera found (no V4L2 capture device in /dev/video*): plug one in, check \
         `v4l2-ctl --list-devices`, and that this user may open it (the `video` group)"
    )]
    NoCamera,
    #[error(
        "no camera matches `{wanted}`; cameras found: {found}. Pick one with --device (index or part of its name); `sl-cam --list` shows them"
    )]
    NotFound { wanted: String, found: String },
    #[error(
        "camera {device} is busy ({why}): another program is using it. Close it (find it \
         with `fuser {path}`), or pick another camera with --device"
    )]
    Busy {
        device: String,
        path: String,
        why: String,
    },
    #[error(
        "cannot open camera {device}: {why}. Check `v4l2-ctl -d {path} --all` and the device's permissions"
    )]
    Open {
        device: String,
        path: String,
        why: String,
    },
    #[error("camera {device} offers no capture mode this program can read (it has: {modes})")]
    NoModes { device: String, modes: String },
    #[error("cannot set camera {device} to {mode}: {why}")]
    SetMode {
        device: String,
        mode: String,
        why: String,
    },
    #[error(
        "camera {device} stopped delivering frames after {frames} frames ({why}): was it \
         unplugged? Plug it back in and start again"
    )]
    Lost {
        device: String,
        frames: u64,
        why: String,
    },
    #[error("camera {device}: frame {frame}: {source}")]
    Decode {
        device: String,
        frame: u64,
        source: DecodeError,
    },
    #[error("listing cameras: {0}")]
    Query(String),
    /// Writing the output failed (a closed pipe downstream is one: the chain keeps the
    /// [`WireError`] so callers can tell).
    #[error("writing the output: {0}")]
    Output(#[from] WireError),
}

/// What [`capture`] is asked to do.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub request: Request,
    /// Convert to this wire format (default: the one closest to the camera's layout).
    pub format: Option<PixelFormat>,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Stop after this much stream time (seconds).
    pub max_secs: Option<f64>,
    /// Source id for the stream and its frames (default: the camera's description).
    pub source_id: Option<String>,
    /// Where frames are decoded to: [`Memory::Paged`] for a writer that hands each frame's
    /// pages to a pipe (stdout is a pipe and the kernel has huge pages).
    pub memory: Memory,
}

/// What [`capture`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub choice: Choice,
    pub frames: u64,
}

/// How the choice compares with the request, for the user.
pub fn describe_choice(req: &Request, choice: &Choice) -> String {
    if choice.exact {
        format!("capturing {}", choice.mode)
    } else {
        format!(
            "asked for {req}, which the camera does not offer: capturing {} (the closest)",
            choice.mode
        )
    }
}

/// Run the stage: capture from `cam` into `out` until a limit, `stop()`, or an error. A
/// capture that stops at a limit or when asked ends the stream (end-of-stream written); one
/// that fails leaves it unfinished, as every streamlib stage does, so the next stage knows
/// the frames stopped because of a failure (it still finalises what it writes). The frames
/// before the failure are all written. `on_choice` hears which mode was chosen, before the
/// first frame.
pub fn capture<C: Camera + ?Sized, W: Write>(
    cam: &mut C,
    opts: &Options,
    out: &mut Writer<W>,
    stop: &dyn Fn() -> bool,
    on_choice: &mut dyn FnMut(&Choice),
) -> Result<Report, CamError> {
    match start_and_stream(cam, opts, out, stop, on_choice) {
        Ok(report) => {
            out.finish()?;
            Ok(report)
        }
        Err(e) => {
            // what was captured reaches the next stage; the missing end says it failed
            let _ = out.flush();
            Err(e)
        }
    }
}

fn start_and_stream<C: Camera + ?Sized, W: Write>(
    cam: &mut C,
    opts: &Options,
    out: &mut Writer<W>,
    stop: &dyn Fn() -> bool,
    on_choice: &mut dyn FnMut(&Choice),
) -> Result<Report, CamError> {
    let mut session = Session::start(cam, opts, on_choice)?;
    out.write_stream_info(0, session.stream_info())?;
    while !stop() {
        let Some((described, frame)) = session.next_frame()? else {
            break;
        };
        if let Some(info) = described {
            out.write_stream_info(0, &info)?;
        }
        out.write_video(0, &frame)?;
    }
    Ok(Report {
        choice: session.choice,
        frames: session.n,
    })
}

/// A capture in progress, one frame at a time: what [`capture`] and a stage runtime drive.
pub struct Session<'c, C: Camera + ?Sized> {
    cam: &'c mut C,
    device: String,
    choice: Choice,
    format: PixelFormat,
    fps: Rational,
    info: StreamInfo,
    opts: Options,
    first_ts: Option<i64>,
    size: (u32, u32),
    n: u64,
}

impl<C: Camera + ?Sized> std::fmt::Debug for Session<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("device", &self.device)
            .field("mode", &self.choice.mode)
            .field("frames", &self.n)
            .finish()
    }
}

impl<'c, C: Camera + ?Sized> Session<'c, C> {
    /// Choose the mode closest to the request and start the camera; `on_choice` hears which
    /// mode was chosen, before the first frame.
    pub fn start(
        cam: &'c mut C,
        opts: &Options,
        on_choice: &mut dyn FnMut(&Choice),
    ) -> Result<Self, CamError> {
        let device = cam.describe();
        let modes = cam.modes()?;
        let Some(mut choice) = mode::choose(&modes, &opts.request) else {
            return Err(CamError::NoModes {
                device,
                modes: "none".into(),
            });
        };
        let actual = cam.start(choice.mode)?;
        if actual != choice.mode {
            log::warn!(
                "camera {device}: asked the driver for {}, it set {actual}",
                choice.mode
            );
            choice.mode = actual;
            choice.exact = false;
        }
        on_choice(&choice);
        let m = choice.mode;
        let format = opts
            .format
            .unwrap_or_else(|| decode::native_format(m.fourcc));
        let fps = if m.fps > 0 {
            Rational::new(m.fps, 1)
        } else {
            Rational::new(0, 0)
        };
        let source_id = opts.source_id.clone().unwrap_or_else(|| device.to_string());
        let mut info = StreamInfo::raw_video(format, m.width, m.height, fps);
        // Timestamps are capture times, in microseconds since the first frame: a camera's real
        // rate wanders around its nominal one, and dropped frames must show as gaps.
        info.time_base = Rational::MICROS;
        info.source_id = source_id;
        Ok(Session {
            cam,
            device,
            choice,
            format,
            fps,
            info,
            opts: opts.clone(),
            first_ts: None,
            size: (m.width, m.height),
            n: 0,
        })
    }

    /// The stream's description (send it before the first frame).
    pub fn stream_info(&self) -> &StreamInfo {
        &self.info
    }

    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    /// Frames captured so far.
    pub fn frames(&self) -> u64 {
        self.n
    }

    /// The next frame, with a new description when the driver changed the size, or `None`
    /// once `max_frames` or `max_secs` is reached.
    pub fn next_frame(
        &mut self,
    ) -> Result<Option<(Option<StreamInfo>, sl_frame::VideoFrame)>, CamError> {
        let (n, device) = (self.n, self.device.as_str());
        if self.opts.max_frames.is_some_and(|max| n >= max) {
            return Ok(None);
        }
        let raw = self.cam.frame().map_err(|e| match e {
            // a frame error once streaming means the device went away or failed
            CamError::Lost { .. } => e,
            other => CamError::Lost {
                device: device.to_string(),
                frames: n,
                why: other.to_string(),
            },
        })?;
        let ts = raw.timestamp_ns.unwrap_or_else(now_ns);
        let t0 = *self.first_ts.get_or_insert(ts);
        let pts_us = (ts - t0).max(0) / 1000;
        if self
            .opts
            .max_secs
            .is_some_and(|s| pts_us as f64 / 1e6 >= s - 1e-9)
        {
            return Ok(None);
        }
        let mut frame =
            decode::decode(&raw, self.opts.memory).map_err(|source| CamError::Decode {
                device: device.to_string(),
                frame: n,
                source,
            })?;
        if frame.format() != self.format {
            frame = to_format(&frame, self.format);
        }
        let mut described = None;
        if (frame.width(), frame.height()) != self.size {
            // the driver changed size under us: describe the stream again
            self.size = (frame.width(), frame.height());
            self.info = StreamInfo {
                kind: StreamInfo::raw_video(self.format, self.size.0, self.size.1, self.fps).kind,
                ..self.info.clone()
            };
            described = Some(self.info.clone());
        }
        let m = self.choice.mode;
        frame.info.frame_number = n;
        frame.info.pts = pts_us;
        frame.info.time_base = Rational::MICROS;
        frame.info.duration = if m.fps > 0 {
            1_000_000 / m.fps as i64
        } else {
            0
        };
        frame.info.capture_time_ns = Some(ts);
        frame.info.source_id = self.info.source_id.clone();
        self.n += 1;
        Ok(Some((described, frame)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeCamera;
    use sl_wire::{Message, Reader};

    fn run(cam: &mut FakeCamera, opts: &Options) -> (Result<Report, CamError>, Vec<Message>) {
        let mut out = Writer::new(Vec::new()).unwrap();
        let r = capture(cam, opts, &mut out, &|| false, &mut |_| {});
        let bytes = out.get_ref().clone();
        let mut rd = Reader::new(&bytes[..]).unwrap();
        let mut msgs = Vec::new();
        // a successful capture ends its stream; a failed one leaves it unfinished
        loop {
            match rd.next_message() {
                Ok(Some(m)) => msgs.push(m),
                Ok(None) => {
                    assert!(r.is_ok(), "a failed capture must not end its stream");
                    break;
                }
                Err(WireError::Truncated(_)) => {
                    assert!(r.is_err(), "a successful capture must end its stream");
                    break;
                }
                Err(e) => panic!("not a valid stream: {e}"),
            }
        }
        (r, msgs)
    }

    fn frames(msgs: &[Message]) -> Vec<&sl_frame::VideoFrame> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Video { frame, .. } => Some(frame),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn captures_the_chosen_mode_with_increasing_timestamps() {
        let mut cam = FakeCamera::new(vec![
            Mode {
                fourcc: FourCc::Yuyv,
                width: 64,
                height: 48,
                fps: 30,
            },
            Mode {
                fourcc: FourCc::Nv12,
                width: 32,
                height: 24,
                fps: 60,
            },
        ]);
        let opts = Options {
            request: Request {
                size: Some((64, 48)),
                ..Request::default()
            },
            max_frames: Some(5),
            ..Options::default()
        };
        let (r, msgs) = run(&mut cam, &opts);
        let r = r.unwrap();
        assert_eq!(r.frames, 5);
        assert_eq!(r.choice.mode.fourcc, FourCc::Yuyv);
        let Message::Stream { info, .. } = &msgs[0] else {
            panic!("stream info first")
        };
        let v = info.video().unwrap();
        assert_eq!((v.width, v.height), (64, 48));
        assert_eq!(v.fps, Rational::new(30, 1));
        let fs = frames(&msgs);
        assert_eq!(fs.len(), 5);
        assert!(fs.iter().all(|f| f.format() == PixelFormat::I420));
        for w in fs.windows(2) {
            assert!(w[1].info.pts > w[0].info.pts);
            assert_eq!(w[1].info.frame_number, w[0].info.frame_number + 1);
        }
        // the fake's driver clock steps 1/30 s
        assert_eq!(fs[1].info.pts - fs[0].info.pts, 33_333);
        assert!(fs[0].info.capture_time_ns.is_some());
    }

    #[test]
    fn converts_to_the_asked_format() {
        let mut cam = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Yuyv,
            width: 16,
            height: 8,
            fps: 30,
        }]);
        let opts = Options {
            format: Some(PixelFormat::Rgba),
            max_frames: Some(2),
            ..Options::default()
        };
        let (r, msgs) = run(&mut cam, &opts);
        r.unwrap();
        let fs = frames(&msgs);
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].format(), PixelFormat::Rgba);
        // the fake paints its left half bright and its right half dark
        let row = fs[0].row(0, 4);
        assert!(
            row[0] > 200 && row[60] < 60,
            "{:?} {:?}",
            &row[..4],
            &row[60..64]
        );
    }

    #[test]
    fn a_lost_camera_keeps_its_frames_and_leaves_the_stream_unfinished() {
        let mut cam = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Gray,
            width: 8,
            height: 8,
            fps: 30,
        }])
        .fail_after(3);
        let (r, msgs) = run(&mut cam, &Options::default());
        let e = r.unwrap_err();
        assert!(matches!(e, CamError::Lost { frames: 3, .. }), "{e}");
        assert!(e.to_string().contains("unplugged"), "{e}");
        assert_eq!(frames(&msgs).len(), 3);
    }

    #[test]
    fn a_busy_camera_is_reported() {
        let mut cam = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Gray,
            width: 8,
            height: 8,
            fps: 30,
        }])
        .busy();
        let mut out = Writer::new(Vec::new()).unwrap();
        let e = capture(
            &mut cam,
            &Options::default(),
            &mut out,
            &|| false,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("busy"), "{e}");
    }

    #[test]
    fn a_bad_buffer_is_an_error_not_a_panic() {
        let mut cam = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Yuyv,
            width: 8,
            height: 8,
            fps: 30,
        }])
        .short_frame_at(2);
        let (r, msgs) = run(&mut cam, &Options::default());
        let e = r.unwrap_err();
        assert!(matches!(e, CamError::Decode { frame: 2, .. }), "{e}");
        assert_eq!(frames(&msgs).len(), 2);
    }

    #[test]
    fn duration_limit_uses_capture_time() {
        let mut cam = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Gray,
            width: 8,
            height: 8,
            fps: 10,
        }]);
        let opts = Options {
            max_secs: Some(0.5),
            ..Options::default()
        };
        let (r, _) = run(&mut cam, &opts);
        assert_eq!(r.unwrap().frames, 5);
    }

    #[test]
    fn stops_when_asked() {
        let mut cam = FakeCamera::new(vec![Mode {
            fourcc: FourCc::Gray,
            width: 8,
            height: 8,
            fps: 30,
        }]);
        let mut out = Writer::new(Vec::new()).unwrap();
        let r = capture(
            &mut cam,
            &Options::default(),
            &mut out,
            &|| true,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.frames, 0);
        assert!(out.is_finished());
    }

    #[test]
    fn a_closed_pipe_stays_recognisable() {
        let e = CamError::from(WireError::Io(std::io::ErrorKind::BrokenPipe.into()));
        let src = std::error::Error::source(&e).expect("a source");
        assert!(
            src.downcast_ref::<WireError>()
                .is_some_and(WireError::is_broken_pipe)
        );
    }

    #[test]
    fn choice_is_described() {
        let c = Choice {
            mode: Mode {
                fourcc: FourCc::Mjpeg,
                width: 1280,
                height: 720,
                fps: 30,
            },
            exact: false,
        };
        let req = Request {
            fourcc: Some(FourCc::Nv12),
            ..Request::default()
        };
        let s = describe_choice(&req, &c);
        assert!(
            s.contains("NV12") && s.contains("MJPEG 1280x720 @ 30 fps"),
            "{s}"
        );
    }
}
