"""Message headers to and from bytes, field by field as docs/wire-format.md lays them out.

Decoding never trusts a length: every string, metadata value and box count is checked against
the bytes left in the header first, so hostile input gives a :class:`MalformedStream`.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import MalformedStream
from .messages import (
    CODEC_BY_CODE,
    CODECS,
    MAX_CHANNELS,
    MAX_DIMENSION,
    MAX_SAMPLE_RATE,
    MAX_SAMPLES_PER_CHUNK,
    PIXEL_FORMAT_BY_CODE,
    PIXEL_FORMATS,
    SAMPLE_FORMAT_BY_CODE,
    SAMPLE_FORMATS,
    AudioChunk,
    Box,
    DataMessage,
    End,
    Packet,
    StreamInfo,
    Unknown,
    UnknownValue,
    VideoFrame,
    plane_dims,
)

MAGIC = b"\x89SLV\r\n\x1a\n"
VERSION = 1
STREAM_HEADER = MAGIC + struct.pack("<HHI", VERSION, 0, 0)
PREFIX_LEN = 16

STREAM_INFO, VIDEO, PACKET, AUDIO, DATA, END = 1, 2, 3, 4, 5, 6
KEYFRAME = 1
KIND_NAMES = {STREAM_INFO: "stream-info", VIDEO: "video", PACKET: "packet", AUDIO: "audio",
              DATA: "data", END: "end"}

PREFIX = struct.Struct("<BBHIQ")
# frame_number, pts, time base (num, den), duration, presence, capture time, PTP time
TIMING = struct.Struct("<QqIIqBqq")
_U8, _U16, _U32 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<I")
_I64, _F64 = struct.Struct("<q"), struct.Struct("<d")
_BOX = struct.Struct("<fffffi")  # x, y, w, h, score, class_id (then the label)
_VIDEO_TAIL = struct.Struct("<HIIBB")  # format, width, height, colour, plane count
_PACKET_TAIL = struct.Struct("<HII")
_AUDIO_TAIL = struct.Struct("<BBHII")  # format, planar, channels, rate, samples
_RATIONAL = struct.Struct("<II")

META_BOOL, META_INT, META_FLOAT, META_STR, META_BYTES, META_BOXES = 1, 2, 3, 4, 5, 6


# --- decoding ---------------------------------------------------------------------------


class _Dec:
    """A cursor over one message header; a short header is a MalformedStream, never an IndexError."""

    __slots__ = ("buf", "pos", "kind")

    def __init__(self, buf: bytes, kind: str) -> None:
        self.buf, self.pos, self.kind = buf, 0, kind

    def err(self, why: str) -> MalformedStream:
        return MalformedStream(self.kind, why)

    def need(self, n: int, what: str) -> None:
        if len(self.buf) - self.pos < n:
            raise self.err(
                f"header ends inside {what} (needs {n} bytes at offset {self.pos}, "
                f"header is {len(self.buf)} bytes)"
            )

    def unpack(self, s: struct.Struct, what: str) -> Tuple[Any, ...]:
        self.need(s.size, what)
        v = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def take(self, n: int, what: str) -> bytes:
        self.need(n, what)
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(b)

    def str(self, what: str) -> str:
        (n,) = self.unpack(_U16, what)
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.err(f"{what} is not UTF-8") from None

    def rational(self, what: str) -> Tuple[int, int]:
        return self.unpack(_RATIONAL, what)

    def timing(self, stream: int, keyframe: bool) -> Dict[str, Any]:
        fn, pts, tbn, tbd, duration, presence, capture, ptp = self.unpack(TIMING, "frame timing")
        if tbn == 0 or tbd == 0:
            raise self.err(f"time base {tbn}/{tbd} has a zero term")
        return {
            "stream": stream,
            "frame_number": fn,
            "pts": pts,
            "time_base": (tbn, tbd),
            "duration": duration,
            "capture_time": capture if presence & 1 else None,
            "ptp_time": ptp if presence & 2 else None,
            "source_id": self.str("source id"),
            "keyframe": keyframe,
            "metadata": self.metadata(),
        }

    def metadata(self) -> Dict[str, Any]:
        (count,) = self.unpack(_U16, "metadata count")
        m: Dict[str, Any] = {}
        for _ in range(count):
            key = self.str("metadata key")
            (ty,) = self.unpack(_U8, "metadata type")
            (n,) = self.unpack(_U32, "metadata value length")
            body = self.take(n, "metadata value")
            d = _Dec(body, self.kind)
            if ty == META_BOOL:
                value: Any = d.unpack(_U8, "bool")[0] != 0
            elif ty == META_INT:
                value = d.unpack(_I64, "int")[0]
            elif ty == META_FLOAT:
                value = d.unpack(_F64, "float")[0]
            elif ty == META_STR:
                try:
                    value = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise self.err(f"metadata `{key}` is not UTF-8") from None
            elif ty == META_BYTES:
                value = body
            elif ty == META_BOXES:
                (count_boxes,) = d.unpack(_U32, "box count")
                # each box takes at least 26 bytes: a count past that is a lie, not an allocation
                if count_boxes > len(body) // 26:
                    raise self.err(f"metadata `{key}`: {count_boxes} boxes in {n} bytes")
                boxes = []
                for _ in range(count_boxes):
                    x, y, w, h, score, cls = d.unpack(_BOX, "box")
                    boxes.append(Box(x, y, w, h, score, cls, d.str("box label")))
                value = boxes
            else:
                # unknown types are skipped by Rust readers; keep them so they pass through
                value = UnknownValue(ty, body)
            m[key] = value
        return m


def _check_dims(d: _Dec, width: int, height: int) -> None:
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise d.err(f"frame size {width}x{height}: width and height must be 1..=16384")


def decode_head(kind: int, flags: int, stream: int, header: bytes) -> Tuple[Any, Optional[int]]:
    """Decode a message header. Returns the message (its payload not yet attached) and the
    exact payload length its header implies, or None where any length is allowed."""
    keyframe = bool(flags & KEYFRAME)
    if kind == VIDEO:
        d = _Dec(header, "video")
        timing = d.timing(stream, keyframe)
        code, width, height, colour, planes = d.unpack(_VIDEO_TAIL, "video header")
        fmt = PIXEL_FORMAT_BY_CODE.get(code)
        if fmt is None:
            raise d.err(f"unknown pixel format code {code}")
        if planes != PIXEL_FORMATS[fmt][1]:
            raise d.err(f"{fmt} has {PIXEL_FORMATS[fmt][1]} planes, header says {planes}")
        strides = list(d.unpack(struct.Struct(f"<{planes}I"), "stride"))
        _check_dims(d, width, height)
        total = 0
        for p, (stride, (row, rows)) in enumerate(zip(strides, plane_dims(fmt, width, height))):
            # the same bound as the reference reader: no real layout pads a row past 4x
            if stride < row or stride > row * 4 + 4096:
                raise d.err(
                    f"invalid frame: {fmt} {width}x{height} plane {p}: stride {stride} "
                    f"(the row is {row} bytes)"
                )
            total += stride * rows
        frame = VideoFrame._from_payload(fmt, width, height, colour, strides, None)
        frame._init_timing(**timing)
        return frame, total
    if kind == AUDIO:
        d = _Dec(header, "audio")
        timing = d.timing(stream, keyframe)
        code, planar, channels, rate, samples = d.unpack(_AUDIO_TAIL, "audio header")
        fmt = SAMPLE_FORMAT_BY_CODE.get(code)
        if fmt is None:
            raise d.err(f"unknown sample format code {code}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise d.err(f"{channels} channels (must be 1..={MAX_CHANNELS})")
        if not 1 <= rate <= MAX_SAMPLE_RATE:
            raise d.err(f"sample rate {rate} (must be 1..={MAX_SAMPLE_RATE})")
        if samples > MAX_SAMPLES_PER_CHUNK:
            raise d.err(f"{samples} samples (at most {MAX_SAMPLES_PER_CHUNK})")
        chunk = AudioChunk._from_payload(fmt, planar != 0, channels, rate, samples, None)
        chunk._init_timing(**timing)
        size = np.dtype(SAMPLE_FORMATS[fmt][1]).itemsize
        return chunk, size * channels * samples
    if kind == STREAM_INFO:
        return _decode_stream_info(_Dec(header, "stream-info"), stream), 0
    if kind == PACKET:
        d = _Dec(header, "packet")
        timing = d.timing(stream, keyframe)
        code, width, height = d.unpack(_PACKET_TAIL, "packet header")
        codec = CODEC_BY_CODE.get(code)
        if codec is None:
            raise d.err(f"unknown codec code {code:#x}")
        p = Packet.__new__(Packet)
        p.codec, p.width, p.height, p.data = codec, width, height, None
        p._init_timing(**timing)
        return p, None
    if kind == DATA:
        m = DataMessage.__new__(DataMessage)
        m._init_timing(**_Dec(header, "data").timing(stream, keyframe))
        m.data = None
        return m, None
    if kind == END:
        return End(stream), 0
    return Unknown(kind, flags, stream, bytes(header), None), None


def _decode_stream_info(d: _Dec, stream: int) -> StreamInfo:
    (k,) = d.unpack(_U8, "stream kind")
    source_id = d.str("source id")
    tb = d.rational("time base")
    if tb[0] == 0 or tb[1] == 0:
        raise d.err(f"time base {tb[0]}/{tb[1]} has a zero term")
    info = StreamInfo.__new__(StreamInfo)
    info.stream, info.source_id, info._tb = stream, source_id, tb
    info.format, info.width, info.height, info._fps, info.colour = None, 0, 0, (0, 0), 0
    info.sample_format, info.planar, info.channels, info.sample_rate = None, False, 0, 0
    if k == 1:
        info.kind = "video"
        (code,) = d.unpack(_U16, "video format")
        fmt = PIXEL_FORMAT_BY_CODE.get(code) or CODEC_BY_CODE.get(code)
        if fmt is None:
            raise d.err(f"unknown video format code {code:#x}")
        info.format = fmt
        info.width, info.height = d.unpack(struct.Struct("<II"), "video size")
        info._fps = d.rational("frame rate")
        (info.colour,) = d.unpack(_U8, "colour")
    elif k == 2:
        info.kind = "audio"
        code, planar, info.channels, info.sample_rate = d.unpack(struct.Struct("<BBHI"), "audio format")
        fmt = SAMPLE_FORMAT_BY_CODE.get(code)
        if fmt is None:
            raise d.err(f"unknown sample format code {code}")
        info.sample_format, info.planar = fmt, planar != 0
    elif k == 3:
        info.kind = "data"
    else:
        raise d.err(f"unknown stream kind {k}")
    (n,) = d.unpack(_U32, "extradata")
    info.extradata = d.take(n, "extradata")
    info.metadata = d.metadata()
    return info


# --- encoding ---------------------------------------------------------------------------


def _str(out: bytearray, s: str, what: str) -> None:
    b = s.encode("utf-8")
    if len(b) > 0xFFFF:
        raise ValueError(f"{what} is {len(b)} bytes of UTF-8: the wire allows 65535")
    out += _U16.pack(len(b))
    out += b


def encode_metadata(out: bytearray, metadata: Dict[str, Any]) -> None:
    if len(metadata) > 0xFFFF:
        raise ValueError(f"{len(metadata)} metadata entries: the wire allows 65535")
    out += _U16.pack(len(metadata))
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"metadata key {key!r} is not a string")
        _str(out, key, "a metadata key")
        ty, body = _metadata_value(key, value)
        out += _U8.pack(ty)
        out += _U32.pack(len(body))
        out += body


def _metadata_value(key: str, v: Any) -> Tuple[int, bytes]:
    if isinstance(v, (bool, np.bool_)):
        return META_BOOL, _U8.pack(1 if v else 0)
    if isinstance(v, (int, np.integer)):
        if not -(1 << 63) <= int(v) < 1 << 63:
            raise ValueError(f"metadata `{key}`: {v} does not fit a signed 64-bit integer")
        return META_INT, _I64.pack(int(v))
    if isinstance(v, (float, np.floating)):
        return META_FLOAT, _F64.pack(float(v))
    if isinstance(v, str):
        return META_STR, v.encode("utf-8")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return META_BYTES, bytes(v)
    if isinstance(v, UnknownValue):
        return int(v.type), bytes(v.data)
    if isinstance(v, (list, tuple)):
        body = bytearray(_U32.pack(len(v)))
        for b in v:
            b = b if isinstance(b, Box) else Box(*b)
            body += _BOX.pack(b.x, b.y, b.w, b.h, b.score, int(b.class_id))
            _str(body, str(b.label), "a box label")
        return META_BOXES, bytes(body)
    raise ValueError(
        f"metadata `{key}` is a {type(v).__name__}: values are bool, int, float, str, bytes "
        "or a list of streamlib.Box"
    )


def _timing(out: bytearray, m: Any) -> None:
    presence = (m.capture_time is not None) | ((m.ptp_time is not None) << 1)
    out += TIMING.pack(
        m.frame_number, m.pts, m._tb[0], m._tb[1], m.duration, presence,
        m.capture_time or 0, m.ptp_time or 0,
    )
    _str(out, m.source_id, "the source id")
    encode_metadata(out, m.metadata)


def encode_stream_info(info: StreamInfo) -> bytes:
    out = bytearray()
    if info.kind == "video":
        out += _U8.pack(1)
        _str(out, info.source_id, "the source id")
        out += _RATIONAL.pack(*info._tb)
        code = PIXEL_FORMATS[info.format][0] if info.format in PIXEL_FORMATS else CODECS[info.format]
        out += struct.pack("<HII", code, info.width, info.height)
        out += _RATIONAL.pack(*info._fps)
        out += _U8.pack(info.colour)
    elif info.kind == "audio":
        out += _U8.pack(2)
        _str(out, info.source_id, "the source id")
        out += _RATIONAL.pack(*info._tb)
        out += struct.pack("<BBHI", SAMPLE_FORMATS[info.sample_format][0], int(info.planar),
                           info.channels, info.sample_rate)
    else:
        out += _U8.pack(3)
        _str(out, info.source_id, "the source id")
        out += _RATIONAL.pack(*info._tb)
    out += _U32.pack(len(info.extradata))
    out += info.extradata
    encode_metadata(out, info.metadata)
    return bytes(out)


def encode(msg: Any) -> Tuple[bytearray, List[Any], int]:
    """The prefix and header of ``msg`` in one buffer, its payload as a list of buffers, and
    the payload's length."""
    out = bytearray(PREFIX_LEN)
    flags = 0
    if isinstance(msg, VideoFrame):
        kind, flags = VIDEO, KEYFRAME
        _timing(out, msg)
        out += _VIDEO_TAIL.pack(PIXEL_FORMATS[msg.format][0], msg.width, msg.height, msg.colour,
                                len(msg._strides))
        out += struct.pack(f"<{len(msg._strides)}I", *msg._strides)
        parts = msg.payload_parts()
        length = msg.payload_len
    elif isinstance(msg, AudioChunk):
        kind, flags = AUDIO, KEYFRAME
        _timing(out, msg)
        out += _AUDIO_TAIL.pack(SAMPLE_FORMATS[msg.sample_format][0], int(msg.planar),
                                msg.channels, msg.sample_rate, msg.samples)
        parts = [msg.data]
        length = _nbytes(msg.data)
        expected = np.dtype(SAMPLE_FORMATS[msg.sample_format][1]).itemsize * msg.channels * msg.samples
        if length != expected:
            raise ValueError(f"audio payload is {length} bytes, its header implies {expected}")
    elif isinstance(msg, Packet):
        kind = PACKET
        flags = KEYFRAME if msg.keyframe else 0
        _timing(out, msg)
        out += _PACKET_TAIL.pack(CODECS[msg.codec], msg.width, msg.height)
        parts, length = [msg.data], _nbytes(msg.data)
    elif isinstance(msg, DataMessage):
        kind = DATA
        flags = KEYFRAME if msg.keyframe else 0
        _timing(out, msg)
        data = msg.data if msg.data is not None else b""
        parts, length = [data], _nbytes(data)
    elif isinstance(msg, StreamInfo):
        kind = STREAM_INFO
        out += encode_stream_info(msg)
        parts, length = [], 0
    elif isinstance(msg, End):
        kind, parts, length = END, [], 0
    elif isinstance(msg, Unknown):
        kind, flags = msg.kind, msg.flags
        out += msg.header
        payload = msg.payload if msg.payload is not None else b""
        parts, length = [payload], _nbytes(payload)
    else:
        raise TypeError(f"cannot write a {type(msg).__name__}: write streamlib messages")
    PREFIX.pack_into(out, 0, kind, flags, msg.stream, len(out) - PREFIX_LEN, length)
    return out, parts, length


def _nbytes(b: Any) -> int:
    return memoryview(b).nbytes
