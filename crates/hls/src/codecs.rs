//! RFC 6381 codec strings for the master playlist's `CODECS` attribute, from what the
//! encoders actually made ([`sl_media::Encoded`]): the H.264 SPS in the encoder's global
//! header for `avc1.PPCCLL`, the AAC profile (or AudioSpecificConfig) for `mp4a.40.N`.
//!
//! Contract: a string is returned only when it is known to be right; an encoder or stream
//! this module cannot describe gives `None`, and the caller leaves `CODECS` out (RFC 8216
//! 4.3.4.2 allows that; a wrong value would make players refuse a stream they could play).

use sl_media::Encoded;

/// `avc1.PPCCLL` (profile_idc, constraint flags, level_idc in lowercase hex) for an H.264
/// stream, from the first SPS in its global header.
pub fn video(enc: &Encoded) -> Option<String> {
    if enc.codec != "h264" {
        return None;
    }
    let (profile, constraints, level) = h264_sps_fields(&enc.extradata)?;
    Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
}

/// `mp4a.40.N` for AAC (N the MPEG-4 audio object type: 2 for AAC-LC, 5 for HE-AAC, 29 for
/// HE-AAC v2), `mp4a.40.34` for MP3, `ac-3`, `ec-3`.
pub fn audio(enc: &Encoded) -> Option<String> {
    match enc.codec.as_str() {
        "aac" => {
            // FF_PROFILE_AAC_* are the object type minus one
            let from_profile = enc
                .profile
                .filter(|p| matches!(p, 0..=4 | 22 | 28 | 38))
                .map(|p| p as u32 + 1);
            let aot = from_profile.or_else(|| aac_object_type(&enc.extradata))?;
            Some(format!("mp4a.40.{aot}"))
        }
        "mp3" => Some("mp4a.40.34".into()),
        "ac3" => Some("ac-3".into()),
        "eac3" => Some("ec-3".into()),
        _ => None,
    }
}

/// The `CODECS` value for a rendition: video, then audio, comma-separated; `None` if any
/// stream in it cannot be described (a partial list would be wrong).
pub fn codecs(video_enc: Option<&Encoded>, audio_enc: Option<&Encoded>) -> Option<String> {
    let mut list = Vec::new();
    if let Some(v) = video_enc {
        list.push(video(v)?);
    }
    if let Some(a) = audio_enc {
        list.push(audio(a)?);
    }
    (!list.is_empty()).then(|| list.join(","))
}

/// profile_idc, the constraint-set flags byte and level_idc of the first SPS in H.264
/// extradata, in either layout encoders write: Annex B (start codes, libx264 with a global
/// header) or an avcC record (first byte 1).
fn h264_sps_fields(extradata: &[u8]) -> Option<(u8, u8, u8)> {
    if extradata.first() == Some(&1) && extradata.len() >= 4 {
        // avcC: configurationVersion, AVCProfileIndication, profile_compatibility,
        // AVCLevelIndication
        return Some((extradata[1], extradata[2], extradata[3]));
    }
    for nal in annex_b_units(extradata) {
        if nal.first().map(|b| b & 0x1f) == Some(7) {
            let rbsp = unescape(&nal[1..], 3);
            if rbsp.len() == 3 {
                return Some((rbsp[0], rbsp[1], rbsp[2]));
            }
        }
    }
    None
}

/// The NAL units of an Annex B byte stream (between `00 00 01` / `00 00 00 01` start codes).
fn annex_b_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // back over the start code and the zero byte of a four-byte one
            let mut e = s - 3;
            while e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| s < e)
        .map(move |(s, e)| &data[s..e])
}

/// The first `n` bytes of a NAL payload with emulation-prevention bytes (`00 00 03`)
/// removed.
fn unescape(payload: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut zeros = 0;
    for &b in payload {
        if out.len() == n {
            break;
        }
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The audio object type of an AudioSpecificConfig (5 bits; 31 escapes to 32 + 6 bits).
fn aac_object_type(asc: &[u8]) -> Option<u32> {
    let first = *asc.first()? as u32;
    let aot = first >> 3;
    if aot != 31 {
        return (aot != 0).then_some(aot);
    }
    let second = *asc.get(1)? as u32;
    Some(32 + (((first & 0x07) << 3) | (second >> 5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(codec: &str, profile: Option<i32>, extradata: &[u8]) -> Encoded {
        Encoded {
            codec: codec.into(),
            profile,
            extradata: extradata.to_vec(),
        }
    }

    #[test]
    fn avc1_from_annex_b_sps() {
        // what libx264 writes with a global header: SPS (High, level 3.1) then PPS
        let x264 = [
            0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0, 0, 0, 1, 0x68, 0xeb,
            0xe3, 0xcb, 0x22, 0xc0,
        ];
        assert_eq!(
            video(&enc("h264", Some(100), &x264)).as_deref(),
            Some("avc1.64001f")
        );
        // three-byte start code, constrained baseline 3.0, an SEI first
        let cb = [
            0, 0, 1, 0x06, 0x05, 0x01, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0x95,
        ];
        assert_eq!(
            video(&enc("h264", None, &cb)).as_deref(),
            Some("avc1.42c01e")
        );
    }

    #[test]
    fn avc1_from_avcc_and_escaped_sps() {
        let avcc = [1, 0x4d, 0x40, 0x28, 0xff, 0xe1];
        assert_eq!(
            video(&enc("h264", None, &avcc)).as_deref(),
            Some("avc1.4d4028")
        );
        // profile 66, no constraint flags, then 00 00 03 before level 1 (emulation prevention)
        let escaped = [0, 0, 0, 1, 0x67, 0x00, 0x00, 0x03, 0x0a, 0x11];
        assert_eq!(
            video(&enc("h264", None, &escaped)).as_deref(),
            Some("avc1.00000a")
        );
    }

    #[test]
    fn no_guessing() {
        assert_eq!(video(&enc("h264", Some(100), &[])), None);
        assert_eq!(video(&enc("h264", None, &[0, 0, 1, 0x68, 0xeb])), None);
        assert_eq!(video(&enc("hevc", Some(1), &[0, 0, 1, 0x40])), None);
        assert_eq!(audio(&enc("opus", None, &[])), None);
        assert_eq!(
            codecs(
                Some(&enc("hevc", None, &[])),
                Some(&enc("aac", Some(1), &[]))
            ),
            None
        );
    }

    #[test]
    fn mp4a_from_profile_or_config() {
        assert_eq!(
            audio(&enc("aac", Some(1), &[])).as_deref(),
            Some("mp4a.40.2")
        );
        assert_eq!(
            audio(&enc("aac", Some(4), &[])).as_deref(),
            Some("mp4a.40.5")
        );
        assert_eq!(
            audio(&enc("aac", Some(28), &[])).as_deref(),
            Some("mp4a.40.29")
        );
        // profile unknown: the AudioSpecificConfig says LC (object type 2, 48 kHz, stereo)
        assert_eq!(
            audio(&enc("aac", None, &[0x11, 0x90])).as_deref(),
            Some("mp4a.40.2")
        );
        assert_eq!(aac_object_type(&[0xf8, 0x20]), Some(33));
        assert_eq!(audio(&enc("aac", None, &[])), None);
    }

    #[test]
    fn video_then_audio() {
        let v = enc("h264", None, &[0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e]);
        let a = enc("aac", Some(1), &[]);
        assert_eq!(
            codecs(Some(&v), Some(&a)).as_deref(),
            Some("avc1.4d401e,mp4a.40.2")
        );
        assert_eq!(codecs(Some(&v), None).as_deref(), Some("avc1.4d401e"));
        assert_eq!(codecs(None, None), None);
    }
}
