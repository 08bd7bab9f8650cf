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
}

impl MediaError {
    pub fn new(context: impl Into<String>, reason: impl Into<String>) -> MediaError {
        MediaError {
            context: context.into(),
            reason: reason.into(),
            hint: None,
            av: None,
        }
    }

    /// From a libav error, with its own message as the reason.
    pub fn av(context: impl Into<String>, e: ffmpeg_next::Error) -> MediaError {
        MediaError {
            context: context.into(),
            reason: e.to_string(),
            hint: None,
            av: Some(e),
        }
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

impl std::error::Error for MediaError {}

impl From<sl_frame::FrameError> for MediaError {
    fn from(e: sl_frame::FrameError) -> Self {
        MediaError::new("building a frame", e.to_string())
    }
}
