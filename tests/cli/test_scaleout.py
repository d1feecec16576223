"""``anime run`` split across threads (decode/write overlap) and processes (``accelerate launch``).

Either way the files written and the report are those of one thread in one process.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_anime_plugin
import torch
from helpers import make_image, subprocess_env, write_images

import anime_core
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import translate_files
from anime_core.weights.files import save_native

#: logs every ``os.replace`` (how each atomic write ends) with the process's rank, in every process
SITECUSTOMIZE = """
import os
_replace = os.replace
def _logged(src, dst, *args, **kwargs):
    _replace(src, dst, *args, **kwargs)
    if os.environ.get("WRITE_LOG"):
        with open(os.environ["WRITE_LOG"], "a") as log:
            log.write(f"{os.environ.get('RANK', '-')} {os.fspath(dst)}\\n")
os.replace = _logged
"""


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_native(
        tmp_path / "tiny.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)}, "tiny", {"width": 4}
    )


def _inputs(tmp_path: Path) -> list[str]:
    """Two sizes, a clash (``img000.png`` twice), a file that is no image and a two-frame GIF."""
    src = tmp_path / "in"
    write_images(src, 4, size=(20, 14))
    write_images(src / "sub", 2, size=(16, 16), seed=1)
    (src / "bad.png").write_text("no image")
    frames = [make_image((18, 12), i) for i in range(2)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=[40, 60], loop=0)
    other = write_images(tmp_path / "other", 1, size=(20, 14), seed=2)
    return [str(src), str(other[0])]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overlapped_run_writes_and_reports_like_one_thread(tiny_registry, weights, tmp_path):
    pipe = anime_core.load("tiny", weights=weights, device="cpu")
    inputs = _inputs(tmp_path)
    reports = {}
    for prefetch in (0, 2):
        options = FileOptions(output=tmp_path / f"out{prefetch}", batch_size=2, progress=False,
                                    side_by_side=True, prefetch=prefetch)
        reports[prefetch] = translate_files(pipe, inputs, options)
    serial, overlapped = reports[0], reports[2]
    assert [p.name for p in serial.written] == [p.name for p in overlapped.written]
    assert serial.failed == overlapped.failed == [(str(tmp_path / "in" / "bad.png"), "not an image Pillow can read")]
    assert serial.notes == overlapped.notes
    assert len(serial.written) == 8 and "img000-1.png" in {p.name for p in serial.written}
    assert _tree(tmp_path / "out0") == _tree(tmp_path / "out2")


def test_overlapped_run_reports_a_failed_write_in_order(tiny_registry, weights, tmp_path):
    write_images(tmp_path / "in", 3, size=(20, 14))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "img001.png").mkdir()  # a folder where the output should go: that write fails
    pipe = anime_core.load("tiny", weights=weights, device="cpu")
    report = translate_files(pipe, [str(tmp_path / "in")], FileOptions(output=tmp_path / "out",
                                                                                      progress=False, prefetch=2))
    assert [p.name for p in report.written] == ["img000.png", "img002.png"]
    assert len(report.failed) == 1 and report.failed[0][0].endswith("img001.png")
    assert report.failed[0][1].startswith(f"cannot write {tmp_path / 'out' / 'img001.png'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_write_each_input_once_and_print_one_summary(tiny_site, weights, tmp_path):
    inputs = _inputs(tmp_path)
    from video_helpers import make_clip

    make_clip(tmp_path / "in" / "clip.mp4", n=6, size=(32, 24), audio=None)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = subprocess_env(tiny_site, OMP_NUM_THREADS="1")  # same kernels in both runs: equal pixels
    env["PYTHONPATH"] = f"{hooks}:{env['PYTHONPATH']}"
    args = ["run", "tiny", "--weights", str(weights), *inputs, "--batch-size", "2"]

    def launch(out: str, log: str, *launcher: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, *launcher, "-m", "anime_core.cli", *args, "-o", str(tmp_path / out)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**env, "WRITE_LOG": str(tmp_path / log)})

    one = launch("one", "one.log")
    two = launch("two", "two.log", "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                 "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                 "--main_process_port", str(_free_port()))
    assert one.returncode == 1, one.stderr  # bad.png failed; every good input was still written
    assert two.returncode != 0, two.stderr  # each process exits 1 (the merged report); the launcher says so
    writes = [line.split(" ", 1) for line in (tmp_path / "two.log").read_text().splitlines()]
    written = [Path(dest).relative_to(tmp_path / "two").as_posix() for _, dest in writes]
    assert sorted(written) == sorted(set(written)) == sorted(_tree(tmp_path / "one"))  # each input exactly once
    assert {rank for rank, _ in writes} == {"0", "1"}  # both processes did a share
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")  # same names, same bytes (the clip included)
    summaries = [line for line in two.stderr.splitlines() if re.match(r"tiny: \d+ written", line)]
    assert len(summaries) == 1 and re.fullmatch(r"tiny: 9 written, 1 failed, [\d.]+ s", summaries[0]), two.stderr
    assert two.stderr.count(f"failed: {tmp_path / 'in' / 'bad.png'}: not an image") == 1
