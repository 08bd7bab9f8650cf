"""Python stages behave like every sl-* stage (docs/plugins.md): END on a clean end, a
truncated input passed on as truncated with exit 1, a closed pipe downstream a quiet exit 0,
Ctrl-C finalises with exit 130, unknown messages pass through."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import streamlib
from streamlib import codec
from conftest import encode, env_with_path, pipeline, python_stage, run_py


def rgba_frames(n, w=32, h=16, value=10):
    msgs = [streamlib.StreamInfo.video("rgba", w, h, 30, source_id="py")]
    for i in range(n):
        img = np.full((h, w, 4), value, np.uint8)
        img[..., 3] = 200
        msgs.append(streamlib.VideoFrame(img, frame_number=i, pts=i, time_base=(1, 30), source_id="py"))
    return msgs


def test_invert_ends_with_end_and_inverts():
    r = pipeline(python_stage("sl-invert"), stdin=encode(rgba_frames(3)))
    r.assert_success()
    assert r.stderrs == [""]
    frames = r.frames()  # reads to the END: a truncated output would raise here
    assert [f.frame_number for f in frames] == [0, 1, 2]
    assert (frames[0].image[..., :3] == 245).all() and (frames[0].image[..., 3] == 200).all()


def test_other_messages_and_unknown_kinds_pass_through_a_filter():
    unknown = bytearray(16) + b"h"
    codec.PREFIX.pack_into(unknown, 0, 0x7E, 0, 2, 1, 3)
    audio = streamlib.AudioChunk(np.arange(8, dtype=np.int16), 8000, stream=1)
    body = encode([audio, streamlib.DataMessage(b"d", stream=3)] + rgba_frames(1))[16:-16]
    data = codec.STREAM_HEADER + bytes(unknown) + b"abc" + body + encode([])[16:]
    r = pipeline(python_stage("sl-invert"), stdin=data)
    r.assert_success()
    kinds = [type(m).__name__ for m in r.messages()]
    assert kinds == ["Unknown", "AudioChunk", "DataMessage", "StreamInfo", "VideoFrame"]
    out = r.messages()
    assert out[0].payload == b"abc" and out[1].array.ravel().tolist() == list(range(8))


def test_truncated_input_gives_truncated_output_and_exit_1():
    data = encode(rgba_frames(3), finish=False)
    r = pipeline(python_stage("sl-invert"), stdin=data)
    assert r.codes == [1]
    assert "truncated" in r.stderrs[0] and "Traceback" not in r.stderrs[0]
    with pytest.raises(streamlib.TruncatedStream):
        r.messages()
    # everything before the cut still went on
    got = list(_frames_until_truncation(r.stdout))
    assert [f.frame_number for f in got] == [0, 1, 2]


def _frames_until_truncation(data):
    reader = streamlib.Reader(io.BytesIO(data))
    try:
        for m in reader:
            if isinstance(m, streamlib.VideoFrame):
                yield m
    except streamlib.TruncatedStream:
        return


@pytest.mark.parametrize("data,words", [
    (b"YUV4MPEG2 W64 H48\n", "y4m"),
    (b"", "empty"),
])
def test_garbage_input_is_exit_1_with_a_message(data, words):
    r = pipeline(python_stage("sl-invert"), stdin=data)
    assert r.codes == [1] and words in r.stderrs[0] and "Traceback" not in r.stderrs[0]


def test_closed_downstream_pipe_is_a_quiet_exit_0():
    # 60 frames of 512x512 RGBA (60 MB): far more than the pipe holds once `head` is gone
    data = encode(rgba_frames(60, 512, 512))
    r = pipeline(python_stage("sl-invert"), ["head", "-c", "100"], stdin=data)
    assert r.codes == [0, 0], r.stderrs
    assert r.stderrs[0] == ""
    assert len(r.stdout) == 100


def test_ctrl_c_finalises_the_output_and_exits_130():
    p = subprocess.Popen(python_stage("sl-invert"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env_with_path())
    first = encode(rgba_frames(2), finish=False)
    p.stdin.write(first)
    p.stdin.flush()
    # wait until both frames came out (the stage is then blocked reading its input)
    out = b""
    expected = len(first)
    deadline = time.monotonic() + 30
    while len(out) < expected and time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 1)
        if ready:
            chunk = os.read(p.stdout.fileno(), 1 << 20)
            if not chunk:
                break
            out += chunk
    assert len(out) == expected, "the stage did not pass its frames on"
    p.send_signal(signal.SIGINT)
    rest, err = p.communicate(timeout=30)
    p.stdin.close()
    assert p.returncode == 130, err
    frames = [m for m in streamlib.Reader(io.BytesIO(out + rest)) if isinstance(m, streamlib.VideoFrame)]
    assert len(frames) == 2  # a clean end: the output was finalised with END


def test_refuses_to_write_frames_to_a_terminal():
    master, slave = pty.openpty()
    try:
        p = subprocess.run(python_stage("sl-invert"), input=encode(rgba_frames(1)), stdout=slave,
                           stderr=subprocess.PIPE, env=env_with_path(), timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 2 and b"terminal" in p.stderr


def test_usage_and_help():
    p = subprocess.run(python_stage("sl-invert") + ["--bogus"], capture_output=True, env=env_with_path(), timeout=60)
    assert p.returncode == 2 and b"unexpected argument" in p.stderr
    p = subprocess.run(python_stage("sl-invert") + ["--help"], capture_output=True, env=env_with_path(), timeout=60)
    assert p.returncode == 0 and b"Invert the colours" in p.stdout
    p = subprocess.run(python_stage("sl-motion") + ["--cell", "x"], capture_output=True, env=env_with_path(), timeout=60)
    assert p.returncode == 2


def test_a_filter_that_changes_the_format_announces_it():
    code = """
import streamlib, numpy as np
@streamlib.filter
def half(frame):
    g = frame.image[::2, ::2, 1]                       # rgba -> gray8, half size
    return streamlib.VideoFrame(np.ascontiguousarray(g), "gray8", **frame.timing())
half.main([])
"""
    rc, out, err = run_py(code, encode(rgba_frames(2, 32, 16)))
    assert rc == 0, err
    msgs = list(streamlib.Reader(io.BytesIO(out)))
    infos = [m for m in msgs if isinstance(m, streamlib.StreamInfo)]
    assert [(i.format, i.width, i.height) for i in infos] == [("rgba", 32, 16), ("gray8", 16, 8)]
    frames = [m for m in msgs if isinstance(m, streamlib.VideoFrame)]
    assert [(f.format, f.width, f.height) for f in frames] == [("gray8", 16, 8)] * 2
    assert (frames[0].image == 10).all()


def test_a_failing_filter_leaves_its_output_truncated():
    code = """
import streamlib
@streamlib.filter
def broken(frame):
    if frame.frame_number == 1:
        raise ValueError("bad frame")
broken.main([])
"""
    rc, out, err = run_py(code, encode(rgba_frames(3)))
    assert rc == 1 and "ValueError: bad frame" in err
    assert [f.frame_number for f in _frames_until_truncation(out)] == [0]
    with pytest.raises(streamlib.TruncatedStream):
        list(streamlib.Reader(io.BytesIO(out)))


def test_source_and_sink_stages():
    code = """
import numpy as np, streamlib
@streamlib.source(fps=25, source_id="gen")
def gen():
    for i in range(4):
        yield np.full((8, 8, 4), i, np.uint8)
gen.main([])
"""
    rc, out, err = run_py(code)
    assert rc == 0, err
    msgs = list(streamlib.Reader(io.BytesIO(out)))
    assert isinstance(msgs[0], streamlib.StreamInfo) and msgs[0].fps == 25 and msgs[0].source_id == "gen"
    frames = msgs[1:]
    assert [(f.frame_number, f.pts, f.time_base, f.source_id) for f in frames] == [
        (i, i, 1 / __import__("fractions").Fraction(25), "gen") for i in range(4)]
    sink = """
import streamlib, sys
total = []
@streamlib.sink
def count(frame):
    total.append(int(frame.image.mean()))
code = count.run_stdio()
sys.stderr.write(f"means {total}\\n")
sys.exit(code)
"""
    rc, out2, err = run_py(sink, out)
    assert rc == 0 and "means [0, 1, 2, 3]" in err and out2 == b""


def test_a_filter_may_reuse_its_output_array():
    # the background writer must be done with frame N before the filter fills the array again
    code = """
import numpy as np, streamlib
out = None
@streamlib.filter
def stamp(frame):
    global out
    if out is None:
        out = np.empty_like(frame.image)
    out[...] = frame.frame_number
    return out
stamp.main([])
"""
    rc, data, err = run_py(code, encode(rgba_frames(20, 256, 256)))
    assert rc == 0, err
    frames = [m for m in streamlib.Reader(io.BytesIO(data)) if isinstance(m, streamlib.VideoFrame)]
    assert [int(f.image.min()) for f in frames] == list(range(20))
    assert [int(f.image.max()) for f in frames] == list(range(20))


def test_a_plain_script_writing_stdout_ends_quietly_when_the_pipe_closes():
    code = """
import sys, numpy as np, streamlib
with streamlib.Writer(sys.stdout.buffer) as out:
    for i in range(1000):
        out.write(streamlib.VideoFrame(np.zeros((256, 256, 4), np.uint8), frame_number=i))
print("not reached", file=sys.stderr)
"""
    r = pipeline([sys.executable, "-c", code], ["head", "-c", "100"])
    assert r.codes == [0, 0] and r.stderrs == ["", ""] and len(r.stdout) == 100


def test_a_writer_into_another_pipe_raises_broken_pipe():
    rfd, wfd = os.pipe()
    os.close(rfd)
    with os.fdopen(wfd, "wb") as f:
        with pytest.raises(BrokenPipeError):
            streamlib.Writer(f)


def test_what_a_filter_returns():
    def through(fn):
        out = io.BytesIO()
        w = streamlib.Writer(out)
        streamlib.filter(fn).process(streamlib.Reader(io.BytesIO(encode(rgba_frames(4)))), w)
        w.finish()
        return [m for m in streamlib.Reader(io.BytesIO(out.getvalue())) if isinstance(m, streamlib.VideoFrame)]

    odd = through(lambda f: streamlib.DROP if f.frame_number % 2 else None)
    assert [f.frame_number for f in odd] == [0, 2]
    doubled = through(lambda f: [f, f.copy()])
    assert [f.frame_number for f in doubled] == [0, 0, 1, 1, 2, 2, 3, 3]
    smaller = through(lambda f: np.ascontiguousarray(f.image[:4, :8]))
    assert [(f.width, f.height) for f in smaller] == [(8, 4)] * 4
    with pytest.raises(TypeError, match="a filter returned a str"):
        through(lambda f: "oops")
