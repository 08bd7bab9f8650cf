"""The messages a stream carries, as Python objects (docs/wire-format.md §2-§7).

A :class:`VideoFrame` read from a stream keeps its payload as it arrived (one numpy byte
array) and hands out views of it: ``frame.image`` is an ``(H, W, C)`` array for packed formats
and a tuple of plane arrays for YUV, with the payload's row strides, so nothing is copied.
Writing such a frame sends that payload as it is. Assigning ``frame.image`` (or building a
frame from arrays) replaces the planes; they are written from the arrays given.
"""

from __future__ import annotations

from collections import namedtuple
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

#: Pixel formats: name -> (wire code, plane count).
PIXEL_FORMATS: Dict[str, Tuple[int, int]] = {
    "rgba": (1, 1),
    "bgra": (2, 1),
    "rgb24": (3, 1),
    "gray8": (4, 1),
    "i420": (5, 3),
    "nv12": (6, 2),
}
PIXEL_FORMAT_BY_CODE = {code: name for name, (code, _) in PIXEL_FORMATS.items()}
#: Bytes per pixel of the packed formats (their one plane is ``(H, W, C)``).
PACKED_CHANNELS = {"rgba": 4, "bgra": 4, "rgb24": 3, "gray8": 1}

#: Compressed video codecs (PACKET messages and coded video streams).
CODECS = {"h264": 0x100, "jpeg": 0x101}
CODEC_BY_CODE = {code: name for name, code in CODECS.items()}

#: Audio sample formats: name -> (wire code, numpy dtype).
SAMPLE_FORMATS: Dict[str, Tuple[int, str]] = {
    "u8": (1, "u1"),
    "s16": (2, "<i2"),
    "s32": (3, "<i4"),
    "f32": (4, "<f4"),
    "f64": (5, "<f8"),
}
SAMPLE_FORMAT_BY_CODE = {code: name for name, (code, _) in SAMPLE_FORMATS.items()}
_SAMPLE_FORMAT_BY_DTYPE = {("u", 1): "u8", ("i", 2): "s16", ("i", 4): "s32", ("f", 4): "f32", ("f", 8): "f64"}

MAX_DIMENSION = 16384
MAX_CHANNELS = 64
MAX_SAMPLE_RATE = 768_000
MAX_SAMPLES_PER_CHUNK = 7_680_000
ALL_STREAMS = 0xFFFF

#: Colour byte (§5.1): bit 0 BT.709 matrix, bit 1 full range.
COLOUR_BT709 = 1
COLOUR_FULL_RANGE = 2

Box = namedtuple("Box", "x y w h score class_id label", defaults=(1.0, -1, ""))
Box.__doc__ = """A detection box in pixels of its frame: top-left corner ``x, y``, size ``w, h``,
``score``, ``class_id`` (-1 for none) and ``label``. Metadata of type 6 is a list of these."""

UnknownValue = namedtuple("UnknownValue", "type data")
UnknownValue.__doc__ = """A metadata value of a type this library does not know (kept as its
type code and raw bytes, so it survives a read-then-write unchanged)."""


def plane_dims(format: str, width: int, height: int) -> List[Tuple[int, int]]:
    """``(row_bytes, rows)`` of each plane of a ``format`` frame of ``width`` x ``height``."""
    if format in PACKED_CHANNELS:
        return [(PACKED_CHANNELS[format] * width, height)]
    cw, ch = (width + 1) // 2, (height + 1) // 2
    if format == "i420":
        return [(width, height), (cw, ch), (cw, ch)]
    if format == "nv12":
        return [(width, height), (2 * cw, ch)]
    raise ValueError(f"unknown pixel format {format!r} (one of {', '.join(PIXEL_FORMATS)})")


def _plane_shape(format: str, plane: int, width: int, height: int) -> Tuple[int, ...]:
    if format in PACKED_CHANNELS:
        return (height, width, PACKED_CHANNELS[format])
    if plane == 0:
        return (height, width)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return (ch, cw) if format == "i420" else (ch, cw, 2)


def _check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise ValueError(f"frame size {width}x{height}: width and height must be 1..=16384")


def default_colour(format: str) -> int:
    """The colour byte streamlib writes for a format: gray8 is full range, the rest BT.601 limited."""
    return COLOUR_FULL_RANGE if format == "gray8" else 0


def _rational(value: Any, what: str) -> Tuple[int, int]:
    """A wire rational from a Fraction, an int, a float or a ``(num, den)`` pair."""
    if isinstance(value, tuple):
        num, den = value
    else:
        f = value if isinstance(value, Fraction) else Fraction(value).limit_denominator(1 << 31)
        num, den = f.numerator, f.denominator
    if not (0 <= num < 1 << 32 and 0 <= den < 1 << 32):
        raise ValueError(f"{what} {num}/{den} does not fit the wire's unsigned 32-bit terms")
    return int(num), int(den)


class _Timed:
    """Timing and metadata every frame-carrying message has (§3)."""

    __slots__ = (
        "stream",
        "frame_number",
        "pts",
        "_tb",
        "duration",
        "capture_time",
        "ptp_time",
        "source_id",
        "keyframe",
        "metadata",
    )

    def _init_timing(
        self,
        stream: int = 0,
        frame_number: int = 0,
        pts: int = 0,
        time_base: Any = Fraction(1, 1_000_000),
        duration: int = 0,
        capture_time: Optional[int] = None,
        ptp_time: Optional[int] = None,
        source_id: str = "",
        keyframe: bool = True,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.stream = stream
        self.frame_number = frame_number
        self.pts = pts
        self.time_base = time_base
        self.duration = duration
        self.capture_time = capture_time
        self.ptp_time = ptp_time
        self.source_id = source_id
        self.keyframe = keyframe
        self.metadata = {} if metadata is None else metadata

    @property
    def time_base(self) -> Fraction:
        """Units of ``pts`` and ``duration``, in seconds."""
        return Fraction(*self._tb)

    @time_base.setter
    def time_base(self, value: Any) -> None:
        num, den = _rational(value, "time base")
        if num == 0 or den == 0:
            raise ValueError(f"time base {num}/{den} has a zero term")
        self._tb = (num, den)

    @property
    def time(self) -> Fraction:
        """The presentation time in seconds, exactly (``pts * time_base``)."""
        return self.pts * Fraction(*self._tb)

    @property
    def seconds(self) -> float:
        """The presentation time in seconds, as a float."""
        return self.pts * self._tb[0] / self._tb[1]

    @property
    def capture_seconds(self) -> Optional[float]:
        """The wall-clock capture time as Unix seconds (``capture_time`` is in ns), or None."""
        return None if self.capture_time is None else self.capture_time / 1e9

    def timing(self) -> Dict[str, Any]:
        """The timing fields as keyword arguments, to build another message with the same timing."""
        return {
            "stream": self.stream,
            "frame_number": self.frame_number,
            "pts": self.pts,
            "time_base": self._tb,
            "duration": self.duration,
            "capture_time": self.capture_time,
            "ptp_time": self.ptp_time,
            "source_id": self.source_id,
            "keyframe": self.keyframe,
            "metadata": dict(self.metadata),
        }

    def _timing_repr(self) -> str:
        return f"stream={self.stream} #{self.frame_number} pts={self.pts}@{self._tb[0]}/{self._tb[1]}"


class VideoFrame(_Timed):
    """A raw video frame (VIDEO message).

    ``VideoFrame(image, "rgba", pts=3, time_base=Fraction(1, 30))`` builds one from an array
    (or a tuple of plane arrays for ``i420``/``nv12``); the format is guessed from a packed
    image's channel count when omitted (4: rgba, 3: rgb24, 1 or 2-D: gray8).
    """

    __slots__ = ("format", "width", "height", "colour", "_data", "_strides", "_planes", "_views")

    def __init__(
        self,
        image: Union[np.ndarray, Sequence[np.ndarray]],
        format: Optional[str] = None,
        *,
        colour: Optional[int] = None,
        **timing: Any,
    ) -> None:
        self._init_timing(**timing)
        if format is None:
            format = _guess_format(image)
        if format not in PIXEL_FORMATS:
            raise ValueError(f"unknown pixel format {format!r} (one of {', '.join(PIXEL_FORMATS)})")
        self.format = format
        self.colour = default_colour(format) if colour is None else colour
        self._data = None
        self._strides: List[int] = []
        self._views = None
        self._set_planes(image)

    @classmethod
    def _from_payload(
        cls, format: str, width: int, height: int, colour: int, strides: List[int], data: np.ndarray
    ) -> "VideoFrame":
        f = cls.__new__(cls)
        f.format, f.width, f.height, f.colour = format, width, height, colour
        f._data, f._strides, f._planes, f._views = data, strides, None, None
        return f

    # --- pixels -------------------------------------------------------------------------

    @property
    def planes(self) -> List[np.ndarray]:
        """One array per plane: ``(H, W, C)`` for packed formats; for YUV, ``(H, W)`` luma and
        ``(ceil(H/2), ceil(W/2))`` chroma planes (``(..., 2)`` interleaved UV for nv12).
        Views of the payload when the frame was read: writing to them changes the frame."""
        if self._planes is not None:
            return self._planes
        if self._views is None:
            views, offset = [], 0
            for p, (stride, (_, rows)) in enumerate(
                zip(self._strides, plane_dims(self.format, self.width, self.height))
            ):
                shape = _plane_shape(self.format, p, self.width, self.height)
                steps = (stride, shape[2], 1) if len(shape) == 3 else (stride, 1)
                views.append(
                    np.ndarray(shape, dtype=np.uint8, buffer=self._data, offset=offset, strides=steps)
                )
                offset += stride * rows
            self._views = views
        return self._views

    @property
    def image(self) -> Union[np.ndarray, Tuple[np.ndarray, ...]]:
        """The pixels: one ``(H, W, C)`` array for rgba, bgra, rgb24 and gray8 (C = 1); a tuple
        of planes (Y, U, V) for i420 and (Y, UV) for nv12. See :attr:`planes`."""
        planes = self.planes
        return planes[0] if self.format in PACKED_CHANNELS else tuple(planes)

    @image.setter
    def image(self, image: Union[np.ndarray, Sequence[np.ndarray]]) -> None:
        self._set_planes(image)

    def _set_planes(self, image: Union[np.ndarray, Sequence[np.ndarray]]) -> None:
        fmt = self.format
        if fmt in PACKED_CHANNELS:
            arr = np.asarray(image)
            if arr.ndim == 2 and fmt == "gray8":
                arr = arr[:, :, None]
            planes = [arr]
        else:
            if isinstance(image, np.ndarray):
                raise ValueError(f"a {fmt} image is a tuple of planes, not one array")
            planes = [np.asarray(p) for p in image]
        if len(planes) != PIXEL_FORMATS[fmt][1]:
            raise ValueError(f"{fmt} has {PIXEL_FORMATS[fmt][1]} planes, got {len(planes)}")
        if planes[0].ndim < 2:
            raise ValueError(f"a {fmt} plane must be at least 2-D, got shape {planes[0].shape}")
        height, width = planes[0].shape[:2]
        _check_size(width, height)
        for p, arr in enumerate(planes):
            want = _plane_shape(fmt, p, width, height)
            if arr.shape != want:
                raise ValueError(
                    f"{fmt} plane {p} of a {width}x{height} frame must have shape {want}, "
                    f"got {arr.shape}"
                )
            if arr.dtype != np.uint8:
                raise ValueError(
                    f"{fmt} plane {p} has dtype {arr.dtype}: pixels are uint8 "
                    "(convert with np.clip(a, 0, 255).astype(np.uint8))"
                )
        self.width, self.height = int(width), int(height)
        self._planes, self._data, self._views = planes, None, None
        self._strides = [row for row, _ in plane_dims(fmt, self.width, self.height)]

    @property
    def strides(self) -> List[int]:
        """Bytes from one row to the next, per plane, as written on the wire."""
        return list(self._strides)

    def payload_parts(self) -> List[Any]:
        """The payload as buffers to write back to back (no copy when possible)."""
        if self._planes is None:
            return [self._data]
        parts = []
        for arr in self._planes:
            # A plane whose rows are not contiguous in memory is packed here (the one copy).
            parts.append(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr))
        return parts

    @property
    def payload_len(self) -> int:
        return sum(s * rows for s, (_, rows) in zip(self._strides, plane_dims(self.format, self.width, self.height)))

    @property
    def data(self) -> memoryview:
        """The payload bytes as on the wire (a view when read from a stream, packed otherwise)."""
        parts = self.payload_parts()
        if len(parts) == 1:
            return memoryview(parts[0]).cast("B")
        return memoryview(b"".join(memoryview(p).cast("B") for p in parts))

    def copy(self) -> "VideoFrame":
        """A frame with its own copy of the pixels (and of the metadata dict)."""
        planes = [p.copy() for p in self.planes]
        image = planes[0] if self.format in PACKED_CHANNELS else tuple(planes)
        return VideoFrame(image, self.format, colour=self.colour, **self.timing())

    def __repr__(self) -> str:
        return (
            f"VideoFrame({self.format} {self.width}x{self.height} {self._timing_repr()}"
            f" metadata={sorted(self.metadata)})"
        )


def _guess_format(image: Any) -> str:
    if isinstance(image, np.ndarray):
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            return "gray8"
        if image.ndim == 3 and image.shape[2] in (3, 4):
            return "rgb24" if image.shape[2] == 3 else "rgba"
    raise ValueError(
        "cannot guess the pixel format of this image: pass format= (rgba, bgra, rgb24, gray8, "
        "i420 or nv12)"
    )


class Packet(_Timed):
    """A compressed video frame (PACKET message): ``codec`` is ``"h264"`` or ``"jpeg"``."""

    __slots__ = ("codec", "width", "height", "data")

    def __init__(self, data: Any, codec: str, width: int, height: int, **timing: Any) -> None:
        self._init_timing(**timing)
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r} (one of {', '.join(CODECS)})")
        self.codec, self.width, self.height, self.data = codec, width, height, data

    def __repr__(self) -> str:
        return f"Packet({self.codec} {self.width}x{self.height} {len(memoryview(self.data))} bytes {self._timing_repr()})"


class AudioChunk(_Timed):
    """Raw audio samples (AUDIO message). :attr:`array` is ``(samples, channels)`` when
    interleaved and ``(channels, samples)`` when planar, a view of the payload."""

    __slots__ = ("sample_format", "planar", "channels", "sample_rate", "samples", "data")

    def __init__(
        self,
        array: np.ndarray,
        sample_rate: int,
        *,
        planar: bool = False,
        sample_format: Optional[str] = None,
        **timing: Any,
    ) -> None:
        self._init_timing(**timing)
        arr = np.asarray(array)
        if arr.ndim == 1:
            arr = arr[None, :] if planar else arr[:, None]
        if sample_format is None:
            sample_format = _SAMPLE_FORMAT_BY_DTYPE.get((arr.dtype.kind, arr.dtype.itemsize))
            if sample_format is None:
                raise ValueError(f"audio dtype {arr.dtype}: use uint8, int16, int32, float32 or float64")
        dtype = np.dtype(SAMPLE_FORMATS[sample_format][1])
        arr = np.ascontiguousarray(arr, dtype=dtype)
        channels, samples = (arr.shape[0], arr.shape[1]) if planar else (arr.shape[1], arr.shape[0])
        _check_audio(channels, sample_rate, samples)
        self.sample_format, self.planar, self.channels = sample_format, bool(planar), int(channels)
        self.sample_rate, self.samples, self.data = int(sample_rate), int(samples), arr.reshape(-1).view(np.uint8)

    @classmethod
    def _from_payload(cls, sample_format: str, planar: bool, channels: int, sample_rate: int,
                      samples: int, data: np.ndarray) -> "AudioChunk":
        c = cls.__new__(cls)
        c.sample_format, c.planar, c.channels = sample_format, planar, channels
        c.sample_rate, c.samples, c.data = sample_rate, samples, data
        return c

    @property
    def array(self) -> np.ndarray:
        dtype = np.dtype(SAMPLE_FORMATS[self.sample_format][1])
        flat = np.frombuffer(self.data, dtype=dtype)
        shape = (self.channels, self.samples) if self.planar else (self.samples, self.channels)
        return flat.reshape(shape)

    @property
    def duration_seconds(self) -> float:
        return self.samples / self.sample_rate

    def __repr__(self) -> str:
        layout = "planar" if self.planar else "interleaved"
        return (f"AudioChunk({self.sample_format} {self.sample_rate} Hz {self.channels} ch {layout} "
                f"{self.samples} samples {self._timing_repr()})")


def _check_audio(channels: int, sample_rate: int, samples: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"{channels} audio channels (must be 1..=64)")
    if not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample rate {sample_rate} (must be 1..=768000)")
    if not 0 <= samples <= MAX_SAMPLES_PER_CHUNK:
        raise ValueError(f"{samples} samples per channel (at most 7680000 in one message)")


class DataMessage(_Timed):
    """A metadata-only message (DATA): timing, metadata and optional opaque bytes."""

    __slots__ = ("data",)

    def __init__(self, data: Any = b"", **timing: Any) -> None:
        self._init_timing(**timing)
        self.data = data

    def __repr__(self) -> str:
        return f"DataMessage({self._timing_repr()} metadata={sorted(self.metadata)})"


class StreamInfo:
    """A stream's description (STREAM_INFO): ``kind`` is ``"video"``, ``"audio"`` or ``"data"``.

    Video: ``format`` (a pixel format or a codec name), ``width``, ``height``, ``fps``
    (a Fraction, None when unknown), ``colour``. Audio: ``sample_format``, ``planar``,
    ``channels``, ``sample_rate``. All: ``source_id``, ``time_base``, ``extradata``,
    ``metadata``, and ``stream`` (its index).
    """

    __slots__ = (
        "stream", "kind", "source_id", "_tb", "extradata", "metadata", "format", "width",
        "height", "_fps", "colour", "sample_format", "planar", "channels", "sample_rate",
    )

    def __init__(self, kind: str, *, stream: int = 0, source_id: str = "",
                 time_base: Any = Fraction(1, 1_000_000), extradata: bytes = b"",
                 metadata: Optional[Dict[str, Any]] = None, format: Optional[str] = None,
                 width: int = 0, height: int = 0, fps: Any = None, colour: Optional[int] = None,
                 sample_format: Optional[str] = None, planar: bool = False, channels: int = 0,
                 sample_rate: int = 0) -> None:
        if kind not in ("video", "audio", "data"):
            raise ValueError(f"stream kind {kind!r}: video, audio or data")
        self.kind, self.stream, self.source_id = kind, stream, source_id
        self.time_base = time_base
        self.extradata, self.metadata = bytes(extradata), {} if metadata is None else metadata
        self.format, self.width, self.height, self.fps = format, width, height, fps
        if kind == "video" and format not in PIXEL_FORMATS and format not in CODECS:
            raise ValueError(f"video stream format {format!r}: a pixel format or a codec name")
        self.colour = (default_colour(format) if format in PIXEL_FORMATS else 0) if colour is None else colour
        self.sample_format, self.planar = sample_format, planar
        self.channels, self.sample_rate = channels, sample_rate
        if kind == "audio" and sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"audio sample format {sample_format!r} (one of {', '.join(SAMPLE_FORMATS)})")

    @classmethod
    def video(cls, format: str, width: int, height: int, fps: Any = 30, **kw: Any) -> "StreamInfo":
        """A raw video stream description; its time base defaults to ``1/fps`` (frames count)."""
        if "time_base" not in kw:
            kw["time_base"] = 1 / Fraction(fps) if fps else Fraction(1, 1_000_000)
        return cls("video", format=format, width=width, height=height, fps=fps, **kw)

    @classmethod
    def audio(cls, sample_format: str, channels: int, sample_rate: int, planar: bool = False,
              **kw: Any) -> "StreamInfo":
        kw.setdefault("time_base", Fraction(1, sample_rate))
        return cls("audio", sample_format=sample_format, channels=channels,
                   sample_rate=sample_rate, planar=planar, **kw)

    time_base = _Timed.time_base

    @property
    def fps(self) -> Optional[Fraction]:
        """The nominal frame rate, None when unknown or variable (``0/0`` on the wire)."""
        num, den = self._fps
        return Fraction(num, den) if num and den else None

    @fps.setter
    def fps(self, value: Any) -> None:
        self._fps = (0, 0) if value is None else _rational(value, "frame rate")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamInfo) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    def __repr__(self) -> str:
        if self.kind == "video":
            what = f"{self.format} {self.width}x{self.height} fps={self.fps}"
        elif self.kind == "audio":
            what = f"{self.sample_format} {self.sample_rate} Hz {self.channels} ch"
        else:
            what = "data"
        return f"StreamInfo(stream={self.stream} {self.kind} {what} source_id={self.source_id!r})"


class End:
    """End of one stream (``stream``), or of the whole byte stream when ``stream == 0xFFFF``
    (readers stop there and never hand that one out)."""

    __slots__ = ("stream",)

    def __init__(self, stream: int = ALL_STREAMS) -> None:
        self.stream = stream

    def __eq__(self, other: object) -> bool:
        return isinstance(other, End) and other.stream == self.stream

    def __repr__(self) -> str:
        return f"End(stream={self.stream})"


class Unknown:
    """A message of a kind this library does not know, kept byte for byte so that writing it
    back passes it on unchanged (docs/wire-format.md: unknown kinds are how the format grows)."""

    __slots__ = ("kind", "flags", "stream", "header", "payload")

    def __init__(self, kind: int, flags: int, stream: int, header: bytes, payload: Any) -> None:
        self.kind, self.flags, self.stream = kind, flags, stream
        self.header, self.payload = header, payload

    def __repr__(self) -> str:
        return (f"Unknown(kind={self.kind:#04x} stream={self.stream} header={len(self.header)} "
                f"bytes payload={len(memoryview(self.payload))} bytes)")


Message = Union[StreamInfo, VideoFrame, Packet, AudioChunk, DataMessage, End, Unknown]
