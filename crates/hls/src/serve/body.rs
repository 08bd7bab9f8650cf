//! Response bodies: nothing, bytes in memory (the player page, hls.js, error text), or a
//! span of a file read chunk by chunk as hyper asks for it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::body::{Bytes, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from a file at a time. hyper asks for the next chunk only when its write buffer
/// is below [`super::MAX_BUF`], so a connection holds at most about this plus that buffer of
/// the file, however large the file and however slow the client.
pub(super) const CHUNK: usize = 32 * 1024;

#[derive(Debug)]
pub(super) enum Body {
    Empty,
    Bytes(Option<Bytes>),
    File(FileSpan),
}

/// `remaining` bytes of `file` from its current position.
#[derive(Debug)]
pub(super) struct FileSpan {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl Body {
    /// The next `count` bytes of `file`, from where it is positioned.
    pub(super) fn file(file: tokio::fs::File, count: u64) -> Body {
        Body::File(FileSpan {
            file,
            remaining: count,
            buf: Vec::new(),
        })
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::File(span) => {
                if span.remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = span.remaining.min(CHUNK as u64) as usize;
                if span.buf.len() < want {
                    span.buf.resize(want, 0);
                }
                let mut rb = ReadBuf::new(&mut span.buf[..want]);
                ready!(Pin::new(&mut span.file).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    // the length was promised in Content-Length: end the connection instead
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file got shorter while it was being sent",
                    ))));
                }
                span.remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled())))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Bytes(b) => b.is_none(),
            Body::File(span) => span.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            Body::File(span) => span.remaining,
        })
    }
}
