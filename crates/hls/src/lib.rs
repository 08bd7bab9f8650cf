//! streamlib's HTTP Live Streaming.
//!
//! - [`HlsWriter`] encodes frames (libx264 and AAC through [`sl_media::Sink`], the same
//!   encoder/muxer `sl-file` uses) into MPEG-TS or fMP4 segments with live, event or VOD
//!   playlists, one folder per rendition of a ladder plus a master playlist, and measures
//!   glass-to-playlist latency by watching the playlists it writes.
//! - [`Server`] serves the output folder over HTTP (hyper) with a player page, and nothing
//!   outside it, with bounded connections, timeouts and memory.
//! - [`playlist`] parses media playlists and writes master playlists atomically.
//! - [`codecs`] makes the master playlist's RFC 6381 `CODECS` strings from the encoders.

pub mod codecs;
pub mod playlist;
mod serve;
mod writer;

use std::path::{Path, PathBuf};

pub use serve::{
    HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_PER_CLIENT, Server, listen_address,
};
pub use writer::{
    HlsOptions, HlsWriter, Listed, PLAYLIST, PlaylistType, Rung, SegmentType, Summary, fit_ladder,
};

/// What can go wrong writing or serving HLS.
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    /// Options that cannot work together.
    #[error("{0}")]
    Options(String),
    /// Encoding or muxing.
    #[error(transparent)]
    Media(#[from] sl_media::MediaError),
    /// A file or folder.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Binding or running the HTTP server.
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        addr: String,
        source: std::io::Error,
    },
}

impl HlsError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> HlsError {
        HlsError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
