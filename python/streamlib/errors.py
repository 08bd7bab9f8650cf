"""Errors a stream can raise. Every one is a :class:`StreamError`, whose message says what to do."""

from __future__ import annotations


class StreamError(Exception):
    """Why a byte stream could not be read or written."""


class EmptyStream(StreamError):
    """The input had no bytes at all."""

    def __init__(self) -> None:
        super().__init__("input is empty: the stage before this one wrote nothing (did it fail?)")


class NotAStream(StreamError):
    """The input does not start with the streamlib magic."""

    def __init__(self, looks_like: str) -> None:
        self.looks_like = looks_like
        super().__init__(
            f"input is not a streamlib stream: it looks like {looks_like}. Media files and raw "
            "video are read with `sl-file`, e.g. `sl-file input.y4m | ...` or `... | sl-file - | ...`"
        )


class UnsupportedVersion(StreamError):
    def __init__(self, version: int) -> None:
        self.version = version
        super().__init__(
            f"input is streamlib wire format version {version}, but this program reads version 1; "
            "use programs from the same streamlib release on both ends"
        )


class TruncatedStream(StreamError):
    """The input stopped without the final end-of-stream message (the upstream stage died)."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"stream truncated {where}: the stage before this one stopped without ending its "
            "stream (it was killed or failed; see its error above)"
        )


class TooLarge(StreamError):
    def __init__(self, what: str, length: int, limit: int) -> None:
        self.what, self.length, self.limit = what, length, limit
        super().__init__(f"{what} of {length} bytes exceeds the limit of {limit} bytes")


class MalformedStream(StreamError):
    """A message header that breaks the specification (docs/wire-format.md)."""

    def __init__(self, kind: str, why: str) -> None:
        self.kind, self.why = kind, why
        super().__init__(f"malformed {kind} message: {why}")


class PipelineError(StreamError):
    """A pipeline started by :func:`streamlib.run` or :func:`streamlib.feed` failed."""

    def __init__(self, command: str, returncode: int, stderr: str) -> None:
        self.command, self.returncode, self.stderr = command, returncode, stderr
        tail = stderr.strip().splitlines()[-5:]
        detail = ("; its stderr ends with:\n  " + "\n  ".join(tail)) if tail else ""
        super().__init__(f"`{command}` exited with status {returncode}{detail}")
