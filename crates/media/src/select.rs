//! Which of a stream's streams an encoder takes: the first raw video stream and (unless audio
//! is left out) the first audio stream. Shared by every stage that encodes (sl-file -o,
//! sl-hls), so they agree on what gets written.

use std::collections::{BTreeMap, BTreeSet};

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

/// Which input streams an encoding stage writes: stream descriptions are collected until the
/// first frame, then [`Routes::choose`] fixes the video and audio stream for good (a stream
/// described after that is ignored, with one warning). Shared by sl-file -o and sl-hls.
#[derive(Debug, Default)]
pub struct Routes {
    streams: BTreeMap<u16, StreamInfo>,
    chosen: bool,
    video: Option<u16>,
    audio: Option<u16>,
    warned_late: bool,
    /// Streams whose frames are dropped and have been warned about.
    warned: BTreeSet<u16>,
}

impl Routes {
    /// A stream description arrived (a repeated one updates its stream until the choice).
    pub fn describe(&mut self, stream: u16, info: StreamInfo) {
        if self.chosen && !self.streams.contains_key(&stream) {
            if !self.warned_late {
                log::warn!(
                    "stream {stream} ({}) started after the output was opened: ignored",
                    info.kind_name()
                );
                self.warned_late = true;
            }
        } else {
            self.streams.insert(stream, info);
        }
    }

    /// Whether [`Routes::choose`] has been called.
    pub fn is_chosen(&self) -> bool {
        self.chosen
    }

    /// Choose the streams to encode ([`choose_streams`]) and return their descriptions, or
    /// None if there is neither video nor audio to encode.
    pub fn choose(&mut self, no_audio: bool) -> Option<(Option<StreamInfo>, Option<StreamInfo>)> {
        let (video, audio) = choose_streams(&self.streams, no_audio)?;
        self.chosen = true;
        self.video = video.map(|(i, _)| i);
        self.audio = audio.map(|(i, _)| i);
        for (i, s) in &self.streams {
            if Some(*i) == self.video || Some(*i) == self.audio {
                continue;
            }
            let why = match &s.kind {
                StreamKind::Audio(_) if no_audio => continue,
                StreamKind::Video(v) if !matches!(v.format, VideoFormat::Raw(_)) => {
                    "it carries compressed packets; decode them first"
                }
                StreamKind::Data => "data streams are not written",
                _ => "one video and one audio stream are written (the first of each)",
            };
            log::warn!(
                "stream {i} ({}, from {}) is not written: {why}",
                s.kind_name(),
                if s.source_id.is_empty() {
                    "an unnamed source"
                } else {
                    &s.source_id
                }
            );
            self.warned.insert(*i);
        }
        Some((video.map(|(_, s)| s.clone()), audio.map(|(_, s)| s.clone())))
    }

    /// The output cannot take the chosen audio: its chunks are dropped from now on.
    pub fn drop_audio(&mut self) {
        self.audio = None;
    }

    /// Whether `stream` is the video stream being written (a frame of a stream that is not
    /// gets one warning per stream: it is dropped).
    pub fn is_video(&mut self, stream: u16) -> bool {
        let yes = self.video == Some(stream);
        if !yes {
            self.dropping(stream, "video frames");
        }
        yes
    }

    /// Whether `stream` is the audio stream being written (as [`Routes::is_video`]).
    pub fn is_audio(&mut self, stream: u16) -> bool {
        let yes = self.audio == Some(stream);
        if !yes {
            self.dropping(stream, "audio");
        }
        yes
    }

    fn dropping(&mut self, stream: u16, what: &str) {
        if self.warned.insert(stream) {
            if self.streams.contains_key(&stream) {
                log::warn!("the {what} of stream {stream} are not written");
            } else {
                log::warn!(
                    "{what} arrived on stream {stream}, which was never described: they are \
                     dropped (a stage upstream must send a stream description first)"
                );
            }
        }
    }

    /// Whether audio is being written.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }
}
