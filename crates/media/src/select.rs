//! Which of a stream's streams an encoder takes: the first raw video stream and (unless audio
//! is left out) the first audio stream. Shared by every stage that encodes (sl-file -o,
//! sl-hls), so they agree on what gets written.

use std::collections::BTreeMap;

use sl_wire::{StreamInfo, StreamKind, VideoFormat};

/// A chosen stream: its index on the wire and its description.
pub type Chosen<'a> = Option<(u16, &'a StreamInfo)>;

/// The video and audio streams to encode among those described so far, or None when there
/// is neither (a frame arrived before any usable stream description).
pub fn choose_streams(
    streams: &BTreeMap<u16, StreamInfo>,
    no_audio: bool,
) -> Option<(Chosen<'_>, Chosen<'_>)> {
    let first = |want: fn(&StreamKind) -> bool| {
        streams
            .iter()
            .find(|(_, s)| want(&s.kind))
            .map(|(i, s)| (*i, s))
    };
    let video =
        first(|k| matches!(k, StreamKind::Video(v) if matches!(v.format, VideoFormat::Raw(_))));
    let audio = if no_audio {
        None
    } else {
        first(|k| matches!(k, StreamKind::Audio(_)))
    };
    (video.is_some() || audio.is_some()).then_some((video, audio))
}
