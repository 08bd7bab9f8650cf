//! Real cameras, through nokhwa's V4L2 backend.
//!
//! nokhwa's own decoders are not used (its `decoding` feature is off): buffers are taken raw
//! and decoded by [`crate::decode`], which knows the wire formats and is tested without a
//! camera. Driver timestamps (V4L2's monotonic buffer time, which nokhwa turns into wall
//! clock) become the frames' capture times.

use nokhwa::Camera as NCamera;
use nokhwa::NokhwaError;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::decode::RawFrame;
use crate::mode::{FourCc, Mode};
use crate::{CamError, Camera};

/// A camera the system knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub index: u32,
    pub name: String,
    pub path: String,
}

impl DeviceInfo {
    fn describe(&self) -> String {
        format!("{} ({})", self.path, self.name)
    }
}

/// Every V4L2 video device.
pub fn list_devices() -> Result<Vec<DeviceInfo>, CamError> {
    let infos =
        nokhwa::query(ApiBackend::Video4Linux).map_err(|e| CamError::Query(e.to_string()))?;
    let mut v: Vec<DeviceInfo> = infos
        .iter()
        .filter_map(|i| {
            let index = i.index().as_index().ok()?;
            Some(DeviceInfo {
                index,
                name: i.human_name(),
                path: format!("/dev/video{index}"),
            })
        })
        .collect();
    v.sort_by_key(|d| d.index);
    Ok(v)
}

/// Find the device `wanted` names: an index (`0`), a path (`/dev/video2`) or part of a
/// name (`logitech`, case-insensitive). None picks the first.
pub fn select<'a>(
    devices: &'a [DeviceInfo],
    wanted: Option<&str>,
) -> Result<&'a DeviceInfo, CamError> {
    if devices.is_empty() {
        return Err(CamError::NoCamera);
    }
    let Some(w) = wanted else {
        return Ok(&devices[0]);
    };
    let w = w.trim();
    let idx = w
        .strip_prefix("/dev/video")
        .unwrap_or(w)
        .parse::<u32>()
        .ok();
    let lower = w.to_lowercase();
    devices
        .iter()
        .find(|d| Some(d.index) == idx)
        .or_else(|| {
            devices
                .iter()
                .find(|d| d.name.to_lowercase().contains(&lower))
        })
        .ok_or_else(|| CamError::NotFound {
            wanted: w.to_string(),
            found: devices
                .iter()
                .map(|d| format!("{} {}", d.index, d.describe()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn to_fourcc(f: FrameFormat) -> FourCc {
    match f {
        FrameFormat::MJPEG => FourCc::Mjpeg,
        FrameFormat::YUYV => FourCc::Yuyv,
        FrameFormat::NV12 => FourCc::Nv12,
        FrameFormat::GRAY => FourCc::Gray,
        FrameFormat::RAWRGB => FourCc::Rgb24,
        FrameFormat::RAWBGR => FourCc::Bgr24,
    }
}

fn from_fourcc(f: FourCc) -> FrameFormat {
    match f {
        FourCc::Mjpeg => FrameFormat::MJPEG,
        FourCc::Yuyv => FrameFormat::YUYV,
        FourCc::Nv12 => FrameFormat::NV12,
        FourCc::Gray => FrameFormat::GRAY,
        FourCc::Rgb24 => FrameFormat::RAWRGB,
        FourCc::Bgr24 => FrameFormat::RAWBGR,
    }
}

/// Whether a V4L2 error says the device is in use (EBUSY).
fn is_busy(why: &str) -> bool {
    why.contains("os error 16") || why.to_lowercase().contains("busy")
}

/// An open V4L2 camera.
pub struct V4lCamera {
    info: DeviceInfo,
    cam: NCamera,
    mode: Option<Mode>,
    frames: u64,
}

impl std::fmt::Debug for V4lCamera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4lCamera")
            .field("info", &self.info)
            .field("mode", &self.mode)
            .finish()
    }
}

impl V4lCamera {
    /// Open the camera `wanted` names (see [`select`]).
    pub fn open(wanted: Option<&str>) -> Result<V4lCamera, CamError> {
        let devices = list_devices()?;
        let info = select(&devices, wanted)?.clone();
        let req = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
        let cam =
            NCamera::with_backend(CameraIndex::Index(info.index), req, ApiBackend::Video4Linux)
                .map_err(|e| open_error(&info, e))?;
        Ok(V4lCamera {
            info,
            cam,
            mode: None,
            frames: 0,
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }
}

fn open_error(info: &DeviceInfo, e: NokhwaError) -> CamError {
    let why = e.to_string();
    if is_busy(&why) {
        CamError::Busy {
            device: info.describe(),
            path: info.path.clone(),
            why,
        }
    } else {
        CamError::Open {
            device: info.describe(),
            path: info.path.clone(),
            why,
        }
    }
}

impl Camera for V4lCamera {
    fn describe(&self) -> String {
        self.info.describe()
    }

    fn modes(&mut self) -> Result<Vec<Mode>, CamError> {
        let formats = self
            .cam
            .compatible_camera_formats()
            .map_err(|e| open_error(&self.info, e))?;
        let mut modes: Vec<Mode> = formats
            .iter()
            .map(|f| Mode {
                fourcc: to_fourcc(f.format()),
                width: f.width(),
                height: f.height(),
                fps: f.frame_rate(),
            })
            .collect();
        modes.sort_by_key(|m| (m.fourcc.name(), m.width, m.height, m.fps));
        modes.dedup();
        Ok(modes)
    }

    fn start(&mut self, mode: Mode) -> Result<Mode, CamError> {
        let fmt = CameraFormat::new(
            Resolution::new(mode.width, mode.height),
            from_fourcc(mode.fourcc),
            mode.fps,
        );
        let set = |e: NokhwaError| {
            let why = e.to_string();
            if is_busy(&why) {
                CamError::Busy {
                    device: self.info.describe(),
                    path: self.info.path.clone(),
                    why,
                }
            } else {
                CamError::SetMode {
                    device: self.info.describe(),
                    mode: mode.to_string(),
                    why,
                }
            }
        };
        let formats = [fmt.format()];
        let req = RequestedFormat::with_formats(RequestedFormatType::Exact(fmt), &formats);
        self.cam.set_camera_requset(req).map_err(set)?;
        self.cam.open_stream().map_err(set)?;
        let got = self.cam.camera_format();
        let actual = Mode {
            fourcc: to_fourcc(got.format()),
            width: got.width(),
            height: got.height(),
            fps: got.frame_rate(),
        };
        self.mode = Some(actual);
        Ok(actual)
    }

    fn frame(&mut self) -> Result<RawFrame, CamError> {
        let buf = self.cam.frame().map_err(|e| CamError::Lost {
            device: self.info.describe(),
            frames: self.frames,
            why: e.to_string(),
        })?;
        self.frames += 1;
        let res = buf.resolution();
        Ok(RawFrame {
            fourcc: to_fourcc(buf.source_frame_format()),
            width: res.width(),
            height: res.height(),
            timestamp_ns: buf
                .capture_timestamp()
                .map(|d| d.as_nanos().min(i64::MAX as u128) as i64),
            data: buf.buffer().to_vec(),
        })
    }
}

impl Drop for V4lCamera {
    fn drop(&mut self) {
        let _ = self.cam.stop_stream();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(index: u32, name: &str) -> DeviceInfo {
        DeviceInfo {
            index,
            name: name.into(),
            path: format!("/dev/video{index}"),
        }
    }

    #[test]
    fn selects_by_index_path_or_name() {
        let d = vec![dev(0, "Integrated Camera"), dev(2, "Logitech BRIO")];
        assert_eq!(select(&d, None).unwrap().index, 0);
        assert_eq!(select(&d, Some("2")).unwrap().index, 2);
        assert_eq!(select(&d, Some("/dev/video2")).unwrap().index, 2);
        assert_eq!(select(&d, Some("brio")).unwrap().index, 2);
        let e = select(&d, Some("canon")).unwrap_err().to_string();
        assert!(e.contains("canon") && e.contains("Logitech BRIO"), "{e}");
        assert!(matches!(select(&[], None), Err(CamError::NoCamera)));
    }

    #[test]
    fn busy_is_recognised() {
        assert!(is_busy("Device or resource busy (os error 16)"));
        assert!(!is_busy("No such device (os error 19)"));
    }

    #[test]
    fn fourcc_round_trip() {
        for (_, f) in crate::mode::FOURCCS {
            assert_eq!(to_fourcc(from_fourcc(f)), f);
        }
    }
}
