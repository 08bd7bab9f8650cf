use std::io;

use thiserror::Error;

/// Why a byte stream could not be read or written.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("input is empty: the stage before this one wrote nothing (did it fail?)")]
    Empty,
    #[error(
        "input is not a streamlib stream: it looks like {0}. \
         Media files and raw video are read with `sl-file`, e.g. `sl-file input.y4m | ...` or `... | sl-file - | ...`"
    )]
    NotAStream(String),
    #[error(
        "input is streamlib wire format version {0}, but this program reads version {ver}; \
         use programs from the same streamlib release on both ends",
        ver = crate::VERSION
    )]
    UnsupportedVersion(u16),
    #[error(
        "stream truncated {0}: the stage before this one stopped without ending its stream \
         (it was killed or failed; see its error above)"
    )]
    Truncated(String),
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error(
        "{what} is {len} long, more than the wire format can carry ({max}): shorten it \
         (nothing was written)"
    )]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "a message ends {needed} bytes past the end of the buffer: a single message must be \
         decoded from a buffer that holds all of it"
    )]
    Short { needed: u64 },
    #[error("malformed {kind} message: {why}")]
    Malformed { kind: &'static str, why: String },
    #[error("invalid frame: {0}")]
    Frame(#[from] sl_frame::FrameError),
    #[error("cannot write this frame: {0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl WireError {
    pub(crate) fn malformed(kind: &'static str, why: impl Into<String>) -> WireError {
        WireError::Malformed {
            kind,
            why: why.into(),
        }
    }

    /// True when the error is a closed pipe downstream (a quiet, successful end for a stage).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, WireError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}
