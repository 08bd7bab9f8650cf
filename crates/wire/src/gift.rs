//! Writing frames that live in a [`sl_frame::pages::PageBuf`]: the payload's pages go into
//! the output pipe with `vmsplice(2)` instead of being copied (see `sl_frame::pages` for why
//! and for the figures). The frame is consumed and its mapping dropped right after, so its
//! pages are never written again while the pipe, or a later stage it is spliced into, still
//! holds them.
#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::AsFd;

use rustix::pipe::{IoSliceRaw, SpliceFlags, vmsplice};
use sl_frame::VideoFrame;

use crate::message::encode_video_header;
use crate::{WireError, Writer, flags, kind};

/// Whether `fd` is a pipe (or FIFO): where [`Writer::write_video_owned`] hands paged frames
/// over without a copy, and where `splice` works.
pub fn is_pipe(fd: impl AsFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
    })
}

impl<W: Write + AsFd> Writer<W> {
    /// Write a video frame, consuming it. A frame in a `PageBuf` going into a pipe is handed
    /// over without a copy; any other is written as [`Writer::write_video`] does, and its
    /// heap buffer is returned for reuse.
    pub fn write_video_owned(
        &mut self,
        stream: u16,
        frame: VideoFrame,
    ) -> Result<Option<Vec<u8>>, WireError> {
        let pipe = match self.is_pipe {
            Some(p) => p,
            None => {
                let p = is_pipe(self.get_ref().as_fd());
                self.is_pipe = Some(p);
                p
            }
        };
        if !frame.is_paged() || !pipe {
            self.write_video(stream, &frame)?;
            return Ok((!frame.is_paged()).then(|| frame.into_data()));
        }
        encode_video_header(&mut self.begin(), &frame)?;
        self.send_parts(
            kind::VIDEO,
            flags::KEYFRAME,
            stream,
            &[],
            frame.data().len() as u64,
        )?;
        let data = frame.data();
        let mut off = 0;
        while off < data.len() {
            let iov = [IoSliceRaw::from_slice(&data[off..])];
            // SAFETY: the fd is a pipe (checked above); if it is a pipe's write end the
            // kernel takes references to these pages and never writes them. (A read end
            // would write into them, which is also fine: the frame is ours and dropped
            // next.) No one writes the pages after this: `frame` is consumed, and dropping
            // it unmaps them from this process.
            match unsafe { vmsplice(self.get_ref().as_fd(), &iov, SpliceFlags::empty()) } {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(n) => off += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(std::io::Error::from(e).into()),
            }
        }
        self.add_bytes(data.len() as u64);
        drop(frame);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use sl_frame::{PixelFormat, VideoFrame};

    use crate::{Message, Reader, Writer};

    fn frames() -> Vec<VideoFrame> {
        (0..4u8)
            .map(|i| {
                // 1 MB and more: several vmsplice calls per frame through a 64 KB pipe
                let mut f = if i % 2 == 0 {
                    VideoFrame::new_paged(PixelFormat::Rgba, 640 + i as u32, 480, 0).unwrap()
                } else {
                    VideoFrame::new(PixelFormat::Rgba, 640, 480).unwrap()
                };
                for (j, b) in f.data_mut().iter_mut().enumerate() {
                    *b = (j % 251) as u8 ^ i;
                }
                f.info.frame_number = i as u64;
                f
            })
            .collect()
    }

    fn read_all(r: impl std::io::Read) -> Vec<VideoFrame> {
        let mut r = Reader::new(r).unwrap();
        let mut out = Vec::new();
        while let Some(m) = r.next_message().unwrap() {
            if let Message::Video { frame, .. } = m {
                out.push(frame);
            }
        }
        assert!(r.is_finished(), "the stream ends cleanly");
        out
    }

    #[test]
    fn paged_frames_through_a_pipe_arrive_intact() {
        let (rx, tx) = rustix::pipe::pipe().unwrap();
        let expected = frames();
        let reader = std::thread::spawn(move || read_all(File::from(rx)));
        let mut w = Writer::new(File::from(tx)).unwrap();
        let mut recycled = 0;
        for f in frames() {
            recycled += w.write_video_owned(0, f).unwrap().is_some() as usize;
        }
        w.finish().unwrap();
        drop(w);
        assert_eq!(
            recycled, 2,
            "heap frames come back for reuse, paged ones do not"
        );
        let got = reader.join().unwrap();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.data(), e.data());
            assert_eq!(g.info.frame_number, e.info.frame_number);
            assert_eq!((g.width(), g.height()), (e.width(), e.height()));
        }
    }

    #[test]
    fn paged_frames_into_a_file_are_copied() {
        let path = std::env::temp_dir().join(format!("sl-wire-gift-{}.slv", std::process::id()));
        let mut w = Writer::new(File::create(&path).unwrap()).unwrap();
        for f in frames() {
            w.write_video_owned(0, f).unwrap();
        }
        w.finish().unwrap();
        let got = read_all(File::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let expected = frames();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g.data(), e.data());
        }
    }
}
