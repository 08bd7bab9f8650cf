"""The Python in docs/python.md and docs/plugins.md compiles, and the pipelines example runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import REPO, env_with_path, sl

DOCS = [REPO / "docs" / "python.md", REPO / "docs" / "plugins.md"]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_blocks_compile(doc):
    blocks = python_blocks(doc)
    assert blocks, f"no python blocks in {doc}"
    for i, code in enumerate(blocks):
        compile(code, f"{doc.name} block {i}", "exec")


def test_pipelines_example_runs(tmp_path):
    sl("sl-file")
    (block,) = [b for b in python_blocks(REPO / "docs" / "python.md") if "streamlib.feed(" in b]
    p = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env_with_path(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                            "stream=nb_read_frames", "-of", "json", str(tmp_path / "out.mp4")],
                           capture_output=True, text=True, timeout=60)
    assert json.loads(probe.stdout)["streams"][0]["nb_read_frames"] == "30"


def test_writer_example_feeds_sl_draw():
    (block,) = [b for b in python_blocks(REPO / "docs" / "python.md") if "moving right" in b]
    env = env_with_path()
    make = subprocess.Popen([sys.executable, "-c", block], stdout=subprocess.PIPE, env=env)
    info = subprocess.run([sl("sl-draw"), str(REPO / "examples" / "boxes.rhai")], stdin=make.stdout,
                          capture_output=True, env=env, timeout=120)
    make.stdout.close()
    assert make.wait(timeout=60) == 0 and info.returncode == 0, info.stderr
    report = subprocess.run([sl("sl-info"), "--json"], input=info.stdout, capture_output=True, timeout=60)
    assert json.loads(report.stdout)["streams"][0]["frames"] == 90
