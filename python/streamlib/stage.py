"""Stages in a few lines: a function becomes a program that behaves like any ``sl-*`` stage.

```python
import streamlib

@streamlib.filter
def invert(frame):
    "Invert the colours of rgba frames."
    rgb = frame.image[..., :3]
    rgb[...] = 255 - rgb          # in place: the frame goes on as it is

if __name__ == "__main__":
    invert.main()
```

The runtime (:func:`run_stage`) owns what docs/plugins.md asks of every stage:

- stdout carries frames only, and never to a terminal; stdin must be a stream;
- messages the function is not given (audio, packets, data, other kinds) pass through;
- a clean end of input ends the output with END; a truncated input exits 1 and leaves the
  output truncated too, so the next stage knows;
- a closed pipe downstream is a quiet exit 0;
- Ctrl-C or SIGTERM finalises the output (END after the last whole message) and exits 130;
  a second one stops at once;
- exit codes: 0 success, 1 runtime error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from fractions import Fraction
from typing import Any, Callable, Iterable, List, Optional, Sequence

import numpy as np

from .errors import StreamError, TruncatedStream
from .messages import PACKED_CHANNELS, StreamInfo, VideoFrame
from .streams import Reader, Writer, enlarge_pipe, quiet_stdout

#: Return this from a filter to drop the frame.
DROP = object()

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A mistake on the command line: exit 2 with the message."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so ``except Exception`` in a filter does
    not swallow it)."""


class _Signals:
    """SIGINT/SIGTERM: interrupt at once, except in the middle of writing a message (a half
    message followed by END would corrupt the stream); then right after it."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self.writing = False
        self._old: List[Any] = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old.append((sig, signal.signal(sig, self._handle)))

    def restore(self) -> None:
        for sig, old in self._old:
            signal.signal(sig, old)
        self._old = []

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is not None:
            os._exit(EXIT_INTERRUPTED)  # the second Ctrl-C: stop now
        self.received = signum
        if not self.writing:
            raise Interrupted()


class StageWriter(Writer):
    """A Writer whose messages are never cut in half by a signal."""

    def __init__(self, stream: Any, signals: _Signals, background: bool = False) -> None:
        self._signals = signals
        # the runtime handles a closed pipe itself (it must know about Ctrl-C too)
        super().__init__(stream, background=background, exit_on_closed_pipe=False)

    def write(self, msg: Any) -> None:
        s = self._signals
        s.writing = True
        try:
            super().write(msg)
        finally:
            s.writing = False
        if s.received is not None and not self.finished:
            raise Interrupted()


def program_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return name if name and name != "-c" else "python-stage"


def _stdin_reader() -> Reader:
    if os.isatty(0):
        raise UsageError(f"no input: stdin is a terminal. Pipe a stream in, e.g. `sl-test | {program_name()}`")
    enlarge_pipe(0)
    return Reader(sys.stdin.buffer)


def _stdout_writer(signals: _Signals, background: bool = False) -> StageWriter:
    if os.isatty(1):
        raise UsageError(
            "refusing to write binary frames to a terminal: pipe them into another stage "
            f"(`{program_name()} ... | sl-info`) or a file (`> out.slv`)"
        )
    enlarge_pipe(1)
    return StageWriter(sys.stdout.buffer, signals, background)


def _error(message: str) -> None:
    try:
        sys.stderr.write(f"{program_name()}: error: {message}\n")
        sys.stderr.flush()
    except OSError:
        pass


def run_stage(body: Callable[[Optional[Reader], Optional[StageWriter]], None], *,
              reads: bool = True, writes: bool = True, background: bool = False) -> int:
    """Run ``body(reader, writer)`` with the stage conventions; returns the exit code.
    ``body`` returns after a clean end of its input; the runtime then writes END. With
    ``background``, the writer writes from its own thread (see :class:`Writer`)."""
    signals = _Signals()
    signals.install()
    writer: Optional[StageWriter] = None
    try:
        try:
            # the output first: a stage whose downstream is a terminal says so even when
            # its input is wrong too
            writer = _stdout_writer(signals, background) if writes else None
            reader = _stdin_reader() if reads else None
            body(reader, writer)
            if writer is not None:
                writer.finish()
            return EXIT_INTERRUPTED if signals.received is not None else EXIT_OK
        except Interrupted:
            # finalise: END after the last whole message (a reader of our output sees a
            # finished stream with everything we made)
            if writer is not None and not writer.finished:
                writer.finish()
            return EXIT_INTERRUPTED
    except BrokenPipeError:
        quiet_stdout()
        return EXIT_INTERRUPTED if signals.received is not None else EXIT_OK
    except UsageError as e:
        _error(str(e))
        return EXIT_USAGE
    except TruncatedStream as e:
        _error(f"reading stdin: {e}")
        return EXIT_INTERRUPTED if signals.received is not None else EXIT_ERROR
    except StreamError as e:
        _error(f"reading stdin: {e}")
        return EXIT_ERROR
    except Interrupted:
        return EXIT_INTERRUPTED
    except Exception:
        # a bug in the stage's own code: say where, and leave the output truncated
        sys.stderr.write(traceback.format_exc())
        _error("the stage failed (traceback above); its output was left unfinished")
        return EXIT_ERROR
    finally:
        if writer is not None and not writer.finished:
            # an unfinished output still gets every whole message made before the failure
            try:
                writer.close()
            except BaseException:
                quiet_stdout()
        signals.restore()


def _parse_argv(argv: Optional[Sequence[str]], doc: Optional[str]) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        sys.stdout.write(f"usage: ... | {program_name()} | ...\n\n{(doc or '').strip()}\n")
        sys.exit(EXIT_OK)
    if args:
        _error(
            f"unexpected argument {args[0]!r}: this stage takes no arguments "
            f"(see `{program_name()} --help`)"
        )
        sys.exit(EXIT_USAGE)


class _Stage:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", "stage")

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self.fn(*args, **kw)

    def main(self, argv: Optional[Sequence[str]] = None) -> None:
        """Run as a program on stdin/stdout and exit with the stage's exit code. Handles
        ``--help`` (the function's docstring) and rejects other arguments; a stage with
        options parses them itself (argparse) and calls ``main([])``."""
        _parse_argv(argv, self.__doc__)
        sys.exit(self.run_stdio())

    def run_stdio(self) -> int:
        raise NotImplementedError


class Filter(_Stage):
    """A stage that changes video frames (see :func:`filter`)."""

    def process(self, reader: Reader, writer: Writer) -> None:
        """Run the filter over ``reader`` into ``writer`` until a clean end (END not written)."""
        described = {}  # the last description written, per stream
        fn = self.fn
        for msg in reader:
            if isinstance(msg, VideoFrame):
                # the previous frame is out before the function runs again: it may reuse
                # its arrays (the next frame was read while that one was written)
                writer.drain()
                for out in _outputs(fn(msg), msg):
                    info = described.get(out.stream)
                    if info is not None and (info.format, info.width, info.height) != (
                        out.format, out.width, out.height
                    ):
                        # the filter changed the size or format: announce it (spec §2)
                        info = _redescribe(info, out)
                        described[out.stream] = info
                        writer.write(info)
                    writer.write(out)
            else:
                if isinstance(msg, StreamInfo):
                    described[msg.stream] = msg
                writer.write(msg)

    def run_stdio(self) -> int:
        return run_stage(lambda r, w: self.process(r, w), background=True)


def _redescribe(info: StreamInfo, frame: VideoFrame) -> StreamInfo:
    new = StreamInfo.__new__(StreamInfo)
    for k in StreamInfo.__slots__:
        setattr(new, k, getattr(info, k))
    new.format, new.width, new.height, new.colour = frame.format, frame.width, frame.height, frame.colour
    return new


def _outputs(result: Any, frame: VideoFrame) -> List[VideoFrame]:
    """What a filter returned, as frames: None (the frame, changed in place or not), DROP,
    a frame, a list of frames, or new pixels (an array, or a tuple of planes for YUV)."""
    if result is None:
        return [frame]
    if result is DROP:
        return []
    if isinstance(result, VideoFrame):
        return [result]
    if isinstance(result, list) and all(isinstance(r, VideoFrame) for r in result):
        return result
    if isinstance(result, np.ndarray) or (isinstance(result, tuple) and frame.format not in PACKED_CHANNELS):
        frame.image = result
        return [frame]
    raise TypeError(
        f"a filter returned a {type(result).__name__}: return None (the frame, changed in "
        "place), a new image array, a VideoFrame, a list of VideoFrames, or streamlib.DROP"
    )


class Sink(_Stage):
    """A stage that consumes frames and writes no stream (see :func:`sink`)."""

    def process(self, reader: Reader) -> None:
        for frame in reader.frames():
            self.fn(frame)

    def run_stdio(self) -> int:
        return run_stage(lambda r, w: self.process(r), writes=False)


class Source(_Stage):
    """A stage that makes frames (see :func:`source`)."""

    def __init__(self, fn: Callable[..., Any], fps: Any = 30, source_id: str = "") -> None:
        super().__init__(fn)
        self.fps = Fraction(fps)
        self.source_id = source_id

    def process(self, writer: Writer) -> None:
        described = None
        tb = 1 / self.fps
        for n, item in enumerate(self.fn()):
            frame = item if isinstance(item, VideoFrame) else VideoFrame(
                item, frame_number=n, pts=n, time_base=tb, duration=1, source_id=self.source_id
            )
            key = (frame.format, frame.width, frame.height)
            if described != key:
                writer.write(StreamInfo.video(frame.format, frame.width, frame.height, self.fps,
                                              time_base=frame.time_base, source_id=frame.source_id,
                                              stream=frame.stream, colour=frame.colour))
                described = key
            writer.write(frame)

    def run_stdio(self) -> int:
        return run_stage(lambda r, w: self.process(w), reads=False)


def filter(fn: Optional[Callable[[VideoFrame], Any]] = None) -> Any:
    """Make a filter stage of ``fn(frame)``, called for every video frame.

    ``fn`` may change ``frame.image`` in place and return None, return new pixels (an array
    of the same format, or of another size), return a :class:`VideoFrame` or a list of them,
    or return :data:`DROP`. Everything that is not a video frame passes through. Call
    ``.main()`` on the result to run it as a program.
    """
    if fn is None:
        return filter
    return Filter(fn)


def sink(fn: Callable[[VideoFrame], Any]) -> Sink:
    """Make a stage that consumes every video frame (``fn(frame)``) and writes nothing."""
    return Sink(fn)


def source(fn: Optional[Callable[[], Iterable[Any]]] = None, *, fps: Any = 30, source_id: str = "") -> Any:
    """Make a source stage from a generator of frames: it yields :class:`VideoFrame` objects,
    or arrays (rgba ``(H, W, 4)``, rgb24 ``(H, W, 3)``, gray8 ``(H, W)``) that are numbered
    and timed at ``fps``. A STREAM_INFO goes before the first frame and after every change
    of size or format."""
    if fn is None:
        return lambda f: Source(f, fps=fps, source_id=source_id)
    return Source(fn, fps=fps, source_id=source_id)
