"""Issue 24 item 7: a big folder can be continued. Ctrl-C during ``anime run`` says how many files were
written, how many remain and the exact command that continues; ``--skip-existing`` runs only the rest, and
the summary counts the outputs a run replaced. On the eight real photos of ../shared/photos."""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_anime_plugin
import torch
from helpers import subprocess_env
from photos import PHOTOS  # ../shared/photos beside the checkout, or $ANIME_TEST_PHOTOS

from anime_core.cli import main
from anime_core.runner import translate
from anime_core.weights.files import save_native

pytestmark = pytest.mark.skipif(not PHOTOS.is_dir(), reason="the real photos (../shared/photos) are not here")


def _photos(folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    for photo in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(photo, folder / photo.name)
    found = sorted(folder.iterdir())
    assert len(found) == 8
    return found


def _weights(path: Path, width: int) -> Path:
    torch.manual_seed(0)
    net = tiny_anime_plugin.TinyGenerator(width=width)
    return save_native(path, {"generator": net}, "tiny", {"width": width})


def _anime(capsys, args: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    return stop.value.code, capsys.readouterr().err


def _continue_args(err: str) -> list[str]:
    """The arguments of the command the interruption message gives (after ``anime``)."""
    lines = [line for line in err.splitlines() if line.startswith("to continue: ")]
    assert len(lines) == 1, err
    argv = shlex.split(lines[0].removeprefix("to continue: "))
    assert argv[0] == "anime" and argv[-1] == "--skip-existing", argv
    return argv[1:]


def _state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_ctrl_c_says_what_is_left_and_skip_existing_runs_only_that(tiny_registry, tmp_path, capsys, monkeypatch):
    photos = _photos(tmp_path / "in")
    weights = _weights(tmp_path / "tiny.safetensors", 4)
    out = tmp_path / "out"
    args = ["run", "tiny", "--weights", weights, tmp_path / "in", "-o", out, "--size", "96", "--batch-size", "1"]

    calls = []
    real = translate.translate_group

    def interrupted_at_the_fourth(*a, **kw):  # Ctrl-C while the 4th photo is in the model
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(translate, "translate_group", interrupted_at_the_fourth)
    code, err = _anime(capsys, args)
    assert code == 130, err
    assert "interrupted: 3 files written, 5 remain" in err, err
    assert "Traceback" not in err and "aborted" not in err
    first = _state(out)
    assert sorted(first) == [p.with_suffix(".jpg").name for p in photos[:3]]  # outputs keep the input's name
    rest = _continue_args(err)
    assert [str(a) for a in args] == rest[:-1]  # the same command, plus --skip-existing

    monkeypatch.setattr(translate, "translate_group", real)
    calls.clear()
    code, err = _anime(capsys, rest)
    assert code == 0, err
    assert re.search(r"^tiny: 5 written, 3 skipped \(output exists\), 0 failed, [\d.]+ s$", err, re.M), err
    after = _state(out)
    assert len(after) == 8 and all(after[name] == first[name] for name in first)  # the 3 were not rewritten

    code, err = _anime(capsys, [*args[:6], tmp_path / "fresh", *args[7:]])  # one uninterrupted run, elsewhere
    assert code == 0, err
    fresh = _state(tmp_path / "fresh")
    assert {k: v[0] for k, v in fresh.items()} == {k: v[0] for k, v in after.items()}  # same files, same bytes

    code, err = _anime(capsys, args)  # again without --skip-existing: every output is replaced, and counted
    assert code == 0, err
    assert re.search(r"^tiny: 8 written \(8 replaced\), 0 failed", err, re.M), err


def test_skip_existing_with_nothing_left_writes_nothing(tiny_registry, tmp_path, capsys):
    _photos(tmp_path / "in")
    weights = _weights(tmp_path / "tiny.safetensors", 4)
    args = ["run", "tiny", "--weights", weights, tmp_path / "in", "-o", tmp_path / "out", "--size", "64"]
    assert _anime(capsys, args)[0] == 0
    before = _state(tmp_path / "out")
    code, err = _anime(capsys, [*args, "--skip-existing"])
    assert code == 0 and re.search(r"^tiny: 0 written, 8 skipped \(output exists\), 0 failed", err, re.M), err
    assert _state(tmp_path / "out") == before


@pytest.mark.slow  # a subprocess that loads torch, then a second one
def test_sigint_to_a_running_anime_run(tiny_site, tmp_path):
    """A real SIGINT: the message's counts are the files on disk, and the printed command finishes the job."""
    _photos(tmp_path / "in")
    weights = _weights(tmp_path / "tiny.safetensors", 32)  # a wider net: seconds per photo, time to press Ctrl-C
    out = tmp_path / "out"
    env = subprocess_env(tiny_site, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "anime_core.cli"]
    args = ["run", "tiny", "--weights", str(weights), str(tmp_path / "in"), "-o", str(out), "--batch-size", "1"]
    proc = subprocess.Popen([*cmd, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 240
    while not (out.is_dir() and any(p.suffix == ".jpg" for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    done = sorted(p.name for p in out.iterdir())
    assert all(p.suffix == ".jpg" for p in out.iterdir())  # no temp file left behind
    assert 1 <= len(done) < 8, err
    assert f"interrupted: {len(done)} files written, {8 - len(done)} remain" in err, err
    rest = _continue_args(err)
    assert rest == [*args, "--skip-existing"]
    again = subprocess.run([*cmd, *rest], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"tiny: {8 - len(done)} written, {len(done)} skipped (output exists), 0 failed" in again.stderr
    assert len(list(out.iterdir())) == 8


def test_skip_existing_finds_the_invented_names_of_the_interrupted_run(tiny_registry, tmp_path, capsys, monkeypatch):
    """Two inputs named alike get NAME.jpg and NAME-1.jpg; continuing finds NAME-1.jpg again (no NAME-2.jpg)."""
    photos = _photos(tmp_path / "in")
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    a, b, c = tmp_path / "d1" / "same.jpg", tmp_path / "d2" / "same.jpg", tmp_path / "d2" / "other.jpg"
    for src, dest in zip(photos, (a, b, c)):
        shutil.copy(src, dest)
    weights = _weights(tmp_path / "tiny.safetensors", 4)
    out = tmp_path / "out"
    args = ["run", "tiny", "--weights", weights, a, b, c, "-o", out, "--size", "64", "--batch-size", "1"]
    real = translate.translate_group
    calls = []

    def interrupted_at_the_third(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(translate, "translate_group", interrupted_at_the_third)
    code, err = _anime(capsys, args)
    assert code == 130 and "interrupted: 2 files written, 1 remain" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["same-1.jpg", "same.jpg"]
    monkeypatch.setattr(translate, "translate_group", real)
    code, err = _anime(capsys, _continue_args(err))
    assert code == 0 and "tiny: 1 written, 2 skipped (output exists), 0 failed" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["other.jpg", "same-1.jpg", "same.jpg"]
    code, err = _anime(capsys, args)  # without --skip-existing an invented name still never replaces a file
    assert code == 0 and "tiny: 3 written (2 replaced), 0 failed" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["other.jpg", "same-1.jpg", "same-2.jpg", "same.jpg"]
