//! The broadcast's `catalog.json`: hang's catalog, so MoQ tools can list the tracks, plus a
//! `streamlib` section that says which stream of the streamlib stream each track carries.
//!
//! Every track's frames are streamlib messages (container kind `streamlib`), which hang
//! consumers skip as an unknown container. H.264 is described with hang's own codec type
//! (`avc3`, parameter sets in band); raw video, for which hang has no type, with the codec
//! string `raw-<format>` (`raw-rgba`, `raw-i420`...) and its size and rate; raw audio as
//! `pcm-<format>`; data tracks in hang's `binary` section.

use std::collections::BTreeMap;

use hang::catalog::{
    AudioCodec, AudioConfig, BinaryConfig, Container, H264, VideoCodec, VideoConfig,
};
use serde::{Deserialize, Serialize};
use sl_wire::{StreamInfo, StreamKind, VideoFormat};

/// The container kind naming our frames (one streamlib message each).
pub const CONTAINER: &str = "streamlib";

/// The catalog's own section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Format of this section and of the frames (streamlib wire format version).
    pub version: u16,
    /// A random id per publisher process: a subscriber that sees it change knows a new
    /// publisher took over the broadcast (frame numbers start again).
    pub publisher: String,
    /// Track name to what it carries.
    pub tracks: BTreeMap<String, TrackEntry>,
    /// The publisher read the end of its stream: the last group of every track holds it.
    #[serde(default)]
    pub ended: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackEntry {
    /// The stream index in the streamlib stream.
    pub stream: u16,
    /// `video`, `audio` or `data`.
    pub kind: String,
    /// `keyframe-run` (a group per keyframe run) or `frame` (a group per message).
    pub groups: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamlib: Option<Section>,
}

pub type Catalog = hang::Catalog<Ext>;

fn container() -> Container {
    serde_json::from_value(serde_json::json!({ "kind": CONTAINER }))
        .expect("an unknown container kind deserializes")
}

/// H.264 profile, constraints and level from the first SPS in Annex B extradata.
fn h264_from_sps(extradata: &[u8]) -> Option<H264> {
    let mut i = 0;
    while i + 3 < extradata.len() {
        if extradata[i..].starts_with(&[0, 0, 1]) {
            let nal = extradata.get(i + 3..i + 7)?;
            if nal[0] & 0x1f == 7 {
                return Some(H264 {
                    inline: true,
                    profile: nal[1],
                    constraints: nal[2],
                    level: nal[3],
                });
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// One track's hang description, from its stream's STREAM_INFO (when one was seen).
pub fn describe(catalog: &mut Catalog, name: &str, info: Option<&StreamInfo>, kind: &str) {
    let Some(info) = info else {
        if kind == "data" {
            let _ = catalog
                .binary
                .insert(name, BinaryConfig::new(hang::catalog::Mode::Snapshot));
        }
        return;
    };
    match &info.kind {
        StreamKind::Video(v) => {
            let codec = match v.format {
                VideoFormat::Coded(sl_frame::VideoCodec::H264) => {
                    match h264_from_sps(&info.extradata) {
                        Some(h) => VideoCodec::H264(h),
                        None => VideoCodec::Unknown("avc3".into()),
                    }
                }
                VideoFormat::Coded(c) => VideoCodec::Unknown(c.to_string()),
                VideoFormat::Raw(p) => VideoCodec::Unknown(format!("raw-{p}")),
            };
            let mut config = VideoConfig::new(codec);
            config.coded_width = Some(v.width);
            config.coded_height = Some(v.height);
            if v.fps.num > 0 && v.fps.den > 0 {
                config.framerate = Some(v.fps.num as f64 / v.fps.den as f64);
            }
            config.container = container();
            let _ = catalog.video.insert(name, config);
        }
        StreamKind::Audio(a) => {
            let mut config = AudioConfig::new(
                AudioCodec::Unknown(format!("pcm-{}", a.format)),
                a.sample_rate,
                a.channels as u32,
            );
            config.container = container();
            let _ = catalog.audio.insert(name, config);
        }
        StreamKind::Data => {
            let _ = catalog
                .binary
                .insert(name, BinaryConfig::new(hang::catalog::Mode::Snapshot));
        }
    }
}
