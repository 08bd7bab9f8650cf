//! Round trips, golden vectors and hostile input for the wire format.

use std::io::Cursor;

use proptest::prelude::*;
use sl_frame::{
    AudioChunk, BBox, ColorInfo, FrameInfo, Metadata, Packet, PixelFormat, Rational, SampleFormat,
    Value, VideoCodec, VideoFrame,
};
use sl_wire::{
    ALL_STREAMS, AudioParams, DataMessage, Limits, Message, PlaneRef, Reader, StreamInfo,
    StreamKind, UnknownMessage, WireError, Writer,
};

/// The stream that `tests/data/golden-v1.slv` holds and docs/wire-format.md walks through.
fn golden_messages() -> Vec<Message> {
    let mut video = StreamInfo::raw_video(PixelFormat::Rgba, 2, 2, Rational::new(30, 1));
    video.source_id = "cam0".into();
    let mut frame = VideoFrame::from_packed(
        PixelFormat::Rgba,
        2,
        2,
        vec![
            255, 0, 0, 255, 0, 255, 0, 255, //
            0, 0, 255, 255, 255, 255, 255, 255,
        ],
    )
    .unwrap();
    frame.info.frame_number = 0;
    frame.info.pts = 0;
    frame.info.time_base = Rational::new(1, 30);
    frame.info.duration = 1;
    frame.info.capture_time_ns = Some(1_700_000_000_000_000_000);
    frame.info.source_id = "cam0".into();
    frame.info.metadata.insert(
        "detections",
        vec![BBox {
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
            score: 0.5,
            class_id: 0,
            label: "red".into(),
        }],
    );
    let audio = StreamInfo {
        kind: StreamKind::Audio(AudioParams {
            format: SampleFormat::S16,
            planar: false,
            channels: 1,
            sample_rate: 8000,
        }),
        source_id: "mic".into(),
        time_base: Rational::new(1, 8000),
        extradata: vec![],
        metadata: Metadata::new(),
    };
    let mut chunk =
        AudioChunk::new(SampleFormat::S16, 8000, 1, false, 2, vec![1, 0, 255, 255]).unwrap();
    chunk.info.time_base = Rational::new(1, 8000);
    chunk.info.source_id = "mic".into();
    vec![
        Message::Stream {
            stream: 0,
            info: video,
        },
        Message::Stream {
            stream: 1,
            info: audio,
        },
        Message::Video { stream: 0, frame },
        Message::Audio { stream: 1, chunk },
        Message::End { stream: 1 },
        Message::End {
            stream: ALL_STREAMS,
        },
    ]
}

fn encode(messages: &[Message]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).unwrap();
    for m in messages {
        w.write_message(m).unwrap();
    }
    w.get_ref().clone()
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut r = Reader::new(Cursor::new(bytes))?;
    let mut out = Vec::new();
    while let Some(m) = r.next_message()? {
        out.push(m);
    }
    Ok(out)
}

fn golden_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/golden-v1.slv")
}

#[test]
fn golden_vector_matches_the_encoder_and_decodes() {
    let bytes = encode(&golden_messages());
    if std::env::var_os("SL_BLESS").is_some() {
        std::fs::write(golden_path(), &bytes).unwrap();
    }
    let golden =
        std::fs::read(golden_path()).expect("tests/data/golden-v1.slv (SL_BLESS=1 to make it)");
    assert_eq!(
        bytes, golden,
        "the encoder no longer produces the committed golden bytes"
    );
    assert_eq!(decode_all(&golden).unwrap(), golden_messages());
    // the first bytes are exactly what docs/wire-format.md shows
    assert_eq!(
        &golden[..16],
        b"\x89SLV\r\n\x1a\n\x01\x00\x00\x00\x00\x00\x00\x00"
    );
}

#[test]
fn every_message_kind_round_trips() {
    let mut msgs = golden_messages();
    let end = msgs.pop().unwrap();
    let mut f = VideoFrame::from_parts(
        PixelFormat::I420,
        5,
        3,
        &[8, 3, 4],
        vec![7; 8 * 3 + 3 * 2 + 4 * 2],
    )
    .unwrap();
    f.color = ColorInfo::BT709_LIMITED;
    f.info.ptp_time_ns = Some(-5);
    f.info.metadata = [
        ("s", Value::from("x")),
        ("b", Value::from(true)),
        ("f", Value::from(1.5)),
        ("i", Value::from(-3i64)),
    ]
    .into_iter()
    .collect();
    f.info.metadata.insert("raw", vec![0u8, 1, 2]);
    msgs.push(Message::Video {
        stream: 0,
        frame: f,
    });
    let mut p = Packet {
        info: Default::default(),
        codec: VideoCodec::H264,
        width: 1920,
        height: 1080,
        data: vec![0, 0, 0, 1, 0x65],
    };
    p.info.keyframe = false;
    msgs.push(Message::Packet {
        stream: 2,
        packet: p,
    });
    msgs.push(Message::Data {
        stream: 3,
        data: DataMessage {
            info: Default::default(),
            payload: b"hello".to_vec(),
        },
    });
    msgs.push(Message::Stream {
        stream: 3,
        info: StreamInfo {
            kind: StreamKind::Data,
            source_id: String::new(),
            time_base: Rational::MICROS,
            extradata: vec![1, 2],
            metadata: Metadata::new(),
        },
    });
    msgs.push(end);
    assert_eq!(decode_all(&encode(&msgs)).unwrap(), msgs);
}

#[test]
fn raw_pass_through_is_byte_identical() {
    let bytes = encode(&golden_messages());
    let mut r = Reader::new(Cursor::new(&bytes)).unwrap();
    let mut w = Writer::new(Vec::new()).unwrap();
    while let Some(raw) = r.next_raw().unwrap() {
        w.write_raw(&raw).unwrap();
    }
    assert_eq!(w.get_ref(), &bytes);
}

#[test]
fn owned_payloads_read_the_same_bytes_and_notice_truncation() {
    let (bytes, _) = with_unknown_kind();
    let mut r = Reader::new(Cursor::new(&bytes)).unwrap();
    let mut out = bytes[..16].to_vec();
    let mut lens = Vec::new();
    let mut ended = false;
    while let Some(raw) = r.next_raw_into(|len| vec![0xAAu8; len]).unwrap() {
        lens.push(raw.payload.len());
        out.extend_from_slice(raw.prefix_and_header);
        out.extend_from_slice(&raw.payload);
        ended = raw.is_end_of_all();
    }
    assert!(ended);
    assert_eq!(
        out, bytes,
        "the owned payloads rebuild the stream byte for byte"
    );
    assert!(lens.contains(&5), "the unknown kind's payload: {lens:?}");
    // cut inside the video frame's payload: an error naming how much arrived
    let cut = bytes.len() - 16 - 16 - 2;
    let mut r = Reader::new(Cursor::new(&bytes[..cut])).unwrap();
    let err = loop {
        match r.next_raw_into(|len| vec![0u8; len]) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("a truncated stream read as a clean end"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, WireError::Truncated(_)), "{err}");
    assert!(err.to_string().contains("payload bytes arrived"), "{err}");
}

/// The golden stream with a message of a kind this version does not know (0x7f, stream 3,
/// flags 0x80, a 3-byte header and a 5-byte payload) after the stream descriptions.
fn with_unknown_kind() -> (Vec<u8>, UnknownMessage) {
    let mut bytes = encode(&golden_messages()[..2]);
    bytes.extend_from_slice(&[0x7f, 0x80, 3, 0, 3, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[1, 2, 3, 9, 9, 9, 9, 9]);
    let mut tail = encode(&golden_messages()[2..]);
    bytes.extend_from_slice(&tail.split_off(16));
    let unknown = UnknownMessage {
        kind: 0x7f,
        flags: 0x80,
        stream: 3,
        header: vec![1, 2, 3],
        payload: vec![9; 5],
    };
    (bytes, unknown)
}

#[test]
fn unknown_kinds_are_kept_and_written_back_unchanged() {
    let (bytes, unknown) = with_unknown_kind();
    let got = decode_all(&bytes).unwrap();
    let mut expected = golden_messages();
    expected.insert(2, Message::Unknown(unknown));
    assert_eq!(got, expected);
    assert_eq!(got[2].kind(), None);
    assert_eq!(got[2].kind_code(), 0x7f);
    // decoded and encoded again: byte for byte the same stream
    assert_eq!(encode(&got), bytes);
    // and through the raw pass-through path
    let mut r = Reader::new(Cursor::new(&bytes)).unwrap();
    let mut w = Writer::new(Vec::new()).unwrap();
    while let Some(raw) = r.next_raw().unwrap() {
        w.write_raw(&raw).unwrap();
    }
    assert_eq!(w.get_ref(), &bytes);
    // Debug shows lengths, not bytes
    let shown = format!("{:?}", got[2]);
    assert!(shown.contains("<5 bytes>"), "{shown}");
}

#[test]
fn single_messages_round_trip_through_byte_buffers() {
    let (bytes, unknown) = with_unknown_kind();
    let mut expected = golden_messages();
    expected.insert(2, Message::Unknown(unknown));
    let mut buf = bytes::BytesMut::new();
    sl_wire::encode_stream_header(&mut buf);
    for m in &expected {
        let before = buf.len();
        m.encode(&mut buf).unwrap();
        assert_eq!(buf.len() - before, m.encoded_len().unwrap());
    }
    // the same bytes as the io writer's
    assert_eq!(&buf[..], &bytes[..]);
    let mut b = buf.freeze();
    sl_wire::decode_stream_header(&mut b).unwrap();
    let mut got = Vec::new();
    while !b.is_empty() {
        assert_eq!(
            sl_wire::message_len(&b),
            Some(expected[got.len()].encoded_len().unwrap() as u64)
        );
        got.push(Message::decode(&mut b).unwrap());
    }
    assert_eq!(got, expected);
    assert_eq!(got.last().map(Message::is_end_of_all), Some(true));
}

#[test]
fn a_short_buffer_is_a_typed_error_that_consumes_nothing() {
    let m = &golden_messages()[2];
    let mut whole = Vec::new();
    m.encode(&mut whole).unwrap();
    for cut in 0..whole.len() {
        let mut b = &whole[..cut];
        match Message::decode(&mut b) {
            Err(WireError::Short { needed }) => {
                // before the prefix is whole, only the prefix's missing bytes are known
                let expected = if cut < 16 {
                    16 - cut
                } else {
                    whole.len() - cut
                };
                assert_eq!(needed as usize, expected, "cut at {cut}");
                assert_eq!(b.len(), cut, "nothing consumed at cut {cut}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // bounds are checked before allocating, as for the io reader
    let mut huge = vec![5u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    huge.extend_from_slice(&[0; 64]);
    let err = Message::decode(&mut &huge[..]).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
    assert!(matches!(
        sl_wire::decode_stream_header(&mut &b"YUV4MPEG2 W2 H2 F30:1"[..]),
        Err(WireError::NotAStream(_))
    ));
}

#[test]
fn too_long_strings_are_an_error_not_a_cut() {
    let long = "x".repeat(70_000);
    let mut info = StreamInfo::raw_video(PixelFormat::Gray8, 2, 2, Rational::new(30, 1));
    info.source_id = long.clone();
    let mut w = Writer::new(Vec::new()).unwrap();
    let err = w.write_stream_info(0, &info).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::TooLong {
                len: 70_000,
                max: 65_535,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("source id"), "{err}");
    assert_eq!(
        w.get_ref().len(),
        16,
        "nothing but the stream header was written"
    );

    let mut frame = VideoFrame::new(PixelFormat::Gray8, 2, 2).unwrap();
    frame.info.metadata.insert(long.clone(), 1i64);
    let err = w.write_video(0, &frame).unwrap_err();
    assert!(err.to_string().contains("metadata key"), "{err}");
    frame.info.metadata = Metadata::new();
    frame.info.metadata.insert(
        "boxes",
        vec![BBox {
            label: long.clone(),
            ..BBox::default()
        }],
    );
    let err = Message::Video { stream: 0, frame }
        .encode(&mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("box label"), "{err}");
    assert_eq!(w.get_ref().len(), 16);
    // a string value may be long: its length is a u32
    let mut frame = VideoFrame::new(PixelFormat::Gray8, 2, 2).unwrap();
    frame.info.metadata.insert("text", long);
    w.write_video(0, &frame).unwrap();
}

#[test]
fn truncation_is_not_a_clean_end() {
    let bytes = encode(&golden_messages());
    // without the final end-of-stream message (16 bytes): truncated at a message boundary
    let err = decode_all(&bytes[..bytes.len() - 16]).unwrap_err();
    assert!(matches!(err, WireError::Truncated(_)), "{err}");
    assert!(err.to_string().contains("no end-of-stream"), "{err}");
    // cut anywhere: an error, never a clean end
    for cut in 0..bytes.len() {
        let r = decode_all(&bytes[..cut]);
        assert!(r.is_err(), "cut at {cut} read as a clean stream");
    }
}

#[test]
fn foreign_input_is_named() {
    let err = decode_all(b"YUV4MPEG2 W320 H240 F30:1 Ip A1:1 C420jpeg\nFRAME\n").unwrap_err();
    assert!(err.to_string().contains("y4m"), "{err}");
    assert!(err.to_string().contains("sl-file"), "{err}");
    assert!(matches!(decode_all(b"").unwrap_err(), WireError::Empty));
    let mut v2 = encode(&[]);
    v2[8] = 2;
    assert!(matches!(
        decode_all(&v2).unwrap_err(),
        WireError::UnsupportedVersion(2)
    ));
}

#[test]
fn lengths_are_bounded_before_allocation() {
    let mut bytes = encode(&[]);
    // a data message claiming a 1 TiB payload
    bytes.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    let err = decode_all(&bytes).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
    // a raw frame whose payload disagrees with its header
    let mut bytes = encode(&golden_messages()[..3]);
    let video_at = bytes.len() - (16 + 4) - 16 - golden_header_len(&golden_messages()[2]);
    bytes[video_at + 8] += 1;
    let err = decode_all(&bytes).unwrap_err();
    assert!(err.to_string().contains("payload"), "{err}");
}

fn golden_header_len(m: &Message) -> usize {
    let all = encode(std::slice::from_ref(m));
    all.len() - 16 - 16 - 16
}

/// Decode arbitrary bytes with tight limits; returns the outcome without panicking.
fn decode_hostile(bytes: &[u8]) -> Result<usize, WireError> {
    let limits = Limits {
        max_header: 4096,
        max_payload: 1 << 20,
    };
    let mut r = Reader::with_limits(Cursor::new(bytes), limits)?;
    let mut n = 0;
    while r.next_message()?.is_some() {
        n += 1;
    }
    Ok(n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(decode_hostile(&bytes).is_err());
    }

    #[test]
    fn random_messages_after_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = encode(&[]);
        bytes.extend_from_slice(&body);
        // without a valid end-of-stream this can only be an error
        let _ = decode_hostile(&bytes);
    }

    #[test]
    fn mutated_golden_streams_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&golden_messages());
        for (i, b) in &flips {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        // (a flip can forge an early end-of-stream, so a cut stream may legitimately read as
        // complete here; truncation itself is covered by truncation_is_not_a_clean_end)
        let cut = cut.index(bytes.len() + 1);
        if let Err(e) = decode_hostile(&bytes[..cut]) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn frames_written_from_foreign_planes_arrive_packed() {
    // an i420 frame whose planes live apart, with padded rows, as a decoder holds them
    let (w, h) = (1000u32, 6u32); // 6000 + 2 * 1500 bytes; chroma 500 wide
    let y_stride = 1024;
    let c_stride = 512;
    let y: Vec<u8> = (0..y_stride * h as usize)
        .map(|i| (i % 253) as u8)
        .collect();
    let u: Vec<u8> = (0..c_stride * 3).map(|i| (i % 7) as u8).collect();
    let v: Vec<u8> = (0..c_stride * 3).map(|i| (i % 11) as u8).collect();
    let info = FrameInfo {
        frame_number: 7,
        pts: 7,
        ..FrameInfo::default()
    };
    let color = ColorInfo::default_for(PixelFormat::I420);
    let planes = [
        PlaneRef {
            data: &y,
            stride: y_stride,
        },
        PlaneRef {
            data: &u,
            stride: c_stride,
        },
        PlaneRef {
            data: &v,
            stride: c_stride,
        },
    ];
    let mut out = Vec::new();
    let mut wr = Writer::new(&mut out).unwrap();
    wr.write_video_planes(3, &info, PixelFormat::I420, w, h, color, &planes)
        .unwrap();
    // more rows than one writev takes (1024 buffers): a gray8 plane of 1500 padded rows
    let tall: Vec<u8> = (0..16 * 1500).map(|i| (i / 16) as u8).collect();
    wr.write_video_planes(
        4,
        &info,
        PixelFormat::Gray8,
        10,
        1500,
        ColorInfo::default_for(PixelFormat::Gray8),
        &[PlaneRef {
            data: &tall,
            stride: 16,
        }],
    )
    .unwrap();
    // a plane too short for its rows is refused, and nothing is written
    let before = wr.bytes_written();
    let short = PlaneRef {
        data: &y[..100],
        stride: y_stride,
    };
    assert!(
        wr.write_video_planes(
            3,
            &info,
            PixelFormat::I420,
            w,
            h,
            color,
            &[short, planes[1], planes[2]]
        )
        .is_err()
    );
    assert_eq!(wr.bytes_written(), before);
    wr.finish().unwrap();
    drop(wr);

    let got = decode_all(&out).unwrap();
    let frames: Vec<_> = got
        .iter()
        .filter_map(|m| match m {
            Message::Video { stream, frame } => Some((*stream, frame)),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 2);
    let (s, f) = frames[0];
    assert_eq!(s, 3);
    assert!(f.is_packed());
    assert_eq!(f.info.frame_number, 7);
    for row in 0..h as usize {
        assert_eq!(f.row(0, row), &y[row * y_stride..][..w as usize]);
    }
    for row in 0..3 {
        assert_eq!(f.row(1, row), &u[row * c_stride..][..500]);
        assert_eq!(f.row(2, row), &v[row * c_stride..][..500]);
    }
    let (s, f) = frames[1];
    assert_eq!(s, 4);
    for row in 0..1500 {
        assert_eq!(f.row(0, row), &tall[row * 16..][..10]);
    }
}
