"""Shared fixtures for the reliability tests: tiny training data and a CLI training run in the background."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import subprocess_env, write_images


@pytest.fixture
def train_data(tmp_path) -> list[str]:
    """``data.photo=...``/``data.anime=...`` overrides for six photos and five anime images (24 px)."""
    write_images(tmp_path / "photo", 6)
    write_images(tmp_path / "anime", 5, seed=1)
    return [f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}"]


def _metric_rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def metric_rows() -> Callable[[Path], list[dict[str, str]]]:
    """``metric_rows(run)``: the rows of ``<run>/metrics.csv``."""
    return _metric_rows


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool], float, str], None]:
    """``wait_for(condition, timeout, what)``: poll until true, fail after ``timeout`` seconds."""
    return _wait_for


@pytest.fixture
def background_train(tiny_site, train_data):
    """Start ``anime train tiny`` (a long run) in a subprocess; returns once it has logged a step."""
    started: list[subprocess.Popen] = []

    def start(run_dir: Path, *overrides: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "anime_core.cli", "train", "tiny", *train_data, f"output_dir={run_dir}"]
        cmd += ["train.max_steps=1000000", *overrides, "-q"]
        proc = subprocess.Popen(
            cmd, env=subprocess_env(tiny_site), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(proc)
        metrics = run_dir / "metrics.csv"
        _wait_for(
            lambda: proc.poll() is not None or (metrics.is_file() and len(_metric_rows(run_dir)) >= 2),
            120,
            "the background run's first steps",
        )
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


# Runs ``anime ARGS`` in a fresh interpreter whose address space is capped at what it uses after
# importing torch and the readers, plus ``headroom``: RLIMIT_AS itself cannot be set before the
# imports, since torch alone maps more than 2 GB of address space. Preloaded, not lazily imported,
# so the cap measures the work, not the imports.
_BOUNDED = """
import resource, sys
import numpy, torch, safetensors.torch, PIL.Image  # noqa
for mod in ("onnx", "onnxruntime", "av"):
    try:
        __import__(mod)
    except ImportError:
        pass
import anime_core.cli
from anime_core.budget import _address_space_in_use
headroom = int(sys.argv[1])
limit = _address_space_in_use() + headroom
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["anime", *sys.argv[2:]]
anime_core.cli.main()
"""


@dataclass
class Bounded:
    returncode: int
    stdout: str
    stderr: str


def _run_bounded(args: list[str], headroom: int = 2 << 30, env: dict[str, str] | None = None,
                 timeout: float = 120) -> Bounded:
    import os

    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", _BOUNDED, str(headroom), *map(str, args)],
        env=full_env, capture_output=True, text=True, timeout=timeout,
    )
    return Bounded(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_bounded() -> Callable[..., Bounded]:
    """``run_bounded(args, headroom=2 GiB, env=None)``: ``anime ARGS`` with RLIMIT_AS = imports + headroom.

    Assert on ``returncode`` and ``stderr``: a refusal is exit 2/3 with one sentence, never a
    MemoryError (exit 1, "unexpected") or a kill (negative return code).
    """
    return _run_bounded
