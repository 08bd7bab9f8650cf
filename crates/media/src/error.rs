//! The one error type of this crate: what failed, on which input or output, and a hint.

use std::fmt;

/// An error opening, reading, decoding, encoding or writing media.
#[derive(Debug)]
pub struct MediaError {
    /// What was being done to what (`opening in.mp4`, `encoding video for out.mp4`).
    pub context: String,
    /// Why it failed.
    pub reason: String,
    /// What the user can try, if we know.
    pub hint: Option<String>,
    /// The libav error, when there is one.
    pub av: Option<ffmpeg_next::Error>,
    /// The operating-system error underneath, when libav or a write hook reported an errno
    /// (`EPIPE` from a closed pipe, `ENOSPC`): the `source()` of this error, so callers see
    /// an `io::Error` with its kind (`BrokenPipe`) in the chain.
    pub(crate) io: Option<std::io::Error>,
}

impl MediaError {
    pub fn new(context: impl Into<String>, reason: impl Into<String>) -> MediaError {
        MediaError {
            context: context.into(),
            reason: reason.into(),
            hint: None,
            av: None,
            io: None,
        }
    }

    /// From a libav error, with its own message as the reason.
    pub fn av(context: impl Into<String>, e: ffmpeg_next::Error) -> MediaError {
        MediaError {
            context: context.into(),
            reason: e.to_string(),
            hint: None,
            av: Some(e),
            io: errno_of(e).map(std::io::Error::from_raw_os_error),
        }
    }

    /// The same error with the operating-system error `errno` underneath (what a write hook
    /// saw), replacing any libav one.
    pub fn with_errno(mut self, errno: Option<i32>) -> MediaError {
        if let Some(n) = errno {
            self.io = Some(std::io::Error::from_raw_os_error(n));
        }
        self
    }

    /// The operating-system error underneath, if any.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.io.as_ref()
    }

    pub fn hint(mut self, hint: impl Into<String>) -> MediaError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.reason)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MediaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The system error only (a closed pipe, a full disk): libav's own errors are already
        // the reason in the message, and a source would print them twice.
        self.io
            .as_ref()
            .map(|io| io as &(dyn std::error::Error + 'static))
    }
}

/// The errno behind a libav error: libav reports system errors as `AVERROR(errno)`
/// (`AVERROR(EPIPE)` when the reader of a pipe is gone), which ffmpeg-next keeps as `Other`.
fn errno_of(e: ffmpeg_next::Error) -> Option<i32> {
    match e {
        ffmpeg_next::Error::Other { errno } if errno > 0 => Some(errno),
        _ => None,
    }
}

impl From<sl_frame::FrameError> for MediaError {
    fn from(e: sl_frame::FrameError) -> Self {
        MediaError::new("building a frame", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_closed_pipe_from_libav_is_a_broken_pipe_underneath() {
        let e = MediaError::av(
            "writing -",
            // EPIPE on Linux
            ffmpeg_next::Error::Other { errno: 32 },
        );
        let io = e
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("an io::Error underneath");
        assert_eq!(io.kind(), std::io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_libav_error_without_errno_has_no_source_to_print_twice() {
        // "Immediate exit requested" (Ctrl-C while opening) is already the reason
        let e = MediaError::av("opening x", ffmpeg_next::Error::Exit);
        assert!(e.source().is_none());
        assert_eq!(e.av, Some(ffmpeg_next::Error::Exit));
        assert!(MediaError::new("x", "y").source().is_none());
    }

    #[test]
    fn a_hook_errno_replaces_the_libav_one() {
        let e = MediaError::av("writing out.mp4", ffmpeg_next::Error::Other { errno: 5 })
            .with_errno(Some(28));
        assert_eq!(e.io_error().and_then(|e| e.raw_os_error()), Some(28));
    }
}
