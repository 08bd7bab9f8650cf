//! Hostile metadata: a header that declares more entries than the bound is refused with an
//! error naming it, and duplicate keys (up to the bound) are resolved in one pass.

use std::io::Cursor;

use sl_frame::{Metadata, Value};
use sl_wire::{Message, Reader, WireError, Writer};

/// A DATA message (kind 5, stream 0) whose timing block carries `count` metadata entries,
/// each an int under `key(i)`, followed by the final END.
fn stream_with_metadata(count: usize, key: impl Fn(usize) -> String) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&0u64.to_le_bytes()); // frame number
    header.extend_from_slice(&0i64.to_le_bytes()); // pts
    header.extend_from_slice(&1u32.to_le_bytes()); // time base 1/30
    header.extend_from_slice(&30u32.to_le_bytes());
    header.extend_from_slice(&1i64.to_le_bytes()); // duration
    header.push(0); // presence
    header.extend_from_slice(&[0; 16]); // capture and PTP times
    header.extend_from_slice(&0u16.to_le_bytes()); // source id ""
    header.extend_from_slice(&(count as u16).to_le_bytes());
    for i in 0..count {
        let k = key(i);
        header.extend_from_slice(&(k.len() as u16).to_le_bytes());
        header.extend_from_slice(k.as_bytes());
        header.push(2); // int
        header.extend_from_slice(&8u32.to_le_bytes());
        header.extend_from_slice(&(i as i64).to_le_bytes());
    }
    let mut bytes = Writer::new(Vec::new()).unwrap().get_ref().clone();
    bytes.push(5); // DATA
    bytes.push(0);
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&[6, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

fn first_message(bytes: &[u8]) -> Result<Option<Message>, WireError> {
    Reader::new(Cursor::new(bytes)).unwrap().next_message()
}

#[test]
fn more_entries_than_the_bound_are_refused() {
    // the repro: 65,535 distinct keys of ~250 bytes (a 16 MB header)
    let bytes = stream_with_metadata(65_535, |i| format!("{i:0>240}"));
    assert!(bytes.len() > 16_000_000);
    let err = first_message(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("65535 metadata entries") && err.contains("at most 1024"),
        "{err}"
    );
}

#[test]
fn entries_up_to_the_bound_decode_and_duplicates_collapse() {
    let n = Metadata::MAX_ENTRIES;
    let bytes = stream_with_metadata(n, |i| format!("key{i}"));
    let Some(Message::Data { data, .. }) = first_message(&bytes).unwrap() else {
        panic!("expected a DATA message");
    };
    assert_eq!(data.info.metadata.len(), n);
    assert_eq!(data.info.metadata.get("key7"), Some(&Value::Int(7)));

    // the same long key 1024 times: one entry, the last value
    let long = "k".repeat(15_000);
    let bytes = stream_with_metadata(n, |_| long.clone());
    let Some(Message::Data { data, .. }) = first_message(&bytes).unwrap() else {
        panic!("expected a DATA message");
    };
    assert_eq!(data.info.metadata.len(), 1);
    assert_eq!(
        data.info.metadata.get(&long),
        Some(&Value::Int(n as i64 - 1))
    );
}

#[test]
fn a_writer_refuses_more_than_the_bound() {
    let mut f = sl_frame::VideoFrame::new(sl_frame::PixelFormat::Gray8, 2, 2).unwrap();
    f.info.metadata = (0..Metadata::MAX_ENTRIES as i64)
        .map(|i| (format!("k{i}"), i))
        .collect();
    let mut w = Writer::new(Vec::new()).unwrap();
    w.write_video(0, &f).unwrap();
    f.info.metadata.insert("one too many", 1i64);
    let err = w.write_video(0, &f).unwrap_err().to_string();
    assert!(err.contains("1025") && err.contains("1024"), "{err}");
    w.finish().unwrap();
    let bytes = w.get_ref().clone();
    let Some(Message::Video { frame, .. }) = first_message(&bytes).unwrap() else {
        panic!("expected a VIDEO message");
    };
    assert_eq!(frame.info.metadata.len(), Metadata::MAX_ENTRIES);
}
