"""Issue 25 "Bounded by design": plugin code is contained, globs end, text from outside cannot drive the terminal.

Hostile plugins are *installed* in a tmp site folder (module + dist-info with an entry point) and run
through the real CLI in a subprocess; hostile file names are made in ``tmp_path``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import tiny_anime_plugin
import torch
from helpers import make_image, subprocess_env

from anime_core import hookimpl
from anime_core.cli import main
from anime_core.registry import load_registry, using_registry
from anime_core.runner.inputs import collect_inputs, expand_glob
from anime_core.specs import ModelSpec
from anime_core.weights.files import save_native

#: a name from outside that tries to colour the terminal and forge an error line of its own
HOSTILE = "x\x1b[31m\nerror: fake"
ESCAPED = "x\\x1b[31m\\nerror: fake"


def _install(site: Path, name: str, code: str) -> None:
    """Install plugin ``name`` (module ``p_NAME``, distribution ``p-NAME``) whose import runs ``code``."""
    site.mkdir(exist_ok=True)
    (site / f"p_{name}.py").write_text(code)
    info = site / f"p_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: p-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[anime.plugins]\n{name} = p_{name}\n")


def _anime(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "anime_core.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def _plugins_json(env: dict[str, str]) -> dict[str, dict]:
    out = _anime(env, "plugins", "--json")
    assert out.returncode == 0, out.stderr
    return {p["name"]: p for p in json.loads(out.stdout)}


# -- 1. a broken plugin breaks only itself --------------------------------------------------------
@pytest.fixture
def hostile_site(tmp_path) -> Path:
    site = tmp_path / "site"
    _install(site, "exiter", "import sys\nsys.exit(7)\n")
    _install(site, "interrupter", "raise KeyboardInterrupt\n")
    _install(site, "printer", "print('hello from a plugin')\n")
    _install(site, "marker", f"open({str(tmp_path / 'imported')!r}, 'w').close()\nraise ImportError('x')\n")
    return site


def test_exit_and_interrupt_at_import_are_the_plugins_error_and_prints_keep_json_clean(hostile_site):
    env = subprocess_env(hostile_site)
    listing = _anime(env, "list", "--json")
    assert listing.returncode == 0, listing.stderr  # was: exit 7 and no output, or "aborted"
    models = {m["name"] for m in json.loads(listing.stdout)}  # was: "hello from a plugin" before the JSON
    assert "animegan" in models
    assert "hello from a plugin" in listing.stderr
    plugins = _plugins_json(env)
    assert plugins["exiter"]["errors"] == ["failed to load (SystemExit: 7)"]
    assert plugins["interrupter"]["errors"] == ["failed to load (KeyboardInterrupt)"]
    assert plugins["printer"]["ok"] and plugins["animegan"]["ok"]


def test_disabled_plugins_are_not_imported_and_shown_as_disabled(hostile_site, tmp_path):
    env = subprocess_env(hostile_site, ANIME_DISABLE_PLUGINS="exiter, marker")
    plugins = _plugins_json(env)
    assert plugins["exiter"]["disabled"] and plugins["marker"]["disabled"]
    assert plugins["exiter"]["errors"] == [] and not plugins["interrupter"]["disabled"]
    assert not (tmp_path / "imported").exists()
    table = _anime(env, "plugins")
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
    assert rows["marker"][3] == "disabled" and rows["interrupter"][3] == "ERROR"


@pytest.mark.slow
def test_a_slow_plugin_import_is_named_on_stderr(tmp_path):
    site = tmp_path / "site"
    _install(site, "sleeper", "import time\ntime.sleep(2)\n")
    env = subprocess_env(site, ANIME_PLUGIN_NOTICE_SECONDS="0.3")
    out = _anime(env, "list")
    assert out.returncode == 0, out.stderr
    notices = [line for line in out.stderr.splitlines() if "still importing" in line]
    assert len(notices) == 1, out.stderr  # once, naming the plugin and how to skip it
    assert "plugin 'sleeper' (0.3 s)" in notices[0] and "ANIME_DISABLE_PLUGINS=sleeper" in notices[0]


@pytest.mark.slow
def test_a_real_ctrl_c_during_a_hanging_import_still_aborts(tmp_path):
    """KeyboardInterrupt raised by plugin code is recorded; the user's own Ctrl-C (SIGINT) ends the command."""
    site = tmp_path / "site"
    _install(site, "hang", "import time\ntime.sleep(15)\n")
    env = subprocess_env(site, ANIME_PLUGIN_NOTICE_SECONDS="0.2")
    cmd = [sys.executable, "-m", "anime_core.cli", "list"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()  # the notice: the import is under way
        assert "still importing plugin 'hang'" in line, line
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130 and time.monotonic() - start < 10, err
    assert "aborted" in err or "interrupted" in err


# -- 2. globs end on symlink loops and stay bounded -------------------------------------------------
@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_native(tmp_path / "tiny.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)},
                       "tiny", {"width": 4})


@pytest.mark.slow
def test_a_recursive_glob_ends_on_a_symlink_loop(run_bounded, tiny_site, tiny_weights, tmp_path):
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    make_image((16, 12), 1).save(data / "x" / "a.png")
    (data / "x" / "up").symlink_to("..")  # two ways back up at every level: 2^40 paths for glob to walk
    (data / "x" / "up2").symlink_to("..")
    out = tmp_path / "out"
    done = run_bounded(["run", "tiny", "--weights", tiny_weights, f"{data}/**/*.png", "-o", out, "-q"],
                       env=subprocess_env(tiny_site), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 written, 0 failed" in done.stderr and (out / "a.png").is_file()


def test_a_glob_that_looks_at_too_many_entries_is_refused_in_one_sentence(monkeypatch, tmp_path):
    for i in range(30):
        (tmp_path / f"{i:02d}.png").touch()
    monkeypatch.setattr("anime_core.runner.inputs.GLOB_LIMIT", 20)
    found, bad = collect_inputs([f"{tmp_path}/**/*.png"])
    assert found == [] and len(bad) == 1
    assert bad[0][1].startswith("the pattern looked at over 20 files and folders without finishing; give a folder")
    found, bad = collect_inputs([str(tmp_path)])  # a folder is walked whole
    assert len(found) == 30 and bad == []


def test_globs_match_what_glob_matches(tmp_path, monkeypatch):
    import glob

    monkeypatch.chdir(tmp_path)
    for name in ["a.png", "d1/b.png", "d1/sub/c.png", "d1/.hid/h.png", ".top/t.png", "d2/.z.png", "d2/e.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    for pattern in ["**/*.png", "*/*.png", "**", "d[12]/*", "**/.*.png", ".top/*", "d*/**/c.png",
                    f"{tmp_path}/**/*.png", "d1/sub/*.png", "**/sub", "nope/*.png"]:
        expected = {os.path.normpath(p) for p in glob.glob(pattern, recursive=True)}
        assert {os.path.normpath(p) for p in expand_glob(pattern)} == expected, pattern


# -- 3. text from files and plugins reaches the terminal escaped ------------------------------------
def _one_line_escaped(err: str) -> None:
    assert "\x1b" not in err
    assert not any(line.startswith("error: fake") for line in err.splitlines()), err
    assert ESCAPED in err


@pytest.fixture
def anime(capsys):
    def run(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return done.value.code, captured.out, captured.err

    return run


def test_file_names_in_per_file_failures_are_escaped(anime, tiny_registry, tiny_weights, tmp_path):
    (tmp_path / "in").mkdir()
    make_image((16, 12), 1).save(tmp_path / "in" / "good.png")
    (tmp_path / "in" / f"{HOSTILE}.png").write_bytes(b"not an image")
    code, _, err = anime("run", "tiny", "--weights", tiny_weights, tmp_path / "in", "-o", tmp_path / "out", "-q")
    assert code == 1 and "1 written, 1 failed" in err
    _one_line_escaped(err)
    assert f"failed: {tmp_path / 'in'}/{ESCAPED}.png: " in err


def test_file_names_in_error_lines_are_escaped(anime, tiny_registry, tmp_path):
    code, _, err = anime("run", "tiny", "--weights", tmp_path / f"{HOSTILE}.safetensors", tmp_path)
    assert code == 2
    _one_line_escaped(err)
    assert len(err.splitlines()) == 1


def test_plugin_text_in_info_list_and_plugins_is_escaped(anime):
    hostile = types.SimpleNamespace(
        anime_register_models=hookimpl(lambda: [ModelSpec("evil", "translate", "tiny.g", description=HOSTILE)]),
        anime_register_losses=hookimpl(lambda: (_ for _ in ()).throw(ValueError(HOSTILE))),
    )
    reg = load_registry(extra=[("tiny", tiny_anime_plugin), ("evil-plugin", hostile)], entry_points=False)
    with using_registry(reg):
        code, out, err = anime("info", "evil")
        assert code == 0, err
        _one_line_escaped(out)
        assert f"  {ESCAPED}" in out.splitlines()
        _one_line_escaped(err)  # the warning about the plugin's failed hook
        for command in ("list", "plugins"):
            code, out, err = anime(command)
            assert code == 0, err
            assert "\x1b" not in out
            _one_line_escaped(err)


def test_file_names_in_training_warnings_are_escaped(tmp_path, caplog):
    from anime_core.training.data import readable

    make_image((16, 12), 1).save(tmp_path / "good.png")
    bad = tmp_path / f"{HOSTILE}.png"
    bad.write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="anime.data"):
        assert readable([tmp_path / "good.png", bad]) == [tmp_path / "good.png"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert "\x1b" not in message and "\n" not in message and f"{ESCAPED}.png" in message
