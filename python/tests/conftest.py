"""Shared helpers: where the repository, its Rust stages and the Python examples are, and
how to run a pipeline of real processes joined by real pipes with a timeout."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pytest

import streamlib

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "python" / "examples"
GOLDEN = REPO / "tests" / "data" / "golden-v1.slv"
TIMEOUT = 60


def release_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release"


def sl(name: str) -> str:
    """The path of a built Rust stage. Missing is a failure that says how to build it."""
    path = release_dir() / name
    if not path.exists():
        pytest.fail(
            f"{path} is not built: run scripts/test.sh (or `cargo build --release --bins`) "
            "before scripts/test-python.sh"
        )
    return str(path)


def env_with_path() -> dict:
    """The environment for stages: this interpreter's bin first (so `#!/usr/bin/env python3`
    finds numpy and streamlib), then the examples and the Rust stages."""
    env = dict(os.environ)
    py_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([py_bin, str(EXAMPLES), str(release_dir()), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "python"), env.get("PYTHONPATH")]))
    return env


class Result:
    def __init__(self, stdout: bytes, codes: List[int], stderrs: List[str]) -> None:
        self.stdout, self.codes, self.stderrs = stdout, codes, stderrs

    def messages(self) -> list:
        return list(streamlib.Reader(io.BytesIO(self.stdout)))

    def frames(self) -> list:
        return [m for m in self.messages() if isinstance(m, streamlib.VideoFrame)]

    def assert_success(self) -> None:
        assert self.codes == [0] * len(self.codes), f"exit codes {self.codes}, stderr: {self.stderrs}"


def pipeline(*stages: Sequence[str], stdin: Optional[bytes] = None, timeout: float = TIMEOUT) -> Result:
    """Run stages joined by OS pipes; feed ``stdin`` from a thread, drain every stderr and the
    last stdout from threads (nothing can deadlock); every stage must end within ``timeout``."""
    env = env_with_path()
    procs: List[subprocess.Popen] = []
    prev = subprocess.PIPE if stdin is not None else subprocess.DEVNULL
    for i, argv in enumerate(stages):
        p = subprocess.Popen(list(argv), stdin=prev, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        if i > 0:
            procs[-1].stdout.close()  # only the next stage holds the read end
        procs.append(p)
        prev = p.stdout
    outs: dict = {}

    def drain(key, pipe):
        outs[key] = pipe.read()
        pipe.close()

    threads = [threading.Thread(target=drain, args=(("err", i), p.stderr)) for i, p in enumerate(procs)]
    threads.append(threading.Thread(target=drain, args=("out", procs[-1].stdout)))
    if stdin is not None:
        def feed():
            try:
                procs[0].stdin.write(stdin)
            except BrokenPipeError:
                pass
            finally:
                try:
                    procs[0].stdin.close()
                except BrokenPipeError:
                    pass
        threads.append(threading.Thread(target=feed))
    for t in threads:
        t.start()
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"pipeline {[s[0] for s in stages]} did not end within {timeout}s")
    for t in threads:
        t.join(timeout)
    return Result(outs["out"], codes, [outs[("err", i)].decode("utf-8", "replace") for i in range(len(procs))])


def python_stage(script: str) -> List[str]:
    """argv running an example script with this interpreter."""
    return [sys.executable, str(EXAMPLES / script)]


def encode(messages, finish: bool = True) -> bytes:
    """A byte stream of ``messages`` written by streamlib's Writer."""
    out = io.BytesIO()
    w = streamlib.Writer(out)
    for m in messages:
        w.write(m)
    if finish:
        w.finish()
    return out.getvalue()


def run_py(code: str, stdin: bytes = b"", timeout: float = TIMEOUT) -> Tuple[int, bytes, str]:
    """Run Python code in a child interpreter with streamlib importable."""
    p = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True,
                       env=env_with_path(), timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
