//! sl-convert: scale, crop, pad, change the pixel format and the frame rate of the raw video
//! in a stream, as a [`Filter`] on the stage runtime. What ffmpeg's `crop`, `scale`, `pad`,
//! `format` and `fps` filters do, in that order, in one libswscale pass per frame.
//!
//! Audio, data and message kinds this version does not know pass on untouched; the video
//! streams' descriptions are rewritten to the new size, format and rate.

use std::collections::HashMap;

use std::str::FromStr;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use ffmpeg_next as av;
use sl_cli::{FrameLimit, Size, StageFlags, UsageError, parse_fps};
use sl_frame::{ColorInfo, Matrix, PixelFormat, Range, Rational, VideoFrame};
use sl_stage::{Ending, Filter, Flow, Output, Stage};
use sl_wire::{Message, StreamInfo, StreamKind, VideoFormat};

/// Scale, crop, pad and change the pixel format and frame rate of raw video in the middle
/// of a pipeline: ffmpeg's crop, scale, pad, format and fps filters. Audio and everything
/// else pass through untouched.
#[derive(Parser, Debug)]
#[command(
    name = "sl-convert",
    version,
    after_help = "Steps, in order: --crop, then -s (with --fit), then --pad; -f and -r apply to the result.\n\n\
      Examples:\n  \
      sl-cam | sl-convert -s 720p -f i420 -r 30 | sl-file -o cam.mp4\n  \
      sl-test -s 1080p | sl-convert -s 640x640 --fit contain | sl-show     # letterbox\n  \
      sl-test | sl-convert --crop 640x360+100+50 | sl-info\n  \
      sl-test -s 1280x720 | sl-convert --pad 1920x1080 --pad-color navy | sl-show\n  \
      sl-file in.mp4 | sl-convert -r 15 | sl-hls out/"
)]
pub struct Args {
    /// Scale to this size: WIDTHxHEIGHT or 4k, 1080p, 720p, 480p, 360p.
    #[arg(short, long)]
    size: Option<Size>,
    /// How -s treats a different aspect ratio: stretch to it, contain (fit inside, pad the
    /// rest with --pad-color) or cover (fill it, cutting the overhang off centred).
    #[arg(long, value_enum, default_value_t = Fit::Stretch, requires = "size")]
    fit: Fit,
    /// Cut out WIDTHxHEIGHT+X+Y of the input first (X, Y from the top left; WIDTHxHEIGHT
    /// alone is centred).
    #[arg(long, value_name = "WxH+X+Y")]
    crop: Option<Crop>,
    /// Put the picture in the middle of a WIDTHxHEIGHT canvas of --pad-color.
    #[arg(long, value_name = "WxH")]
    pad: Option<Size>,
    /// Colour of the padding: #rrggbb or a name.
    #[arg(long, default_value = "black", value_parser = sl_pattern::parse_colour)]
    pad_color: [u8; 4],
    /// Pixel format out: rgba, bgra, rgb24, gray8, i420, nv12 (default: the input's).
    #[arg(short, long, value_parser = sl_cli::pixel_format())]
    format: Option<PixelFormat>,
    /// Frame rate out, dropping or repeating frames by their timestamps as ffmpeg's fps
    /// filter does: 30, 29.97, 30000/1001...
    #[arg(short = 'r', long, value_parser = parse_fps)]
    fps: Option<Rational>,
    #[command(flatten)]
    limit: FrameLimit,
    #[command(flatten)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

/// How `-s` meets an input of another aspect ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Fit {
    /// To exactly the size, whatever the aspect (ffmpeg's scale).
    Stretch,
    /// Inside the size, keeping the aspect, padded.
    Contain,
    /// Over the size, keeping the aspect, the overhang cut off.
    Cover,
}

/// A rectangle to cut out: `WxH+X+Y`, or `WxH` centred.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Crop {
    width: u32,
    height: u32,
    at: Option<(u32, u32)>,
}

impl FromStr for Crop {
    type Err = String;

    fn from_str(s: &str) -> Result<Crop, String> {
        let bad = || format!("`{s}` is not a crop: use WIDTHxHEIGHT+X+Y, e.g. 640x360+100+50");
        let mut parts = s.split('+');
        let size: Size = parts.next().unwrap_or("").parse().map_err(|_| bad())?;
        let at = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(x), Some(y), None) => Some((
                x.trim().parse().map_err(|_| bad())?,
                y.trim().parse().map_err(|_| bad())?,
            )),
            _ => return Err(bad()),
        };
        Ok(Crop {
            width: size.width,
            height: size.height,
            at,
        })
    }
}

/// What one input layout becomes: the part of the input read, the size it is scaled to, and
/// where that lands on the output canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Geometry {
    src: (u32, u32, u32, u32),
    scaled: (u32, u32),
    canvas: (u32, u32),
    at: (u32, u32),
    format: PixelFormat,
}

impl Geometry {
    fn is_identity(&self, format: PixelFormat, width: u32, height: u32) -> bool {
        self.format == format
            && self.src == (0, 0, width, height)
            && self.scaled == (width, height)
            && self.canvas == (width, height)
    }
}

/// Whether a format's chroma is halved both ways (its planes start at even pixels only).
fn subsampled(format: PixelFormat) -> bool {
    matches!(format, PixelFormat::I420 | PixelFormat::Nv12)
}

fn even_down(v: u32, format: PixelFormat) -> u32 {
    if subsampled(format) { v & !1 } else { v }
}

/// The settings that do not depend on the input.
#[derive(Clone, Copy, Debug)]
struct Plan {
    size: Option<Size>,
    fit: Fit,
    crop: Option<Crop>,
    pad: Option<Size>,
    format: Option<PixelFormat>,
}

impl Plan {
    /// The geometry for an input of `format` at `width`x`height`, or a usage error that says
    /// which setting does not fit it.
    fn geometry(&self, format: PixelFormat, width: u32, height: u32) -> anyhow::Result<Geometry> {
        let out_format = self.format.unwrap_or(format);
        let (mut sx, mut sy, mut sw, mut sh) = (0, 0, width, height);
        if let Some(c) = self.crop {
            let (x, y) = c.at.unwrap_or((
                width.saturating_sub(c.width) / 2,
                height.saturating_sub(c.height) / 2,
            ));
            if u64::from(x) + u64::from(c.width) > u64::from(width)
                || u64::from(y) + u64::from(c.height) > u64::from(height)
            {
                return Err(UsageError(format!(
                    "--crop {}x{}+{x}+{y} reaches outside the {width}x{height} input: give a \
                     rectangle inside it",
                    c.width, c.height
                ))
                .into());
            }
            (sx, sy, sw, sh) = (x, y, c.width, c.height);
            if subsampled(format) && (sx % 2 == 1 || sy % 2 == 1) {
                log::warn!(
                    "--crop at {sx},{sy}: {format} input can only be cut at even positions; \
                     cutting at {},{}",
                    sx & !1,
                    sy & !1
                );
                (sx, sy) = (sx & !1, sy & !1);
            }
        }
        let (mut scaled, mut canvas) = ((sw, sh), (sw, sh));
        if let Some(Size {
            width: w,
            height: h,
        }) = self.size
        {
            match self.fit {
                Fit::Stretch => (scaled, canvas) = ((w, h), (w, h)),
                Fit::Contain => {
                    // the larger of the two shrink factors decides
                    let (fw, fh) = if u64::from(sw) * u64::from(h) >= u64::from(sh) * u64::from(w) {
                        (w, scale_dim(sh, w, sw))
                    } else {
                        (scale_dim(sw, h, sh), h)
                    };
                    let (fw, fh) = if subsampled(out_format) {
                        ((fw & !1).max(2).min(w), (fh & !1).max(2).min(h))
                    } else {
                        (fw, fh)
                    };
                    (scaled, canvas) = ((fw, fh), (w, h));
                }
                Fit::Cover => {
                    // cut the input to the target's aspect, centred, then scale
                    let (cw, ch) = if u64::from(sw) * u64::from(h) >= u64::from(sh) * u64::from(w) {
                        (scale_dim(w, sh, h), sh)
                    } else {
                        (sw, scale_dim(h, sw, w))
                    };
                    sx += even_down((sw - cw.min(sw)) / 2, format);
                    sy += even_down((sh - ch.min(sh)) / 2, format);
                    (sw, sh) = (cw.min(sw), ch.min(sh));
                    (scaled, canvas) = ((w, h), (w, h));
                }
            }
        }
        if let Some(Size {
            width: w,
            height: h,
        }) = self.pad
        {
            if w < scaled.0 || h < scaled.1 {
                return Err(UsageError(format!(
                    "--pad {w}x{h} is smaller than the {}x{} picture: pad to a size at least \
                     as large (or scale down first with -s)",
                    scaled.0, scaled.1
                ))
                .into());
            }
            canvas = (w, h);
        }
        let at = (
            even_down((canvas.0 - scaled.0) / 2, out_format),
            even_down((canvas.1 - scaled.1) / 2, out_format),
        );
        Ok(Geometry {
            src: (sx, sy, sw, sh),
            scaled,
            canvas,
            at,
            format: out_format,
        })
    }
}

/// `v * num / den`, rounded, at least 1.
fn scale_dim(v: u32, num: u32, den: u32) -> u32 {
    let r = (u64::from(v) * u64::from(num) + u64::from(den) / 2) / u64::from(den.max(1));
    r.clamp(1, u64::from(sl_frame::MAX_DIMENSION)) as u32
}

/// A libswscale context for one geometry and input layout.
struct Scaler {
    key: (PixelFormat, u32, u32, ColorInfo, Geometry),
    ctx: av::software::scaling::Context,
}

/// One video stream's conversion and frame-rate state.
#[derive(Default)]
struct VideoState {
    scaler: Option<Scaler>,
    rate: Option<RateState>,
}

/// ffmpeg's fps filter: each input frame is given the output slot nearest its timestamp;
/// every slot shows the last frame given it or an earlier one. So a frame is held (not yet
/// converted: a dropped frame costs nothing) until the next one says which slots it fills,
/// one input frame of latency as in ffmpeg.
struct RateState {
    fps: Rational,
    held: Option<VideoFrame>,
    /// The first slot not sent yet.
    next: Option<i64>,
    sent: u64,
}

impl RateState {
    fn new(fps: Rational) -> RateState {
        RateState {
            fps,
            held: None,
            next: None,
            sent: 0,
        }
    }

    fn slot(&self, pts: i64, time_base: Rational) -> i64 {
        time_base.rescale(pts, self.fps.inverse())
    }

    /// The held frame and the slots it fills before `until`, if any (none: it is dropped).
    fn due(&mut self, until: i64) -> Option<(VideoFrame, std::ops::Range<i64>)> {
        let next = *self.next.get_or_insert(until);
        if next >= until {
            return None;
        }
        let frame = self.held.take()?;
        self.next = Some(until);
        Some((frame, next..until))
    }

    /// At the end: the held frame and the slots up to its own end time.
    fn last(&mut self) -> Option<(VideoFrame, std::ops::Range<i64>)> {
        let frame = self.held.as_ref()?;
        let slot = self.slot(frame.info.pts, frame.info.time_base);
        // its end time when it has a duration (so 30 frames at 30 fps make 15 at 15 fps,
        // as in ffmpeg), else its own slot
        let end = if frame.info.duration > 0 {
            self.slot(frame.info.pts + frame.info.duration, frame.info.time_base)
        } else {
            slot + 1
        };
        self.due(end)
    }

    /// Send `frame` once per slot.
    fn send(
        &mut self,
        frame: VideoFrame,
        slots: std::ops::Range<i64>,
        stream: u16,
        out: &mut Output,
    ) -> anyhow::Result<()> {
        let last = slots.end - 1;
        let mut frame = Some(frame);
        for slot in slots {
            let mut f = if slot == last {
                frame.take().expect("sent last")
            } else {
                frame.clone().expect("kept until the last")
            };
            f.info.pts = slot;
            f.info.time_base = self.fps.inverse();
            f.info.duration = 1;
            f.info.frame_number = self.sent;
            self.sent += 1;
            out.send(Message::Video { stream, frame: f })?;
            if out.stopped() {
                break;
            }
        }
        Ok(())
    }
}

struct Convert {
    plan: Plan,
    pad_color: [u8; 4],
    fps: Option<Rational>,
    streams: HashMap<u16, VideoState>,
}

impl Convert {
    /// The rewritten description of a raw video stream.
    fn describe(&mut self, stream: u16, mut info: StreamInfo) -> anyhow::Result<StreamInfo> {
        if let StreamKind::Video(v) = &mut info.kind {
            match v.format {
                VideoFormat::Raw(format) => {
                    let g = self.plan.geometry(format, v.width, v.height)?;
                    if g.format != format {
                        v.color = out_color(v.color, format, g.format);
                    }
                    v.format = VideoFormat::Raw(g.format);
                    (v.width, v.height) = g.canvas;
                    if let Some(fps) = self.fps {
                        v.fps = fps;
                        info.time_base = fps.inverse();
                    }
                }
                VideoFormat::Coded(codec) => {
                    anyhow::bail!(
                        "stream {stream} is {} video, and sl-convert works on raw frames: \
                         decode it first (sl-file FILE gives raw frames)",
                        codec.name()
                    );
                }
            }
        }
        Ok(info)
    }

    fn frame(&mut self, stream: u16, frame: VideoFrame, out: &mut Output) -> anyhow::Result<()> {
        let Convert {
            plan,
            pad_color,
            fps,
            streams,
        } = self;
        let state = streams.entry(stream).or_default();
        if state.rate.is_none()
            && let Some(fps) = *fps
        {
            state.rate = Some(RateState::new(fps));
        }
        match &mut state.rate {
            None => {
                let frame = convert(plan, *pad_color, &mut state.scaler, frame, out)?;
                out.send(Message::Video { stream, frame })
            }
            Some(rate) => {
                let slot = rate.slot(frame.info.pts, frame.info.time_base);
                let due = rate.due(slot);
                if let Some(dropped) = rate.held.replace(frame) {
                    out.pool().put(dropped.into_data());
                }
                if let Some((raw, slots)) = due {
                    let frame = convert(plan, *pad_color, &mut state.scaler, raw, out)?;
                    rate.send(frame, slots, stream, out)?;
                }
                Ok(())
            }
        }
    }

    /// A stream's end: its held frame fills its last slots.
    fn flush(&mut self, stream: u16, out: &mut Output) -> anyhow::Result<()> {
        let Some(state) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        let Some(rate) = &mut state.rate else {
            return Ok(());
        };
        if let Some((raw, slots)) = rate.last() {
            let frame = convert(&self.plan, self.pad_color, &mut state.scaler, raw, out)?;
            rate.send(frame, slots, stream, out)?;
        }
        rate.held = None;
        Ok(())
    }
}

/// Crop, scale, pad and change the format of one frame (as it is if nothing changes).
fn convert(
    plan: &Plan,
    pad_color: [u8; 4],
    scaler: &mut Option<Scaler>,
    frame: VideoFrame,
    out: &mut Output,
) -> anyhow::Result<VideoFrame> {
    let (format, width, height) = (frame.format(), frame.width(), frame.height());
    let g = plan.geometry(format, width, height)?;
    if g.is_identity(format, width, height) {
        return Ok(frame);
    }
    let key = (format, width, height, frame.color, g);
    if scaler.as_ref().is_none_or(|s| s.key != key) {
        *scaler = Some(Scaler {
            key,
            ctx: scaler_for(format, frame.color, &g)?,
        });
    }
    let scaler = scaler.as_mut().expect("just made");
    let size = g.format.frame_size(g.canvas.0, g.canvas.1);
    let mut dst = frame_with_slack(g.format, g.canvas, out.buffer(size))?;
    dst.color = if g.format == format {
        frame.color
    } else {
        out_color(frame.color, format, g.format)
    };
    if g.canvas != g.scaled {
        sl_frame::ops::fill(&mut dst, pad_color);
    }
    scale(&mut scaler.ctx, &frame, &g, &mut dst)?;
    dst.info = frame.info.clone();
    out.pool().put(frame.into_data());
    Ok(dst)
}

/// The colour description of a frame converted from `from` to `to`: YUV to YUV keeps the
/// matrix and range (swscale is told them); anything else is what a new frame of `to` assumes.
fn out_color(color: ColorInfo, from: PixelFormat, to: PixelFormat) -> ColorInfo {
    if from.is_yuv() && to.is_yuv() && from != PixelFormat::Gray8 && to != PixelFormat::Gray8 {
        color
    } else {
        ColorInfo::default_for(to)
    }
}

fn av_pixel(f: PixelFormat) -> av::format::Pixel {
    use av::format::Pixel;
    match f {
        PixelFormat::Rgba => Pixel::RGBA,
        PixelFormat::Bgra => Pixel::BGRA,
        PixelFormat::Rgb24 => Pixel::RGB24,
        PixelFormat::Gray8 => Pixel::GRAY8,
        PixelFormat::I420 => Pixel::YUV420P,
        PixelFormat::Nv12 => Pixel::NV12,
    }
}

/// A context from the cropped input to the scaled picture, told the input's YUV matrix and
/// range (and to keep them for YUV output).
#[allow(unsafe_code)]
fn scaler_for(
    format: PixelFormat,
    color: ColorInfo,
    g: &Geometry,
) -> anyhow::Result<av::software::scaling::Context> {
    let mut ctx = av::software::scaling::Context::get(
        av_pixel(format),
        g.src.2,
        g.src.3,
        av_pixel(g.format),
        g.scaled.0,
        g.scaled.1,
        av::software::scaling::Flags::BICUBIC,
    )
    .with_context(|| {
        format!(
            "setting up libswscale for {format} {}x{} to {} {}x{}",
            g.src.2, g.src.3, g.format, g.scaled.0, g.scaled.1
        )
    })?;
    if format.is_yuv() && format != PixelFormat::Gray8 {
        let cs = |m: Matrix| match m {
            Matrix::Bt601 => av::ffi::SWS_CS_ITU601,
            Matrix::Bt709 => av::ffi::SWS_CS_ITU709,
        };
        let full = |r: Range| i32::from(matches!(r, Range::Full));
        let out = out_color(color, format, g.format);
        // SAFETY: the context is valid (just made); sws_getCoefficients returns pointers to
        // libswscale's static tables; the brightness/contrast/saturation values are its
        // documented neutral ones.
        let r = unsafe {
            let src_table = av::ffi::sws_getCoefficients(cs(color.matrix));
            let dst_table = av::ffi::sws_getCoefficients(cs(out.matrix));
            let dst_full = if g.format.is_yuv() {
                full(out.range)
            } else {
                1
            };
            av::ffi::sws_setColorspaceDetails(
                ctx.as_mut_ptr(),
                src_table,
                full(color.range),
                dst_table,
                dst_full,
                0,
                1 << 16,
                1 << 16,
            )
        };
        if r < 0 {
            log::debug!("libswscale kept its default colour matrix ({r})");
        }
    }
    Ok(ctx)
}

/// Bytes past the end of a frame's buffer swscale's vector code may write (as sl-media).
const SLACK: usize = 4096;

/// A packed frame whose buffer has [`SLACK`] spare bytes of capacity.
fn frame_with_slack(
    format: PixelFormat,
    size: (u32, u32),
    buf: Option<Vec<u8>>,
) -> anyhow::Result<VideoFrame> {
    let len = format.frame_size(size.0, size.1);
    let mut buf = buf.unwrap_or_default();
    if buf.len() != len {
        buf.clear();
        buf.resize(len, 0);
    }
    buf.reserve_exact(SLACK);
    Ok(VideoFrame::from_packed(format, size.0, size.1, buf)?)
}

/// Scale `src`'s crop rectangle into `dst` at the geometry's position. With padding the
/// picture goes through a frame of its own first, so swscale's row overrun cannot touch the
/// padding.
#[allow(unsafe_code)]
fn scale(
    ctx: &mut av::software::scaling::Context,
    src: &VideoFrame,
    g: &Geometry,
    dst: &mut VideoFrame,
) -> anyhow::Result<()> {
    let direct = g.canvas == g.scaled;
    let mut tmp = if direct {
        None
    } else {
        Some(frame_with_slack(g.format, g.scaled, None)?)
    };
    let (sx, sy, _, sh) = g.src;
    let mut src_ptrs: [*const u8; 4] = [std::ptr::null(); 4];
    let mut src_strides = [0i32; 4];
    for p in 0..src.format().plane_count() {
        let (bx, ry) = src.format().plane_dims(p, sx, sy);
        let plane = src.plane(p);
        let offset = ry * src.stride(p) + bx;
        anyhow::ensure!(offset < plane.len(), "crop outside the frame's data");
        src_ptrs[p] = plane[offset..].as_ptr();
        src_strides[p] = src.stride(p) as i32;
    }
    let target: &mut VideoFrame = match &mut tmp {
        Some(t) => t,
        None => dst,
    };
    // swscale may write a little past the last row: give the buffer room (not its length)
    let mut dst_ptrs: [*mut u8; 4] = [std::ptr::null_mut(); 4];
    let mut dst_strides = [0i32; 4];
    let format = target.format();
    let strides: Vec<usize> = (0..format.plane_count())
        .map(|p| target.stride(p))
        .collect();
    let offsets: Vec<usize> = (0..format.plane_count())
        .scan(0usize, |acc, p| {
            let at = *acc;
            *acc += strides[p] * format.plane_dims(p, target.width(), target.height()).1;
            Some(at)
        })
        .collect();
    anyhow::ensure!(target.is_packed(), "the output frame is not packed");
    let data = target.data_mut();
    let base = data.as_mut_ptr();
    for p in 0..format.plane_count() {
        // SAFETY: offsets are the packed planes' starts, inside `data`
        dst_ptrs[p] = unsafe { base.add(offsets[p]) };
        dst_strides[p] = strides[p] as i32;
    }
    // SAFETY: the context converts g.src.2 x g.src.3 of the source format to g.scaled of
    // g.format (made for exactly this key); the source pointers point at the crop
    // rectangle's first pixel in each plane of `src` with its strides, the rectangle lying
    // inside the frame (checked by the geometry); the destination pointers are the planes of
    // a packed frame of exactly g.scaled in g.format. Nothing else aliases them meanwhile.
    let lines = unsafe {
        av::ffi::sws_scale(
            ctx.as_mut_ptr(),
            src_ptrs.as_ptr(),
            src_strides.as_ptr(),
            0,
            sh as i32,
            dst_ptrs.as_ptr(),
            dst_strides.as_ptr(),
        )
    };
    anyhow::ensure!(lines > 0, "libswscale failed to convert a frame");
    if let Some(t) = tmp {
        place(&t, dst, g.at);
    }
    Ok(())
}

/// Copy `pic` into `canvas` with its top left at `at` (even for subsampled formats).
fn place(pic: &VideoFrame, canvas: &mut VideoFrame, at: (u32, u32)) {
    let format = pic.format();
    for p in 0..format.plane_count() {
        let (bx, ry) = format.plane_dims(p, at.0, at.1);
        let (row_bytes, rows) = format.plane_dims(p, pic.width(), pic.height());
        for y in 0..rows {
            let from = &pic.row(p, y)[..row_bytes];
            canvas.row_mut(p, ry + y)[bx..bx + row_bytes].copy_from_slice(from);
        }
    }
}

impl Filter for Convert {
    type Note = ();

    fn message(
        &mut self,
        _input: usize,
        m: Message,
        _: (),
        out: &mut Output,
    ) -> anyhow::Result<Flow> {
        match m {
            Message::Stream { stream, info } => {
                let info = self.describe(stream, info)?;
                out.send(Message::Stream { stream, info })?;
            }
            Message::Video { stream, frame } => self.frame(stream, frame, out)?,
            Message::Packet { stream, packet } => {
                anyhow::bail!(
                    "stream {stream} carries {} packets, and sl-convert works on raw frames: \
                     decode it first (sl-file FILE gives raw frames)",
                    packet.codec.name()
                );
            }
            Message::End { stream } => {
                self.flush(stream, out)?;
                out.send(Message::End { stream })?;
            }
            other => out.send(other)?,
        }
        Ok(if out.stopped() {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }

    fn finish(&mut self, ending: Ending, out: &mut Output) -> anyhow::Result<()> {
        if !ending.is_failed() {
            let mut ids: Vec<u16> = self.streams.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                self.flush(id, out)?;
            }
        }
        ending.into_result()
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.size.is_none()
        && args.crop.is_none()
        && args.pad.is_none()
        && args.format.is_none()
        && args.fps.is_none()
    {
        return Err(UsageError(
            "nothing to convert: give -s, --crop, --pad, -f or -r (see --help)".into(),
        )
        .into());
    }
    av::init().context("starting libav")?;
    Stage::new(sl_cli::program())
        .limit(args.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy)
        .run_filter(Convert {
            plan: Plan {
                size: args.size,
                fit: args.fit,
                crop: args.crop,
                pad: args.pad,
                format: args.format,
            },
            pad_color: args.pad_color,
            fps: args.fps,
            streams: HashMap::new(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(size: Option<&str>, fit: Fit, crop: Option<&str>, pad: Option<&str>) -> Plan {
        Plan {
            size: size.map(|s| s.parse().unwrap()),
            fit,
            crop: crop.map(|s| s.parse().unwrap()),
            pad: pad.map(|s| s.parse().unwrap()),
            format: None,
        }
    }

    #[test]
    fn crop_parses_with_and_without_position() {
        assert_eq!(
            "640x360+10+20".parse::<Crop>(),
            Ok(Crop {
                width: 640,
                height: 360,
                at: Some((10, 20))
            })
        );
        assert_eq!("64x36".parse::<Crop>().unwrap().at, None);
        assert!("64x36+1".parse::<Crop>().is_err());
        assert!("big".parse::<Crop>().is_err());
    }

    #[test]
    fn contain_letterboxes_and_cover_cuts() {
        let g = plan(Some("640x640"), Fit::Contain, None, None)
            .geometry(PixelFormat::Rgba, 1920, 1080)
            .unwrap();
        assert_eq!(
            (g.scaled, g.canvas, g.at),
            ((640, 360), (640, 640), (0, 140))
        );
        let g = plan(Some("640x640"), Fit::Cover, None, None)
            .geometry(PixelFormat::Rgba, 1920, 1080)
            .unwrap();
        assert_eq!((g.src, g.scaled), ((420, 0, 1080, 1080), (640, 640)));
    }

    #[test]
    fn pad_centres_and_refuses_to_shrink() {
        let g = plan(None, Fit::Stretch, None, Some("100x100"))
            .geometry(PixelFormat::Rgba, 50, 20)
            .unwrap();
        assert_eq!((g.canvas, g.at), ((100, 100), (25, 40)));
        assert!(
            plan(None, Fit::Stretch, None, Some("10x10"))
                .geometry(PixelFormat::Rgba, 50, 20)
                .is_err()
        );
        assert!(
            plan(None, Fit::Stretch, Some("60x10+0+0"), None)
                .geometry(PixelFormat::Rgba, 50, 20)
                .is_err()
        );
    }
}
