//! streamlib's bridge to FFmpeg (through `ffmpeg-next`, against the system's libav*).
//!
//! - [`Source`] opens a file, a URL or stdin with libavformat, decodes its video and audio
//!   with libavcodec, and yields wire [`sl_wire::Message`]s: video frames in the source's own
//!   pixel format when the wire format has it (or converted/scaled with libswscale), audio
//!   chunks in the decoder's own sample format, timestamps in the stream's time base.
//! - [`Sink`] takes frames and audio chunks, encodes them (libx264, AAC, ffv1, rawvideo...)
//!   and muxes them into any container or URL libavformat writes. It is the encoder/muxer the
//!   HLS stage reuses: open it with a container name and muxer options.
//!
//! libavformat, libavcodec, libswscale, libswresample and libavutil are linked. Audio is
//! converted for encoders in Rust (sample format and layout); libswresample changes its rate
//! when the encoder needs another (44.1 kHz into Opus, which takes 48 kHz).
//!
//! Invariants: nothing here panics on bad input (every libav error becomes a
//! [`MediaError`] naming the input or output); a [`Sink`] whose header was written always
//! gets its trailer written, by [`Sink::finish`] or, failing that, on drop.

mod avlog;
mod convert;
mod error;
mod output;
mod pixels;
mod select;
mod sink;
mod source;
mod stdin;

pub use error::MediaError;
pub use output::same_file;
pub use pixels::{from_av_pixel, to_av_pixel};
pub use select::{Chosen, Routes, choose_streams};
pub use sink::{Encoded, Sink, SinkOptions, SinkStream, container_for};
pub use source::{DecodedVideo, Output, Source, SourceOptions};

use std::sync::Once;

/// Initialise libav once: its own log is kept to errors (our messages say more) and goes
/// through the stage's logger.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
        avlog::install();
    });
}

/// Make libav's own log louder (for `-vv`).
pub fn set_libav_verbose(verbose: bool) {
    init();
    ffmpeg_next::util::log::set_level(if verbose {
        ffmpeg_next::util::log::Level::Info
    } else {
        ffmpeg_next::util::log::Level::Error
    });
}
