"""The Reader and Writer against the specification: the golden stream field by field,
byte-exact re-encoding, every pixel format and metadata type, unknown kinds, and bad input."""

from __future__ import annotations

import io
import os
import random
import struct
from fractions import Fraction

import numpy as np
import pytest

import streamlib
from streamlib import codec
from conftest import GOLDEN, encode


def read_all(data: bytes) -> list:
    return list(streamlib.Reader(io.BytesIO(data)))


# --- the golden stream --------------------------------------------------------------------


def test_golden_stream_decodes_field_by_field():
    data = GOLDEN.read_bytes()
    assert len(data) == 391
    reader = streamlib.Reader(io.BytesIO(data))
    msgs = list(reader)
    assert reader.finished
    assert [type(m).__name__ for m in msgs] == ["StreamInfo", "StreamInfo", "VideoFrame", "AudioChunk", "End"]

    video_info, audio_info, frame, chunk, end = msgs
    assert video_info.stream == 0 and video_info.kind == "video"
    assert video_info.source_id == "cam0"
    assert video_info.time_base == Fraction(1, 30)
    assert (video_info.format, video_info.width, video_info.height) == ("rgba", 2, 2)
    assert video_info.fps == Fraction(30, 1)
    assert video_info.colour == 0 and video_info.extradata == b"" and video_info.metadata == {}

    assert audio_info.stream == 1 and audio_info.kind == "audio"
    assert audio_info.source_id == "mic" and audio_info.time_base == Fraction(1, 8000)
    assert (audio_info.sample_format, audio_info.planar, audio_info.channels, audio_info.sample_rate) == (
        "s16", False, 1, 8000)

    assert frame.stream == 0 and frame.keyframe
    assert (frame.frame_number, frame.pts, frame.time_base, frame.duration) == (0, 0, Fraction(1, 30), 1)
    assert frame.capture_time == 1_700_000_000_000_000_000
    assert frame.capture_seconds == 1_700_000_000.0
    assert frame.ptp_time is None
    assert frame.source_id == "cam0"
    assert frame.time == 0 and frame.seconds == 0.0
    assert frame.metadata == {"detections": [streamlib.Box(0.0, 0.0, 1.0, 1.0, 0.5, 0, "red")]}
    assert frame.metadata["detections"][0].label == "red"
    assert (frame.format, frame.width, frame.height, frame.colour, frame.strides) == ("rgba", 2, 2, 0, [8])
    assert frame.image.shape == (2, 2, 4) and frame.image.dtype == np.uint8
    assert frame.image.tolist() == [[[255, 0, 0, 255], [0, 255, 0, 255]], [[0, 0, 255, 255], [255, 255, 255, 255]]]

    assert chunk.stream == 1 and chunk.keyframe and chunk.source_id == "mic"
    assert (chunk.frame_number, chunk.pts, chunk.time_base) == (0, 0, Fraction(1, 8000))
    assert chunk.capture_time is None and chunk.metadata == {}
    assert (chunk.sample_format, chunk.planar, chunk.channels, chunk.sample_rate, chunk.samples) == (
        "s16", False, 1, 8000, 2)
    assert chunk.array.dtype == np.int16 and chunk.array.tolist() == [[1], [-1]]

    assert end == streamlib.End(1)


def test_golden_stream_rewrites_byte_for_byte():
    data = GOLDEN.read_bytes()
    assert encode(read_all(data)) == data


def test_image_is_a_view_of_the_payload():
    data = GOLDEN.read_bytes()
    frame = read_all(data)[2]
    img = frame.image
    assert not img.flags.owndata and img.base is not None
    img[0, 0] = [1, 2, 3, 4]  # writes through to the payload that is written out
    assert bytes(frame.data[:4]) == b"\x01\x02\x03\x04"


# --- every pixel format and metadata type, Python to Python ---------------------------------


def planes_for(fmt: str, w: int, h: int, seed: int):
    rng = np.random.default_rng(seed)
    if fmt in ("rgba", "bgra", "rgb24", "gray8"):
        c = {"rgba": 4, "bgra": 4, "rgb24": 3, "gray8": 1}[fmt]
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    cw, ch = (w + 1) // 2, (h + 1) // 2
    y = rng.integers(0, 256, (h, w), dtype=np.uint8)
    if fmt == "i420":
        return (y, rng.integers(0, 256, (ch, cw), dtype=np.uint8), rng.integers(0, 256, (ch, cw), dtype=np.uint8))
    return (y, rng.integers(0, 256, (ch, cw, 2), dtype=np.uint8))


ALL_METADATA = {
    "flag": True,
    "off": False,
    "count": -(1 << 63),
    "big": (1 << 63) - 1,
    "ratio": 0.1,
    "nan": float("inf"),
    "name": "caméra ✓",
    "blob": b"\x00\xff\x10",
    "boxes": [streamlib.Box(1.5, 2.5, 30, 40, 0.9, 3, "person"), streamlib.Box(0, 0, 1, 1)],
    "none": [],
}


@pytest.mark.parametrize("fmt", list(streamlib.PIXEL_FORMATS))
def test_every_pixel_format_round_trips(fmt):
    w, h = 7, 5  # odd: chroma planes round up
    image = planes_for(fmt, w, h, 1)
    frame = streamlib.VideoFrame(image, fmt, frame_number=9, pts=900, time_base=Fraction(1, 90000),
                                 duration=3000, capture_time=-5, ptp_time=123, source_id="s",
                                 metadata=dict(ALL_METADATA), stream=3)
    data = encode([frame])
    (back,) = read_all(data)
    assert (back.format, back.width, back.height, back.stream) == (fmt, w, h, 3)
    assert (back.frame_number, back.pts, back.time_base, back.duration) == (9, 900, Fraction(1, 90000), 3000)
    assert (back.capture_time, back.ptp_time, back.source_id) == (-5, 123, "s")
    assert back.time == Fraction(1, 100)
    got = back.image
    if isinstance(image, tuple):
        assert len(got) == len(image) and all(np.array_equal(a, b) for a, b in zip(got, image))
    else:
        assert np.array_equal(got if got.shape == image.shape else got[..., 0], image)
    assert back.metadata.keys() == ALL_METADATA.keys()
    for k, v in ALL_METADATA.items():
        if k == "boxes":
            assert back.metadata[k] == [streamlib.Box(1.5, 2.5, 30.0, 40.0, pytest.approx(0.9), 3, "person"),
                                        streamlib.Box(0.0, 0.0, 1.0, 1.0, 1.0, -1, "")]
        else:
            assert back.metadata[k] == v and type(back.metadata[k]) is type(v)
    assert encode([back]) == data


def test_padded_strides_are_honoured():
    # a 3x2 rgb24 frame with 16-byte strides (9 bytes of pixels, 7 of padding per row)
    pixels = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    payload = bytearray(32)
    payload[0:9] = pixels[0].tobytes()
    payload[16:25] = pixels[1].tobytes()
    msg = bytearray(16)
    codec._timing(msg, streamlib.DataMessage())
    msg += struct.pack("<HIIBBI", 3, 3, 2, 0, 1, 16)
    codec.PREFIX.pack_into(msg, 0, codec.VIDEO, 1, 0, len(msg) - 16, 32)
    data = codec.STREAM_HEADER + bytes(msg) + bytes(payload) + bytes(encode([])[16:])
    (frame,) = read_all(data)
    assert frame.strides == [16] and frame.image.strides == (16, 3, 1)
    assert np.array_equal(frame.image, pixels)
    assert encode([frame]) == data  # padding and all, written back as it came


def test_audio_data_and_packet_messages_round_trip():
    msgs = [
        streamlib.StreamInfo.audio("f32", 2, 48000, planar=True, stream=1, source_id="mic"),
        streamlib.AudioChunk(np.array([[0.5, -0.5, 1.0], [0.0, 0.25, -1.0]], np.float32), 48000,
                             planar=True, stream=1, pts=1024, time_base=Fraction(1, 48000)),
        streamlib.AudioChunk(np.array([[1, 2], [3, 4]], np.int16), 8000, stream=2),
        streamlib.DataMessage(b"opaque", metadata={"scene": "goal"}, stream=4, keyframe=False),
        streamlib.Packet(b"\xff\xd8\xff\xe0jpeg", "jpeg", 64, 48, stream=5, keyframe=False),
        streamlib.StreamInfo.video("h264", 1920, 1080, Fraction(30000, 1001), extradata=b"\0\0\0\1sps",
                                   metadata={"title": "t"}, stream=5),
        streamlib.StreamInfo("data", stream=4),
        streamlib.End(4),
    ]
    data = encode(msgs)
    back = read_all(data)
    assert back[1].array.tolist() == [[0.5, -0.5, 1.0], [0.0, 0.25, -1.0]] and back[1].planar
    assert back[2].array.tolist() == [[1, 2], [3, 4]] and back[2].sample_format == "s16"
    assert bytes(back[3].data) == b"opaque" and back[3].metadata == {"scene": "goal"} and not back[3].keyframe
    assert bytes(back[4].data).startswith(b"\xff\xd8") and back[4].codec == "jpeg" and not back[4].keyframe
    assert back[5].fps == Fraction(30000, 1001) and back[5].extradata == b"\0\0\0\1sps"
    assert back[5].format == "h264" and back[6].kind == "data" and back[7] == streamlib.End(4)
    assert encode(back) == data


def test_unknown_kinds_and_metadata_types_survive_read_then_write():
    frame = streamlib.VideoFrame(np.zeros((2, 2, 4), np.uint8), metadata={"future": streamlib.UnknownValue(77, b"xyz")})
    body = encode([frame])[16:-16]
    unknown = bytearray(16) + b"hdr"
    codec.PREFIX.pack_into(unknown, 0, 0x42, 0x80, 9, 3, 5)
    data = codec.STREAM_HEADER + bytes(unknown) + b"12345" + body + encode([])[16:]
    msgs = read_all(data)
    assert isinstance(msgs[0], streamlib.Unknown)
    assert (msgs[0].kind, msgs[0].flags, msgs[0].stream, msgs[0].header, msgs[0].payload) == (0x42, 0x80, 9, b"hdr", b"12345")
    assert msgs[1].metadata == {"future": streamlib.UnknownValue(77, b"xyz")}
    assert encode(msgs) == data


# --- reading: clean end, truncation, garbage ------------------------------------------------


def test_clean_end_and_truncation_are_told_apart():
    data = GOLDEN.read_bytes()
    assert len(read_all(data)) == 5  # a clean end: iteration just stops
    r = streamlib.Reader(io.BytesIO(data))
    for _ in range(5):
        assert r.read() is not None
    assert r.read() is None and r.finished and r.read() is None
    # cut anywhere, even at a message boundary: an error, never a clean end
    for cut in range(16, len(data)):
        with pytest.raises(streamlib.TruncatedStream):
            read_all(data[:cut])
    with pytest.raises(streamlib.TruncatedStream, match="no end-of-stream"):
        read_all(data[:-16])


def test_short_reads_are_handled():
    class Trickle(io.RawIOBase):
        """Gives at most 3 bytes per read, like a slow pipe."""

        def __init__(self, data):
            self.data, self.pos = data, 0

        def readable(self):
            return True

        def readinto(self, b):
            n = min(3, len(b), len(self.data) - self.pos)
            b[:n] = self.data[self.pos:self.pos + n]
            self.pos += n
            return n

    data = GOLDEN.read_bytes()
    assert encode(list(streamlib.Reader(Trickle(data)))) == data


@pytest.mark.parametrize("data,error,words", [
    (b"", streamlib.EmptyStream, "empty"),
    (b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1\nFRAME\n", streamlib.NotAStream, "y4m"),
    (b"\0\0\0\x20ftypisom" + bytes(20), streamlib.NotAStream, "MP4"),
    (b"hello world, this is text\n", streamlib.NotAStream, "text"),
    (bytes([0xde, 0xad, 0xbe, 0xef] * 10), streamlib.NotAStream, "de ad be ef"),
    (b"\x89SLV\r\n", streamlib.TruncatedStream, "stream header"),
    (b"\x89SLV\r\n\x1a\n\x02\x00" + bytes(6), streamlib.UnsupportedVersion, "version 2"),
])
def test_foreign_input_is_named(data, error, words):
    with pytest.raises(error, match=words):
        read_all(data)


def test_bounds_are_checked_before_allocating():
    big_header = bytearray(16)
    codec.PREFIX.pack_into(big_header, 0, codec.DATA, 0, 0, (16 << 20) + 1, 0)
    with pytest.raises(streamlib.TooLarge, match="message header"):
        read_all(codec.STREAM_HEADER + bytes(big_header))
    big_payload = bytearray(16)
    codec.PREFIX.pack_into(big_payload, 0, codec.DATA, 0, 0, 0, (1280 << 20) + 1)
    with pytest.raises(streamlib.TooLarge, match="payload"):
        read_all(codec.STREAM_HEADER + bytes(big_payload))
    # a payload as large as allowed, on an input that ends at once: truncated, not out of memory
    huge = bytearray(16)
    codec.PREFIX.pack_into(huge, 0, 0x50, 0, 0, 0, 1280 << 20)  # an unknown kind
    with pytest.raises(streamlib.TruncatedStream, match="1 of its 1342177280 payload bytes"):
        read_all(codec.STREAM_HEADER + bytes(huge) + bytes(1))
    # a box count no header could hold
    frame = streamlib.DataMessage(metadata={"b": [streamlib.Box(0, 0, 1, 1)]})
    data = bytearray(encode([frame]))
    at = data.index(b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # count 1 then x = 0.0
    data[at:at + 4] = struct.pack("<I", 1_000_000)
    with pytest.raises(streamlib.MalformedStream, match="1000000 boxes"):
        read_all(bytes(data))


def test_payload_sizes_must_match_headers():
    data = bytearray(GOLDEN.read_bytes())
    data[0x74 + 8] = 15  # the video frame's payload length: 16 -> 15
    with pytest.raises(streamlib.MalformedStream, match="16-byte payload, prefix says 15"):
        read_all(bytes(data))


def test_garbage_never_escapes_as_anything_but_a_stream_error():
    data = GOLDEN.read_bytes()
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(16, len(mutated))] = rng.randrange(256)
        try:
            read_all(bytes(mutated))
        except streamlib.StreamError:
            pass
    # every kind and metadata type, mutated (and decoded all the way to arrays)
    rich = encode([
        streamlib.StreamInfo.video("nv12", 6, 4, 25, metadata=dict(ALL_METADATA)),
        streamlib.StreamInfo.audio("f32", 2, 48000, stream=1),
        streamlib.VideoFrame(planes_for("nv12", 6, 4, 3), "nv12", metadata=dict(ALL_METADATA)),
        streamlib.AudioChunk(np.zeros((4, 2), np.float32), 48000, stream=1, metadata={"a": 1}),
        streamlib.Packet(b"\0\0\0\1e", "h264", 6, 4, stream=2),
        streamlib.DataMessage(b"x", stream=3, metadata={"u": streamlib.UnknownValue(9, b"?")}),
    ])
    for _ in range(3000):
        mutated = bytearray(rich)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(16, len(mutated))] = rng.randrange(256)
        try:
            for m in read_all(bytes(mutated)):
                if isinstance(m, streamlib.VideoFrame):
                    m.planes
                elif isinstance(m, streamlib.AudioChunk):
                    m.array
        except streamlib.StreamError:
            pass
    for _ in range(300):
        noise = codec.STREAM_HEADER + bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        with pytest.raises(streamlib.StreamError):
            read_all(noise)


# --- buffers and writes ---------------------------------------------------------------------


def stream_of(n: int, w: int = 64, h: int = 32) -> bytes:
    return encode(streamlib.VideoFrame(np.full((h, w, 4), i, np.uint8), frame_number=i) for i in range(n))


def test_payload_buffers_are_reused_only_when_nothing_holds_them():
    kept = []
    reused = set()
    for frame in streamlib.Reader(io.BytesIO(stream_of(12))).frames():
        base = frame.image.base
        reused.add(id(base))
        if frame.frame_number % 3 == 0:
            kept.append(frame.image)  # a view: its buffer must never be overwritten
    for i, img in zip(range(0, 12, 3), kept):
        assert (img == i).all(), "a kept frame was overwritten by a later one"
    assert len(reused) < 12, "dropped frames' buffers were never reused"


def test_writer_finishes_on_clean_exit_only():
    out = io.BytesIO()
    with streamlib.Writer(out) as w:
        w.write(streamlib.End(0))
    assert out.getvalue().endswith(codec.PREFIX.pack(codec.END, 0, 0xFFFF, 0, 0))
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with streamlib.Writer(out) as w:
            raise RuntimeError("boom")
    with pytest.raises(streamlib.TruncatedStream):
        read_all(out.getvalue())


def test_writev_short_writes_are_continued(monkeypatch, tmp_path):
    real = os.writev

    def stingy(fd, bufs):  # as a signal or a full pipe can do: a few bytes at a time
        first = bytes(memoryview(bufs[0]).cast("B")[:1000])
        return real(fd, [first])

    monkeypatch.setattr(os, "writev", stingy)
    path = tmp_path / "out.slv"
    data = stream_of(3, 100, 50)
    with open(path, "wb") as f:
        w = streamlib.Writer(f)
        for m in read_all(data):
            w.write(m)
        w.finish()
    assert path.read_bytes() == data


def test_frames_built_from_arrays_validate_their_pixels():
    with pytest.raises(ValueError, match="dtype float64"):
        streamlib.VideoFrame(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="plane 1"):
        streamlib.VideoFrame((np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((2, 2), np.uint8)), "i420")
    with pytest.raises(ValueError, match="guess"):
        streamlib.VideoFrame(np.zeros((2, 2, 5), np.uint8))
    f = streamlib.VideoFrame(np.zeros((4, 6), np.uint8))
    assert (f.format, f.width, f.height, f.colour) == ("gray8", 6, 4, 2)
    # a non-contiguous view (every other column) is packed on the way out
    wide = np.arange(4 * 8 * 3, dtype=np.uint8).reshape(4, 8, 3)
    g = streamlib.VideoFrame(wide[:, ::2], "rgb24")
    (back,) = read_all(encode([g]))
    assert np.array_equal(back.image, wide[:, ::2])
