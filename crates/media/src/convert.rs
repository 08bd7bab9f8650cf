//! Pixel conversion and scaling on worker threads, in order.
//!
//! Converting a decoded 1080p frame to RGBA with swscale costs about as much as decoding it.
//! Done on the decoding thread, it makes the whole source as slow as the sum of both; here
//! each frame goes to one of a few workers (round robin), each with its own swscale context,
//! and results are taken back in the same round-robin order, so frames stay in order without
//! a reordering buffer. Measured on the 2-core test machine (1080p30 H.264 to RGBA, piped
//! into sl-info): from 0.86x ffmpeg's frame rate to above 1x.

use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;

use av::format::Pixel;
use av::software::scaling;
use ffmpeg_next as av;
use sl_frame::{ColorInfo, FrameInfo, PixelFormat, VideoFrame};
use sl_wire::Message;

use crate::MediaError;
use crate::pixels::to_av_pixel;

/// One frame to convert.
pub(crate) struct Job {
    pub frame: av::frame::Video,
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub color: ColorInfo,
    pub info: FrameInfo,
    pub stream: u16,
    pub buf: Vec<u8>,
    /// Put the result in memory of its own that a pipe can take without a copy
    /// (`VideoFrame::new_paged`) instead of in `buf`.
    pub paged: bool,
    /// For messages: which input this is.
    pub name: String,
}

struct Worker {
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<Message, MediaError>>,
    handle: Option<JoinHandle<()>>,
}

/// A small pool of conversion threads that hands results back in submission order.
pub(crate) struct Converter {
    workers: Vec<Worker>,
    next_submit: usize,
    next_take: usize,
    in_flight: usize,
}

impl Converter {
    pub(crate) fn new(threads: usize) -> Converter {
        let workers = (0..threads.max(1))
            .map(|_| {
                let (jobs, job_rx) = channel::<Job>();
                let (res_tx, results) = channel();
                let handle = std::thread::spawn(move || work(job_rx, res_tx));
                Worker {
                    jobs: Some(jobs),
                    results,
                    handle: Some(handle),
                }
            })
            .collect();
        Converter {
            workers,
            next_submit: 0,
            next_take: 0,
            in_flight: 0,
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub(crate) fn capacity(&self) -> usize {
        self.workers.len() * 2
    }

    pub(crate) fn submit(&mut self, job: Job) {
        let w = &self.workers[self.next_submit];
        self.next_submit = (self.next_submit + 1) % self.workers.len();
        self.in_flight += 1;
        if let Some(tx) = &w.jobs {
            // a worker only stops when its channel closes, so the send cannot fail
            let _ = tx.send(job);
        }
    }

    /// The oldest result: waiting for it if `block`, else `None` if it is not ready.
    pub(crate) fn take(&mut self, block: bool) -> Option<Result<Message, MediaError>> {
        if self.in_flight == 0 {
            return None;
        }
        let w = &self.workers[self.next_take];
        let r = if block {
            w.results
                .recv()
                .unwrap_or_else(|_| Err(MediaError::new("converting frames", "a worker stopped")))
        } else {
            match w.results.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    Err(MediaError::new("converting frames", "a worker stopped"))
                }
            }
        };
        self.next_take = (self.next_take + 1) % self.workers.len();
        self.in_flight -= 1;
        Some(r)
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.jobs.take();
        }
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn work(jobs: Receiver<Job>, results: Sender<Result<Message, MediaError>>) {
    let mut scaler: Scaler = None;
    for job in jobs {
        let r = convert(job, &mut scaler);
        if results.send(r).is_err() {
            return;
        }
    }
}

type Scaler = Option<((Pixel, u32, u32, PixelFormat, u32, u32), scaling::Context)>;

fn convert(job: Job, scaler: &mut Scaler) -> Result<Message, MediaError> {
    let f = &job.frame;
    let key = (
        f.format(),
        f.width(),
        f.height(),
        job.format,
        job.width,
        job.height,
    );
    if scaler.as_ref().is_none_or(|(k, _)| *k != key) {
        let ctx = scaling::Context::get(
            key.0,
            key.1,
            key.2,
            to_av_pixel(job.format),
            job.width,
            job.height,
            scaling::Flags::BICUBIC,
        )
        .map_err(|e| MediaError::av(format!("converting {:?} to {}", key.0, job.format), e))?;
        *scaler = Some((key, ctx));
    }
    let (_, ctx) = scaler.as_mut().expect("just made");
    let mut frame = scale_into(
        ctx, f, job.format, job.width, job.height, job.buf, job.paged,
    )
    .map_err(|e| MediaError::new(format!("converting a frame of {}", job.name), e.reason))?;
    frame.color = job.color;
    frame.info = job.info;
    Ok(Message::Video {
        stream: job.stream,
        frame,
    })
}

/// Bytes of capacity past the end of a frame's buffer that swscale's SIMD line writers may
/// touch (they can round a line up to their vector width).
const SWS_SLACK: usize = 4096;

/// Run swscale from `src` straight into `buf`, laid out as a tightly packed `format` frame
/// (or, if `paged`, into a new paged frame).
///
/// This is `scaling::Context::run` without its output AVFrame: writing into the frame's own
/// buffer saves copying every converted frame once more (8 MB per 1080p RGBA frame; measured
/// at about 15% of the CPU time of `sl-file in.mp4 -f rgba`).
#[allow(unsafe_code)]
fn scale_into(
    ctx: &mut scaling::Context,
    src: &av::frame::Video,
    format: PixelFormat,
    width: u32,
    height: u32,
    mut buf: Vec<u8>,
    paged: bool,
) -> Result<VideoFrame, MediaError> {
    let input = ctx.input();
    let output = ctx.output();
    if (src.format(), src.width(), src.height()) != (input.format, input.width, input.height)
        || (to_av_pixel(format), width, height) != (output.format, output.width, output.height)
    {
        return Err(MediaError::new(
            "converting a frame",
            "the converter was set up for another size or format",
        ));
    }
    let size = format.frame_size(width, height);
    let mut paged = if paged {
        VideoFrame::new_paged(format, width, height, SWS_SLACK)
    } else {
        None
    };
    let base = match paged.as_mut().and_then(|f| f.pages_mut()) {
        Some(pages) => pages.as_mut_ptr(),
        None => {
            if buf.len() != size {
                // a recycled buffer of the right size is reused as is (no zero-filling)
                buf.clear();
                buf.resize(size, 0);
            }
            buf.reserve_exact(SWS_SLACK);
            buf.as_mut_ptr()
        }
    };
    let strides = VideoFrame::packed_strides(format, width);
    let mut dst: [*mut u8; 4] = [std::ptr::null_mut(); 4];
    let mut dst_stride = [0i32; 4];
    let mut offset = 0;
    for p in 0..format.plane_count() {
        // SAFETY: `offset` stays within the `size` bytes at `base` (the planes' sizes sum to
        // `size`)
        dst[p] = unsafe { base.add(offset) };
        dst_stride[p] = strides[p] as i32;
        offset += strides[p] * format.plane_dims(p, width, height).1;
    }
    debug_assert_eq!(offset, size);
    // SAFETY: the context converts `input` (checked above to be `src`'s format and size) to
    // `output` (checked to be `format` at `width`x`height`); `src`'s data and linesize arrays
    // come from libav and describe its planes; the destination pointers and strides describe
    // a packed frame of that format and size at `base` (in `buf` or the paged frame), which
    // has SWS_SLACK writable bytes past its end for swscale's vector writes. Nothing else
    // aliases that memory while swscale runs.
    let lines = unsafe {
        let s = src.as_ptr();
        av::ffi::sws_scale(
            ctx.as_mut_ptr(),
            (*s).data.as_ptr() as *const *const u8,
            (*s).linesize.as_ptr(),
            0,
            src.height() as i32,
            dst.as_ptr(),
            dst_stride.as_ptr(),
        )
    };
    if lines <= 0 {
        return Err(MediaError::new("converting a frame", "swscale failed"));
    }
    match paged {
        Some(f) => Ok(f),
        None => Ok(VideoFrame::from_packed(format, width, height, buf)?),
    }
}
