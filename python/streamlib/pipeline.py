"""Pipelines from Python: spawn stages, read their frames, feed them frames.

```python
for frame in streamlib.run("sl-file talk.mp4 -f rgb24"):
    print(frame.frame_number, frame.image.mean())

with streamlib.feed("sl-file -o out.mp4") as out:
    out.write(streamlib.StreamInfo.video("rgba", 640, 360, 30))
    for frame in frames:
        out.write(frame)
```

The classic trap of driving ffmpeg from Python is a child that blocks writing to a stderr
pipe nobody reads while the parent waits for its stdout: here a thread drains every stderr
(forwarding it to ours, and keeping its end for the error message), and frames going in are
written by a thread of their own, so no pipe can deadlock.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Union

from .errors import PipelineError
from .messages import Message, VideoFrame
from .streams import Reader, Writer, enlarge_pipe

Command = Union[str, Sequence[str]]

# how much of a child's stderr is kept for the error message
_STDERR_TAIL = 16 << 10


def _argv(command: Command) -> List[str]:
    """A string is a shell pipeline (bash with pipefail, so any stage's failure counts); a
    list is one program and its arguments, run without a shell."""
    if isinstance(command, str):
        bash = shutil.which("bash")
        if bash:
            return [bash, "-o", "pipefail", "-c", command]
        return ["/bin/sh", "-c", command]
    return list(command)


def _describe(command: Command) -> str:
    return command if isinstance(command, str) else " ".join(command)


class _Drain(threading.Thread):
    """Reads a child's stderr to its end: forwards it (or not) and keeps the tail."""

    def __init__(self, pipe: Any, forward: bool) -> None:
        super().__init__(daemon=True)
        self.pipe, self.forward, self.tail = pipe, forward, b""

    def run(self) -> None:
        out = getattr(sys.stderr, "buffer", None) if self.forward else None
        while True:
            chunk = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536)
            if not chunk:
                break
            self.tail = (self.tail + chunk)[-_STDERR_TAIL:]
            if out is not None:
                try:
                    out.write(chunk)
                    out.flush()
                except (OSError, ValueError):
                    out = None
        self.pipe.close()

    def text(self) -> str:
        self.join(10)
        return self.tail.decode("utf-8", "replace")


class _Feeder(threading.Thread):
    """Writes messages into a child's stdin, then END (when the iterable ran out cleanly)."""

    def __init__(self, pipe: Any, messages: Iterable[Message]) -> None:
        super().__init__(daemon=True)
        self.pipe, self.messages = pipe, messages
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            w = Writer(self.pipe)
            for m in self.messages:
                w.write(m)
            w.finish()
        except BrokenPipeError:
            pass  # the child stopped reading: its exit status says why
        except BaseException as e:  # the input iterable failed: leave the stream truncated
            self.error = e
        finally:
            try:
                self.pipe.close()
            except OSError:
                pass


class run:
    """Run ``command`` (a shell pipeline string, or an argv list) and read its output stream.

    Iterating gives its video frames; :meth:`messages` gives every message. ``input``, an
    iterable of messages, is written to the command's stdin by a thread (with END when it is
    exhausted); without it stdin is /dev/null. The children's stderr goes to ours
    (``stderr="capture"`` keeps it for :attr:`stderr` instead). After the last frame the
    command must have exited 0, else :class:`PipelineError` (with the end of its stderr). Use
    it as a context manager, or let iteration finish, to make sure the children are reaped;
    leaving early closes the pipe, which ends the stages quietly.
    """

    def __init__(self, command: Command, *, input: Optional[Iterable[Message]] = None,
                 stderr: str = "forward") -> None:
        if stderr not in ("forward", "capture"):
            raise ValueError("stderr is 'forward' or 'capture'")
        self.command = command
        self.proc = subprocess.Popen(
            _argv(command),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        enlarge_pipe(self.proc.stdout.fileno())
        self._drain = _Drain(self.proc.stderr, forward=stderr == "forward")
        self._drain.start()
        self._feeder: Optional[_Feeder] = None
        if input is not None:
            enlarge_pipe(self.proc.stdin.fileno())
            self._feeder = _Feeder(self.proc.stdin, input)
            self._feeder.start()
        self._reader: Optional[Reader] = None
        self.returncode: Optional[int] = None

    @property
    def reader(self) -> Reader:
        """The Reader over the command's stdout (its stream header is read on first use)."""
        if self._reader is None:
            try:
                self._reader = Reader(self.proc.stdout)
            except Exception:
                self.close(check=True)
                raise
        return self._reader

    @property
    def stderr(self) -> str:
        """What the command wrote on stderr (its last 16 KiB), once it has ended."""
        return self._drain.text()

    def messages(self) -> Iterator[Message]:
        finished = False
        try:
            for m in self.reader:
                yield m
            finished = True
        except Exception:
            # a truncated or bad stream: the command's own failure explains it best
            self.close(check=True)
            raise
        finally:
            if finished:
                self.close(check=True)
            elif self.returncode is None:
                self.close(check=False)

    def __iter__(self) -> Iterator[VideoFrame]:
        for m in self.messages():
            if isinstance(m, VideoFrame):
                yield m

    def close(self, check: bool = False) -> int:
        """Stop reading, wait for the command, and return its exit status. With ``check``,
        a non-zero status raises :class:`PipelineError`."""
        if self.returncode is None:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
            try:
                self.returncode = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.returncode = self.proc.wait()
            if self._feeder is not None:
                self._feeder.join(10)
        if check and self.returncode != 0:
            raise PipelineError(_describe(self.command), self.returncode, self.stderr)
        if check and self._feeder is not None and self._feeder.error is not None:
            raise self._feeder.error
        return self.returncode

    def __enter__(self) -> "run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(check=exc_type is None)


class feed:
    """Run ``command`` with a stream written from Python on its stdin.

    A context manager with a :class:`Writer`'s ``write``: leaving the block normally writes
    END, closes the pipe and waits for the command (non-zero exit: :class:`PipelineError`);
    leaving it with an exception closes the pipe without END, so the command sees a
    truncated stream (and a recorder keeps what it had). ``stdout`` is passed to
    ``subprocess.Popen`` (default: ours).
    """

    def __init__(self, command: Command, *, stdout: Any = None, stderr: str = "forward") -> None:
        self.command = command
        self.proc = subprocess.Popen(_argv(command), stdin=subprocess.PIPE, stdout=stdout,
                                     stderr=subprocess.PIPE)
        enlarge_pipe(self.proc.stdin.fileno())
        self._drain = _Drain(self.proc.stderr, forward=stderr == "forward")
        self._drain.start()
        self.writer = Writer(self.proc.stdin)
        self.returncode: Optional[int] = None

    def write(self, msg: Message) -> None:
        try:
            self.writer.write(msg)
        except BrokenPipeError:
            # the command stopped reading: its exit status and stderr say why
            self.close(finish=False)
            raise PipelineError(_describe(self.command), self.returncode or 0, self.stderr) from None

    def close(self, finish: bool = True) -> int:
        if self.returncode is None:
            try:
                if finish:
                    self.writer.finish()
            except BrokenPipeError:
                pass
            finally:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            self.returncode = self.proc.wait()
        return self.returncode

    @property
    def stderr(self) -> str:
        return self._drain.text()

    def __enter__(self) -> "feed":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        code = self.close(finish=exc_type is None)
        if exc_type is None and code != 0:
            raise PipelineError(_describe(self.command), code, self.stderr)
