"""Python between the Rust stages: Rust -> Python -> Rust round trips for every pixel format
and every metadata type, Python filters in real pipelines, streamlib.run/feed, and `sl`
finding Python stages on PATH. The Rust stages are target/release/sl-* (scripts/test.sh
builds them before it runs these tests)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

import streamlib
from conftest import EXAMPLES, REPO, encode, env_with_path, pipeline, python_stage, sl

# Rebuilds every message from its decoded fields (frames from copies of their pixel arrays),
# so the round trip goes through the whole decoder and encoder, not a byte copy.
REBUILD = """
import sys, streamlib
reader = streamlib.Reader(sys.stdin.buffer)
writer = streamlib.Writer(sys.stdout.buffer)
for m in reader:
    if isinstance(m, streamlib.VideoFrame):
        pixels = [p.copy() for p in m.planes]
        m = streamlib.VideoFrame(pixels[0] if len(pixels) == 1 else tuple(pixels), m.format,
                                 colour=m.colour, **m.timing())
    elif isinstance(m, streamlib.AudioChunk):
        m = streamlib.AudioChunk(m.array.copy(), m.sample_rate, planar=m.planar, **m.timing())
    writer.write(m)
writer.finish()
"""


def rebuild_stage():
    return [sys.executable, "-c", REBUILD]


def frame_md5s(data: bytes) -> list:
    """md5 of each video frame's visible pixels, plane by plane (padding excluded)."""
    out = []
    for m in streamlib.Reader(io.BytesIO(data)):
        if isinstance(m, streamlib.VideoFrame):
            h = hashlib.md5()
            for p in m.planes:
                h.update(np.ascontiguousarray(p).tobytes())
            out.append(h.hexdigest())
    return out


def info_json(data: bytes) -> dict:
    """`sl-info --json` of a stream, less what depends on the wall clock."""
    r = pipeline([sl("sl-info"), "--json"], stdin=data)
    assert r.codes == [0], r.stderrs
    report = json.loads(r.stdout)
    report.pop("wall_seconds")
    for s in report["streams"]:
        s.pop("arrival_fps")
        s.pop("latency", None)  # glass-to-glass: now minus each frame's capture time
    return report


@pytest.mark.parametrize("fmt", ["rgba", "bgra", "rgb24", "gray8", "i420", "nv12"])
def test_rust_python_rust_round_trip_every_pixel_format(fmt):
    # odd sizes: chroma planes round up; noise: every byte differs from its neighbours
    src = [sl("sl-test"), "--fast", "-n", "4", "-s", "33x17", "-f", fmt, "-p", "noise"]
    original = pipeline(src)
    original.assert_success()
    # the same bytes (sl-test stamps each run with the wall clock) through Python, then Rust
    through = pipeline(rebuild_stage(), [sl("sl-info"), "--pass", "-q", "--no-progress"], stdin=original.stdout)
    through.assert_success()
    assert len(frame_md5s(original.stdout)) == 4
    assert frame_md5s(through.stdout) == frame_md5s(original.stdout)
    assert info_json(through.stdout) == info_json(original.stdout)
    assert through.stdout == original.stdout  # and to the byte


def test_rust_python_rust_round_trip_audio(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is missing: run scripts/setup.sh (it installs scripts/deps/*.apt)")
    wav = tmp_path / "tone.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.5",
                    "-ac", "2", "-ar", "48000", str(wav)], check=True, timeout=60)
    original = pipeline([sl("sl-file"), str(wav)])
    original.assert_success()
    chunks = [m for m in original.messages() if isinstance(m, streamlib.AudioChunk)]
    assert chunks and chunks[0].channels == 2 and chunks[0].sample_rate == 48000
    assert sum(c.samples for c in chunks) == 24000
    through = pipeline(rebuild_stage(), [sl("sl-info"), "--pass", "-q"], stdin=original.stdout)
    through.assert_success()
    assert through.stdout == original.stdout
    assert info_json(through.stdout) == info_json(original.stdout)


ALL_METADATA = {
    "ok": True,
    "count": -42,
    "ratio": 2.5,
    "title": "caméra ✓",
    "blob": b"\x00\x01\xfe",
    "detections": [streamlib.Box(10, 20, 30, 40, 0.75, 2, "cat"), streamlib.Box(1, 2, 3, 4, 0.5, -1, "")],
}


def python_made_stream() -> bytes:
    """Every message kind and metadata type, made in Python."""
    w, h = 64, 48
    msgs = [
        streamlib.StreamInfo.video("rgba", w, h, 30, source_id="py", metadata={"lens": "wide", "n": 1}),
        streamlib.StreamInfo.audio("s16", 1, 8000, stream=1, source_id="mic"),
        streamlib.StreamInfo("data", stream=2, metadata={"what": "events"}),
    ]
    for i in range(3):
        img = np.zeros((h, w, 4), np.uint8)
        img[..., 3] = 255
        msgs.append(streamlib.VideoFrame(img, "rgba", frame_number=i, pts=i, time_base=Fraction(1, 30),
                                         duration=1, capture_time=1_700_000_000_000_000_000 + i,
                                         ptp_time=5 + i, source_id="py", metadata=dict(ALL_METADATA)))
        msgs.append(streamlib.AudioChunk(np.arange(i, i + 266, dtype=np.int16), 8000, stream=1,
                                         pts=266 * i, time_base=Fraction(1, 8000),
                                         metadata={"level": -3.5}))
        msgs.append(streamlib.DataMessage(b"opaque", stream=2, pts=i, time_base=Fraction(1, 30),
                                          metadata=dict(ALL_METADATA)))
    msgs += [streamlib.End(1), streamlib.End(2)]
    return encode(msgs)


def test_every_metadata_type_survives_rust_pass_through_byte_exact():
    data = python_made_stream()
    r = pipeline([sl("sl-info"), "--pass", "-q"], stdin=data)
    r.assert_success()
    assert r.stdout == data
    report = info_json(data)
    assert report["ending"] == "clean"
    kinds = {s["index"]: (s["kind"], s["frames"]) for s in report["streams"]}
    assert kinds == {0: ("video", 3), 1: ("audio", 3), 2: ("data", 3)}
    assert report["streams"][0]["formats"] == ["rgba 64x48"]
    assert report["streams"][1]["audio_samples"] == 798


def test_every_metadata_type_survives_a_rust_decode_and_encode(tmp_path):
    # sl-draw decodes each frame it draws on (metadata included) and encodes it again
    script = tmp_path / "dot.rhai"
    script.write_text('fn draw(canvas, ctx) { canvas.fill_rect(0.0, 0.0, 2.0, 2.0, "red"); }\n')
    data = python_made_stream()
    r = pipeline([sl("sl-draw"), str(script)], stdin=data)
    r.assert_success()
    msgs = r.messages()
    frames = [m for m in msgs if isinstance(m, streamlib.VideoFrame)]
    assert len(frames) == 3
    for i, f in enumerate(frames):
        assert (f.capture_time, f.ptp_time, f.source_id, f.pts) == (1_700_000_000_000_000_000 + i, 5 + i, "py", i)
        assert f.metadata.keys() == ALL_METADATA.keys()
        for k, v in ALL_METADATA.items():
            assert f.metadata[k] == v, k
        assert tuple(f.image[0, 0]) == (255, 0, 0, 255)  # drawn on: it was decoded
    data_msgs = [m for m in msgs if isinstance(m, streamlib.DataMessage)]
    assert [m.metadata for m in data_msgs] == [ALL_METADATA] * 3
    assert [m.array.ravel()[0] for m in msgs if isinstance(m, streamlib.AudioChunk)] == [0, 1, 2]


def test_python_filter_between_rust_stages():
    src = [sl("sl-test"), "--fast", "-n", "6", "-s", "96x64", "-p", "bars"]
    direct = pipeline(src)
    r = pipeline(src, python_stage("sl-invert"), [sl("sl-info"), "--pass", "-q"])
    r.assert_success()
    before, after = direct.frames(), r.frames()
    assert len(after) == 6
    for a, b in zip(before, after):
        assert np.array_equal(b.image[..., :3], 255 - a.image[..., :3])
        assert np.array_equal(b.image[..., 3], a.image[..., 3])
        assert (b.frame_number, b.pts, b.source_id) == (a.frame_number, a.pts, a.source_id)


def test_motion_boxes_are_drawn_by_sl_draw():
    src = [sl("sl-test"), "--fast", "-n", "8", "-s", "320x240", "-p", "box"]
    boxes_rhai = str(REPO / "examples" / "boxes.rhai")
    detected = pipeline(src, python_stage("sl-motion"))
    detected.assert_success()
    frames = detected.frames()
    assert frames[0].metadata["motion"] == []  # nothing to compare the first frame with
    moving = [f for f in frames[1:] if f.metadata["motion"]]
    assert len(moving) == 7, [f.metadata for f in frames]
    for f in moving:
        for b in f.metadata["motion"]:
            assert b.label == "motion" and 0 < b.score <= 1 and b.w > 0 and b.h > 0
            assert 0 <= b.x and b.x + b.w <= 320 and 0 <= b.y and b.y + b.h <= 240
    drawn = pipeline(src, python_stage("sl-motion"), [sl("sl-draw"), boxes_rhai], [sl("sl-info"), "--pass", "-q"])
    drawn.assert_success()
    out = drawn.frames()
    assert out[0].metadata["motion"] == [] and np.array_equal(out[0].image, frames[0].image)
    for plain, boxed in zip(frames[1:], out[1:]):
        b = plain.metadata["motion"][0]
        changed = np.any(plain.image != boxed.image, axis=2)
        assert changed.any()
        # the outline is drawn on the box's edge: its left column changed
        x = int(b.x)
        assert changed[int(b.y):int(b.y + b.h), max(x - 2, 0):x + 3].any()


def test_truncated_rust_stream_through_a_python_filter():
    src = [sl("sl-test"), "--fast", "-n", "5", "-s", "64x48"]
    r = pipeline(src, ["head", "-c", "30000"], python_stage("sl-invert"), [sl("sl-info"), "--json"])
    assert r.codes[2] == 1 and "truncated" in r.stderrs[2]
    assert r.codes[3] == 1
    assert json.loads(r.stdout)["ending"] == "truncated"


def test_closed_pipe_after_a_python_filter_in_a_rust_pipeline():
    src = [sl("sl-test"), "--fast", "-n", "200", "-s", "1280x720"]
    r = pipeline(src, python_stage("sl-invert"), ["head", "-c", "1000"])
    assert r.codes == [0, 0, 0], r.stderrs
    assert r.stderrs[1] == ""


def test_sl_list_finds_python_stages_on_path(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(EXAMPLES / "sl-invert", bindir / "sl-pyinvert")
    env = env_with_path()
    env["PATH"] = os.pathsep.join([str(bindir), env["PATH"]])
    listed = subprocess.run([sl("sl"), "--list"], capture_output=True, env=env, timeout=60, text=True)
    assert listed.returncode == 0, listed.stderr
    lines = {ln.split()[0]: ln.split() for ln in listed.stdout.splitlines() if ln.strip()}
    assert lines["pyinvert"][1:] == ["plugin", str(bindir / "sl-pyinvert")]
    assert lines["motion"][1:] == ["plugin", str(EXAMPLES / "sl-motion")]
    # and `sl NAME` runs it in a pipeline
    r = subprocess.run(f"'{sl('sl')}' test -n 2 --fast -s 16x16 | '{sl('sl')}' pyinvert | '{sl('sl')}' info --json",
                       shell=True, capture_output=True, env=env, timeout=60, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["streams"][0]["frames"] == 2


def test_run_yields_frames_and_feed_writes_them():
    env_path = env_with_path()["PATH"]
    os.environ["PATH"], old = env_path, os.environ["PATH"]
    try:
        frames = []
        for f in streamlib.run("sl-test -n 5 --fast -s 64x48 -f rgb24 -p box"):
            frames.append(f.image.copy())
        assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
        with streamlib.run(["sl-test", "-n", "3", "--fast", "-s", "32x32"]) as r:
            msgs = list(r.messages())
        assert isinstance(msgs[0], streamlib.StreamInfo) and r.returncode == 0
        out = subprocess.PIPE
        with streamlib.feed([sl("sl-info"), "--json"], stdout=out) as sink:
            for m in msgs:
                sink.write(m)
        report = json.loads(sink.proc.stdout.read())
        assert report["ending"] == "clean" and report["streams"][0]["frames"] == 3
        # input= feeds a stage from a thread while its output is read
        inverted = list(streamlib.run([sys.executable, str(EXAMPLES / "sl-invert")], input=msgs))
        assert len(inverted) == 3 and np.array_equal(inverted[0].image[..., :3], 255 - msgs[1].image[..., :3])
    finally:
        os.environ["PATH"] = old


def test_run_drains_stderr_and_reports_failures():
    env = env_with_path()
    os.environ["PATH"], old = env["PATH"], os.environ["PATH"]
    try:
        # 2 MB on stderr before any frame: a child blocked on an undrained stderr never gets there
        noisy = "head -c 2000000 /dev/zero | tr '\\0' x >&2; sl-test -n 3 --fast -s 16x16"
        with streamlib.run(noisy, stderr="capture") as r:
            assert len(list(r)) == 3
        assert len(r.stderr) == 16 << 10  # the tail is kept
        with pytest.raises(streamlib.PipelineError, match="--bogus"):
            list(streamlib.run("sl-test --bogus", stderr="capture"))
        # an endless source, left early: the pipe closes and the stage ends quietly (one
        # that kept running would be killed after 30 s, and its status would not be 0)
        with streamlib.run("sl-test --fast -s 320x240", stderr="capture") as r:
            for f in r:
                break
        assert r.returncode == 0 and r.stderr == ""
    finally:
        os.environ["PATH"] = old


def test_overlay_blends_another_pipeline(tmp_path):
    script = tmp_path / "square.rhai"
    script.write_text('fn draw(canvas, ctx) { canvas.fill_rect(10.0, 10.0, 20.0, 20.0, rgba(255, 255, 255, 1.0)); }\n')
    src = [sl("sl-test"), "--fast", "-n", "4", "-s", "64x48", "-p", "solid", "--color", "black"]
    over = f"sl-draw --fast -s 64x48 '{script}'"
    r = pipeline(src, python_stage("sl-overlay") + [over, "--opacity", "0.5"])
    r.assert_success()
    frames = r.frames()
    assert len(frames) == 4
    for f in frames:
        assert tuple(f.image[20, 20]) == (128, 128, 128, 255)  # half-white over black
        assert tuple(f.image[5, 5]) == (0, 0, 0, 255)           # transparent overlay: untouched


def test_unknown_kinds_survive_python_and_rust_pass_through():
    from streamlib import codec

    unknown = bytearray(16) + b"future header"
    codec.PREFIX.pack_into(unknown, 0, 0x42, 0x80, 7, 13, 6)
    body = python_made_stream()[16:]
    data = codec.STREAM_HEADER + bytes(unknown) + b"future" + body
    r = pipeline(python_stage("sl-invert"), [sl("sl-info"), "--pass", "-q"], python_stage("sl-invert"), stdin=data)
    r.assert_success()
    msgs = r.messages()
    assert isinstance(msgs[0], streamlib.Unknown)
    assert (msgs[0].kind, msgs[0].flags, msgs[0].stream, msgs[0].header, msgs[0].payload) == (
        0x42, 0x80, 7, b"future header", b"future")
    assert r.stdout == data  # inverted twice: every byte as it was
