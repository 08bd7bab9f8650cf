//! Reading media playlists (to follow what the muxer lists) and writing master playlists.
//!
//! The reader understands the subset FFmpeg's hls muxer writes: `#EXT-X-TARGETDURATION`,
//! `#EXT-X-MEDIA-SEQUENCE`, `#EXTINF`, `#EXT-X-MAP`, `#EXT-X-ENDLIST` and segment URIs.
//! Writes are atomic: a temporary file in the same folder, then a rename.

use std::io::Write;
use std::path::Path;

/// One listed segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its `#EXTINF` duration in seconds.
    pub duration: f64,
    /// Its URI as written (relative to the playlist).
    pub uri: String,
}

/// A parsed media playlist.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaPlaylist {
    pub target_duration: u64,
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    /// The `#EXT-X-MAP` URI (fMP4 init segment), if any.
    pub map: Option<String>,
    pub ended: bool,
    pub playlist_type: Option<String>,
}

impl MediaPlaylist {
    /// Parse a playlist's text. Unknown tags are ignored; a malformed number is an error.
    pub fn parse(text: &str) -> Result<MediaPlaylist, String> {
        if !text.starts_with("#EXTM3U") {
            return Err("not an M3U8 playlist (no #EXTM3U)".into());
        }
        let mut p = MediaPlaylist::default();
        let mut pending: Option<f64> = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target_duration = v.parse().map_err(|_| format!("bad target duration {v}"))?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = v.parse().map_err(|_| format!("bad media sequence {v}"))?;
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d = v.split(',').next().unwrap_or("");
                pending = Some(d.parse().map_err(|_| format!("bad EXTINF {v}"))?);
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                p.map = attribute(v, "URI");
            } else if let Some(v) = line.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
                p.playlist_type = Some(v.to_string());
            } else if line == "#EXT-X-ENDLIST" {
                p.ended = true;
            } else if !line.starts_with('#') {
                let duration = pending
                    .take()
                    .ok_or_else(|| format!("segment {line} has no #EXTINF"))?;
                p.segments.push(Segment {
                    duration,
                    uri: line.to_string(),
                });
            }
        }
        Ok(p)
    }

    /// The sum of the listed durations.
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// The value of `name` in an attribute list (`URI="init.mp4",BYTERANGE=...`).
fn attribute(list: &str, name: &str) -> Option<String> {
    let start = list.find(&format!("{name}="))? + name.len() + 1;
    let rest = &list[start..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next().map(str::to_string)
    } else {
        rest.split(',').next().map(str::to_string)
    }
}

/// One variant of a master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Peak segment bit rate in bits per second (video, audio and container), as RFC 8216
    /// 4.3.4.2 defines it: the highest rate of any run of segments lasting 0.5 to 1.5 times
    /// the target duration.
    pub bandwidth: u64,
    /// Average segment bit rate in bits per second, if known.
    pub average_bandwidth: Option<u64>,
    /// RFC 6381 codec strings, comma-separated (`avc1.64001f,mp4a.40.2`), if known.
    pub codecs: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Frame rate, if known.
    pub frame_rate: Option<f64>,
    /// URI of its media playlist, relative to the master.
    pub uri: String,
}

/// The text of a master playlist listing `variants` (highest first, as players expect the
/// first one to be a sensible start).
pub fn master_playlist(variants: &[Variant]) -> String {
    let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        s.push_str(&format!("#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth));
        if let Some(a) = v.average_bandwidth {
            s.push_str(&format!(",AVERAGE-BANDWIDTH={a}"));
        }
        if let Some(c) = &v.codecs {
            s.push_str(&format!(",CODECS=\"{c}\""));
        }
        s.push_str(&format!(",RESOLUTION={}x{}", v.width, v.height));
        if let Some(f) = v.frame_rate {
            s.push_str(&format!(",FRAME-RATE={f:.3}"));
        }
        s.push('\n');
        s.push_str(&v.uri);
        s.push('\n');
    }
    s
}

/// Write `text` to `path` atomically: a temporary file next to it, flushed, then renamed over
/// it, so a reader sees the old or the new file, never half of one.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    write_bytes_atomically(path, text.as_bytes())
}

/// [`write_atomically`] for bytes.
pub fn write_bytes_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_data()
    });
    if let Err(e) = written {
        // a full disk: the old playlist stays, and no half-written one is left about
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000000,\nseg_00003.m4s\n\
        #EXTINF:1.500000,\nseg_00004.m4s\n#EXT-X-ENDLIST\n";

    #[test]
    fn parses_what_ffmpeg_writes() {
        let p = MediaPlaylist::parse(LIVE).unwrap();
        assert_eq!(p.target_duration, 2);
        assert_eq!(p.media_sequence, 3);
        assert_eq!(p.map.as_deref(), Some("init.mp4"));
        assert!(p.ended);
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[1].uri, "seg_00004.m4s");
        assert!((p.duration() - 3.5).abs() < 1e-9);
    }

    #[test]
    fn rejects_garbage() {
        assert!(MediaPlaylist::parse("hello").is_err());
        assert!(MediaPlaylist::parse("#EXTM3U\nseg.ts\n").is_err());
        assert!(MediaPlaylist::parse("#EXTM3U\n#EXTINF:x,\nseg.ts\n").is_err());
    }

    #[test]
    fn master_lists_variants() {
        let mut v = Variant {
            bandwidth: 3_000_000,
            average_bandwidth: None,
            codecs: None,
            width: 1280,
            height: 720,
            frame_rate: Some(30.0),
            uri: "720p/index.m3u8".into(),
        };
        let m = master_playlist(std::slice::from_ref(&v));
        assert!(m.contains(
            "BANDWIDTH=3000000,RESOLUTION=1280x720,FRAME-RATE=30.000\n720p/index.m3u8\n"
        ));
        v.average_bandwidth = Some(1_500_000);
        v.codecs = Some("avc1.64001f,mp4a.40.2".into());
        let m = master_playlist(&[v]);
        assert!(m.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=1500000,\
             CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\n"
        ));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = std::env::temp_dir().join(format!("sl-hls-pl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("index.m3u8");
        write_atomically(&p, "one").unwrap();
        write_atomically(&p, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert!(!dir.join("index.m3u8.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
