"""Reading and writing byte streams: :class:`Reader` and :class:`Writer`.

Copies, measured by scripts/bench-python.sh: a payload is read with ``readinto`` straight into
a numpy buffer (no ``bytes`` object per frame, no join of partial reads), frames are views of
that buffer, and a message goes out as one ``os.writev`` of its header and its payload
buffers (no concatenation). Payload buffers are reused once nothing refers to them any more
(see :meth:`Reader._buffer`), so a steady stream allocates nothing per frame.
"""

from __future__ import annotations

import io
import os
import queue
import sys
import threading
from typing import Any, BinaryIO, Iterator, List, Optional

import numpy as np

from . import codec
from .codec import KIND_NAMES, PREFIX, PREFIX_LEN, STREAM_HEADER
from .errors import EmptyStream, MalformedStream, NotAStream, TooLarge, TruncatedStream, UnsupportedVersion
from .messages import ALL_STREAMS, AudioChunk, DataMessage, End, Message, Packet, StreamInfo, Unknown, VideoFrame

#: The reference reader's bounds (docs/wire-format.md §8).
MAX_HEADER = 16 << 20
MAX_PAYLOAD = 1280 << 20

# Linux's F_SETPIPE_SZ. 1 MiB pipes, as the Rust stages use: fewer wake-ups per 1080p frame.
_F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20

# How many payload buffers a reader keeps for reuse.
_POOL = 4


def _refcounts(pool: List[np.ndarray]) -> List[int]:
    """Reference counts of the pool's buffers, each measured the same way."""
    getrefcount = sys.getrefcount
    return [getrefcount(pool[j]) for j in range(len(pool))]


# What `_refcounts` reports for a buffer nothing but the pool refers to, measured on this
# interpreter rather than assumed (interpreters differ in the temporary references they take).
_FREE: Optional[int] = _refcounts([np.empty(1, dtype=np.uint8)])[0] if hasattr(sys, "getrefcount") else None


def enlarge_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe behind ``fd``; not a pipe, or not allowed, is fine."""
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError, ValueError):
        pass


def quiet_stdout() -> None:
    """After a closed pipe: point fd 1 at /dev/null, so nothing written at exit fails again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def describe_foreign(head: bytes) -> str:
    """What the first bytes of a non-streamlib input look like, for the error message."""
    def starts(m: bytes) -> bool:
        return head.startswith(m)

    if starts(b"YUV4MPEG2"):
        return "a YUV4MPEG2 (y4m) video stream"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "an MP4/MOV file"
    if starts(b"\x1a\x45\xdf\xa3"):
        return "a Matroska/WebM file"
    if starts(b"nut/multimedia container"):
        return "a NUT file"
    if starts(b"FLV"):
        return "an FLV file"
    if starts(b"RIFF"):
        return "a RIFF (WAV/AVI) file"
    if starts(b"\x89PNG"):
        return "a PNG image"
    if starts(b"\xff\xd8\xff"):
        return "a JPEG image"
    if starts(b"#EXTM3U"):
        return "an HLS/M3U playlist"
    if starts(b"OggS"):
        return "an Ogg file"
    if head[:1] == b"\x47" and (len(head) < 189 or head[188] == 0x47):
        return "an MPEG transport stream"
    if starts(b"\0\0\0\1") or starts(b"\0\0\1"):
        return "an H.264/H.265 elementary stream"
    if starts(codec.MAGIC[:4]):
        return "a damaged streamlib stream header"
    if head and all(b in b"\n\r\t" or 0x20 <= b < 0x7F for b in head):
        text = head[:24].decode("ascii").translate({9: 32, 10: 32, 13: 32}).rstrip()
        return f"text (starting `{text}`)"
    return "unknown binary data (first bytes: " + " ".join(f"{b:02x}" for b in head[:8]) + ")"


class Reader:
    """Messages from a binary stream (``sys.stdin.buffer``, an open file, a pipe...).

    Iterating gives every message (:class:`StreamInfo`, :class:`VideoFrame`, :class:`Packet`,
    :class:`AudioChunk`, :class:`DataMessage`, :class:`End` of one stream, :class:`Unknown`)
    and stops at the final end-of-stream; :meth:`frames` gives only video frames. A stream
    that stops without that end raises :class:`TruncatedStream`; bad input raises
    :class:`NotAStream`, :class:`EmptyStream`, :class:`MalformedStream` or :class:`TooLarge`.

    Frames are views of payload buffers that the reader reuses once nothing else refers to
    them: keep a frame (or any view of its pixels) and its buffer is left alone
    (``reuse_buffers=False``: a new buffer for every payload).
    """

    def __init__(self, stream: BinaryIO, *, max_header: int = MAX_HEADER, max_payload: int = MAX_PAYLOAD,
                 reuse_buffers: bool = True) -> None:
        self._stream = stream
        self._reuse = reuse_buffers and _FREE is not None
        if hasattr(stream, "readinto"):
            self._readinto = stream.readinto
        else:
            self._readinto = self._readinto_from_read
        self.max_header, self.max_payload = max_header, max_payload
        #: The latest description of each stream, by index.
        self.streams = {}  # type: dict
        #: True once the end-of-stream for all streams was read.
        self.finished = False
        self.messages = 0
        self.frames_read = 0
        self._pool: List[np.ndarray] = []
        head = bytearray(16)
        n = self._fill(memoryview(head))
        if n == 0:
            raise EmptyStream()
        if n < 8 or head[:8] != codec.MAGIC:
            if n < 8 and codec.MAGIC.startswith(bytes(head[:n])):
                raise TruncatedStream("inside the stream header")
            more = bytearray(200)
            got = self._fill(memoryview(more)) if n == 16 else 0
            raise NotAStream(describe_foreign(bytes(head[:n]) + bytes(more[:got])))
        if n < 16:
            raise TruncatedStream("inside the stream header")
        version = head[8] | head[9] << 8
        if version != codec.VERSION:
            raise UnsupportedVersion(version)

    def _readinto_from_read(self, mv: memoryview) -> int:
        b = self._stream.read(len(mv))
        mv[: len(b)] = b
        return len(b)

    def _fill(self, mv: memoryview) -> int:
        """Read until ``mv`` is full or the input ends (pipes return short reads); returns the
        bytes read."""
        got, want = 0, len(mv)
        readinto = self._readinto
        while got < want:
            n = readinto(mv[got:])
            if not n:
                if n is None:  # a non-blocking stream with nothing yet
                    raise OSError("the input is non-blocking: give Reader a blocking stream")
                break
            got += n
        return got

    def _buffer(self, n: int) -> np.ndarray:
        """A payload buffer of ``n`` bytes, reused when possible.

        A buffer is free again when only the pool refers to it: the frame it went out in, and
        every array viewing it, are gone (numpy views keep their base alive, so reference
        counts see them). Reusing saves the page faults of a fresh 8 MB allocation per 1080p
        frame. Interpreters without reference counts never reuse.
        """
        if self._reuse:
            counts = _refcounts(self._pool)
            for i, buf in enumerate(self._pool):
                if counts[i] == _FREE and buf.nbytes >= n:
                    self._pool.append(self._pool.pop(i))
                    return buf[:n] if buf.nbytes > n else buf
        buf = np.empty(n, dtype=np.uint8)
        self._pool.append(buf)
        if len(self._pool) > _POOL:
            del self._pool[0]
        return buf

    def _truncated(self, where: str) -> TruncatedStream:
        return TruncatedStream(f"{where} after {self.frames_read} frames")

    def read(self) -> Optional[Message]:
        """The next message, or None after the end-of-stream for all streams."""
        prefix = bytearray(PREFIX_LEN)
        while not self.finished:
            n = self._fill(memoryview(prefix))
            if n == 0:
                raise TruncatedStream(f"after {self.frames_read} frames: no end-of-stream message")
            if n < PREFIX_LEN:
                raise self._truncated("inside a message prefix")
            kind, flags, stream, header_len, payload_len = PREFIX.unpack(prefix)
            if header_len > self.max_header:
                raise TooLarge("message header", header_len, self.max_header)
            if payload_len > self.max_payload:
                raise TooLarge("message payload", payload_len, self.max_payload)
            header = bytearray(header_len)
            if self._fill(memoryview(header)) < header_len:
                raise self._truncated("inside a message header")
            msg, exact = codec.decode_head(kind, flags, stream, header)
            if exact is not None and exact != payload_len:
                raise MalformedStream(
                    KIND_NAMES.get(kind, "unknown"),
                    f"header implies a {exact}-byte payload, prefix says {payload_len}",
                )
            self.messages += 1
            if payload_len:
                if isinstance(msg, (VideoFrame, AudioChunk, Packet)):
                    payload: Any = self._buffer(payload_len)
                else:
                    # np.empty, not bytearray: its pages are only touched as bytes arrive, so a
                    # header that lies about a huge payload on a short input costs nothing
                    payload = np.empty(payload_len, dtype=np.uint8)
                got = self._fill(memoryview(payload).cast("B"))
                if got < payload_len:
                    raise TruncatedStream(
                        f"inside message {self.messages} ({got} of its {payload_len} payload bytes arrived)"
                    )
            else:
                payload = b""
            if isinstance(msg, VideoFrame):
                msg._data = payload
                self.frames_read += 1
            elif isinstance(msg, (AudioChunk, Packet)):
                msg.data = payload
                self.frames_read += 1
            elif isinstance(msg, DataMessage):
                msg.data = payload.tobytes() if payload_len else b""
                self.frames_read += 1
            elif isinstance(msg, Unknown):
                msg.payload = payload.tobytes() if payload_len else b""
            elif isinstance(msg, StreamInfo):
                self.streams[stream] = msg
            elif isinstance(msg, End) and stream == ALL_STREAMS:
                self.finished = True
                return None
            return msg
        return None

    def __iter__(self) -> Iterator[Message]:
        while True:
            msg = self.read()
            if msg is None:
                return
            yield msg

    def frames(self) -> Iterator[VideoFrame]:
        """Only the video frames (every other message is read and dropped)."""
        for msg in self:
            if isinstance(msg, VideoFrame):
                yield msg


class Writer:
    """Writes a byte stream to a binary stream: the stream header at once, then one message
    per :meth:`write`, and the final end-of-stream on :meth:`finish` (or on leaving a
    ``with`` block without an exception: a failure must leave the output truncated, so the
    next stage knows).

    With a real file or pipe underneath, each message is one ``os.writev`` of its header and
    its payload buffers. A closed pipe downstream ends the program quietly with status 0 when
    the stream is stdout (``exit_on_closed_pipe``, default: only for fd 1), and raises
    ``BrokenPipeError`` otherwise.

    ``background=True`` writes from a thread of its own, so the next frame is read while
    this one goes out: both pipes keep flowing instead of taking turns (1080p RGBA
    pass-through: 83 -> 110 frames/s in a quiet moment, 0.83x ``cat``; within the noise when
    the 2-core machine ran 13 other jobs; see docs/python.md). A frame's pixels must then not
    change until :meth:`drain` returns (or the next frame is asked for, in the stage helpers);
    write errors surface at the next call.
    """

    def __init__(self, stream: BinaryIO, *, stream_header: bool = True, background: bool = False,
                 exit_on_closed_pipe: Optional[bool] = None) -> None:
        self._stream = stream
        self._fd: Optional[int] = None
        try:
            fd = stream.fileno()
            stream.flush()
            self._fd = fd
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._fd = None
        # stdout's reader went away: the program ends quietly with status 0, as every stage
        # does (docs/plugins.md); any other stream raises BrokenPipeError
        self._exit_on_closed_pipe = self._fd == 1 if exit_on_closed_pipe is None else exit_on_closed_pipe
        self.finished = False
        self.bytes_written = 0
        self._error: Optional[BaseException] = None
        self._queue: Optional[queue.Queue] = None
        self._thread: Optional[threading.Thread] = None
        if stream_header:
            self._send_now([STREAM_HEADER])
        if background:
            # one message in flight and one waiting: bounded memory, and enough to overlap
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._background, name="streamlib-writer", daemon=True)
            self._thread.start()

    def _background(self) -> None:
        q = self._queue
        while True:
            parts = q.get()
            try:
                if parts is None:
                    return
                if self._error is None:
                    self._send_now(parts)
            except BaseException as e:  # reported to the writing thread at its next call
                self._error = e
            finally:
                parts = None  # let the payload's buffer go back to the reader's pool
                q.task_done()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _send(self, parts: List[Any]) -> None:
        if self._queue is None:
            self._send_now(parts)
        else:
            self._raise_error()
            self._queue.put(parts)

    def _send_now(self, parts: List[Any]) -> None:
        if self._fd is None:
            for p in parts:
                self._stream.write(p)
                self.bytes_written += memoryview(p).nbytes
            return
        views = [memoryview(p).cast("B") for p in parts]
        total = sum(v.nbytes for v in views)
        left = total
        while True:
            try:
                n = os.writev(self._fd, views)
            except BrokenPipeError:
                if self._exit_on_closed_pipe:
                    quiet_stdout()
                    raise SystemExit(0) from None
                raise
            left -= n
            if left <= 0:
                break
            # a short write (a signal, a full non-blocking pipe): go on from where it stopped
            while n >= views[0].nbytes:
                n -= views[0].nbytes
                views.pop(0)
            views[0] = views[0][n:]
        self.bytes_written += total

    def drain(self) -> None:
        """Wait until every message written so far is out (at once without ``background``);
        raises what writing them raised."""
        if self._queue is not None:
            self._queue.join()
        self._raise_error()

    def write(self, msg: Message) -> None:
        """Write one message (its ``stream`` attribute says which stream)."""
        if self.finished:
            raise ValueError("the stream is finished: nothing can follow its end")
        head, parts, _ = codec.encode(msg)
        self._send([head, *parts])
        if isinstance(msg, End) and msg.stream == ALL_STREAMS:
            self._finished()

    def end(self, stream: int) -> None:
        """End one stream (others may go on)."""
        self.write(End(stream))

    def finish(self) -> None:
        """End the whole byte stream (once; later calls do nothing) and flush."""
        if not self.finished:
            self.write(End(ALL_STREAMS))

    def _finished(self) -> None:
        self.finished = True
        self.close()

    def close(self) -> None:
        """Wait for the background thread (if any) to write what it has, stop it, and flush;
        raises what writing raised. The stream underneath stays open."""
        if self._thread is not None:
            self._queue.put(None)
            self._queue.join()
            self._thread.join()
            self._thread = None
            self._queue = None
        self.flush()
        self._raise_error()

    def flush(self) -> None:
        if self._fd is None and hasattr(self._stream, "flush"):
            self._stream.flush()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            try:
                self.close()
            except OSError:
                pass
