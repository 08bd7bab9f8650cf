//! Naming what a non-streamlib input looks like, for a useful error message.

/// A short description of what `head` (the first bytes of an input) looks like.
pub fn describe_foreign(head: &[u8]) -> String {
    let starts = |m: &[u8]| head.starts_with(m);
    let what = if starts(b"YUV4MPEG2") {
        "a YUV4MPEG2 (y4m) video stream"
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        "an MP4/MOV file"
    } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        "a Matroska/WebM file"
    } else if starts(b"nut/multimedia container") {
        "a NUT file"
    } else if starts(b"FLV") {
        "an FLV file"
    } else if starts(b"RIFF") {
        "a RIFF (WAV/AVI) file"
    } else if starts(b"\x89PNG") {
        "a PNG image"
    } else if starts(&[0xFF, 0xD8, 0xFF]) {
        "a JPEG image"
    } else if starts(b"#EXTM3U") {
        "an HLS/M3U playlist"
    } else if starts(b"OggS") {
        "an Ogg file"
    } else if head.first() == Some(&0x47) && (head.len() < 189 || head[188] == 0x47) {
        "an MPEG transport stream"
    } else if starts(&[0, 0, 0, 1]) || starts(&[0, 0, 1]) {
        "an H.264/H.265 elementary stream"
    } else if head.starts_with(&crate::MAGIC[..4]) {
        "a damaged streamlib stream header"
    } else if !head.is_empty() && head.iter().all(|b| b.is_ascii_whitespace()) {
        // `echo | sl-draw x.rhai`: nothing but a line break came in
        return format!(
            "blank text ({} byte{} of whitespace: {}, as `echo` writes), not frames",
            head.len(),
            if head.len() == 1 { "" } else { "s" },
            hex(head)
        );
    } else if !head.is_empty()
        && head
            .iter()
            .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return format!("text ({})", quote(head));
    } else {
        return format!("unknown binary data (first bytes: {})", hex(head));
    };
    what.to_string()
}

fn quote(head: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(&head[..head.len().min(24)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("starting `{}`", s.trim_end())
}

fn hex(head: &[u8]) -> String {
    head.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_common_inputs() {
        assert!(describe_foreign(b"YUV4MPEG2 W64 H48 F25:1").contains("y4m"));
        assert!(describe_foreign(b"\0\0\0\x20ftypisom").contains("MP4"));
        assert!(describe_foreign(b"hello world\n").contains("text"));
        let blank = describe_foreign(b"\n");
        assert!(
            blank.contains("blank text (1 byte of whitespace: 0a"),
            "{blank}"
        );
        assert!(describe_foreign(&[0xde, 0xad, 0xbe, 0xef]).contains("de ad be ef"));
    }
}
