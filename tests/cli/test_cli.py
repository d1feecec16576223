"""The `anime` command as a user runs it: subprocesses, exit codes, one-line errors, files written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import tiny_anime_plugin
import torch
from helpers import make_image, subprocess_env, write_images
from PIL import Image

from anime_core.weights.files import save_native


@pytest.fixture
def anime(tiny_site):
    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "anime_core.cli", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=180,
            env=subprocess_env(tiny_site, **(env or {})),
        )

    return run


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    return save_native(
        tmp_path / "tiny.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)}, "tiny", {"width": 4}
    )


def _no_traceback(out: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in out.stderr, out.stderr


def test_info_and_plugins(anime):
    info = anime("info", "tiny")
    assert info.returncode == 0, info.stderr
    # where the generator lives, and its size: 3*8*9 + 8*8*9 + 8*3*9 weights + 8+8+3 biases
    assert "generator: tiny.g (tiny_anime_plugin:TinyGenerator): 1,027 parameters" in info.stdout
    assert "demo: not cached" in info.stdout and "width: 8" in info.stdout
    plugins = anime("plugins", "--json")
    tiny = next(p for p in json.loads(plugins.stdout) if p["name"] == "tiny")
    assert tiny["ok"] and tiny["distribution"] == "tiny-anime-plugin" and tiny["registered"]["models"] == 2


def test_run_writes_good_files_and_names_bad_ones(anime, weights, tmp_path):
    src = tmp_path / "in"
    write_images(src, 2, size=(20, 14))
    (src / "bad.jpg").write_text("nope")
    out = anime("run", "tiny", "--weights", weights, src, "-o", tmp_path / "out", "--batch-size", "2")
    _no_traceback(out)
    assert out.returncode == 1
    assert f"failed: {src / 'bad.jpg'}: not an image Pillow can read" in out.stderr
    assert "tiny: 2 written, 1 failed" in out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img000.png", "img001.png"]
    assert Image.open(tmp_path / "out" / "img000.png").size == (20, 14)


def test_unknown_model_and_missing_weights(anime, tmp_path):
    make_image((8, 8), 0).save(tmp_path / "a.png")
    out = anime("run", "tinny", tmp_path / "a.png")
    _no_traceback(out)
    assert out.returncode == 2 and "unknown model 'tinny'; did you mean 'tiny'?" in out.stderr
    out = anime("run", "tiny", tmp_path / "a.png")
    assert out.returncode == 2 and "needs pretrained weights: pass --style (demo) or --weights FILE" in out.stderr


def test_offline_style_exits_3_with_url_and_import_command(anime, tmp_path):
    make_image((8, 8), 0).save(tmp_path / "a.png")
    out = anime("run", "tiny", "--style", "demo", tmp_path / "a.png", env={"ANIME_OFFLINE": "1"})
    _no_traceback(out)
    assert out.returncode == 3
    assert "http://127.0.0.1:9/tiny-style.safetensors" in out.stderr
    assert "anime weights import tiny:demo FILE" in out.stderr
    debug = anime("--debug", "run", "tiny", "--style", "demo", tmp_path / "a.png", env={"ANIME_OFFLINE": "1"})
    assert "Traceback" in debug.stderr and debug.returncode == 3
    # --debug also works after the sub-command (issue 17 item 3)
    late = anime("run", "tiny", "--style", "demo", tmp_path / "a.png", "--debug", env={"ANIME_OFFLINE": "1"})
    assert "Traceback" in late.stderr and late.returncode == 3 and "No such option" not in late.stderr


def test_weights_import_verify_path_then_run_style(anime, weights, tmp_path):
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    env = {"TINY_STYLE_SHA256": sha}
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"x")
    out = anime("weights", "import", "tiny:demo", bad, env=env)
    assert out.returncode == 3 and "is not the published weights for tiny:demo" in out.stderr
    out = anime("weights", "import", "tiny:demo", weights, env=env)
    assert out.returncode == 0, out.stderr
    assert anime("weights", "verify", env=env).stdout.startswith("tiny:demo: ok")
    cached = anime("weights", "path", "tiny:demo", env=env).stdout.strip()
    assert cached.endswith("weights/tiny/demo/tiny-style.safetensors")
    make_image((40, 30), 0).save(tmp_path / "a.png")
    out = anime("run", "tiny", "--style", "demo", tmp_path / "a.png", "-o", tmp_path / "o.png", env=env)
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "o.png").size == (24, 18)  # the style's preprocess size: long side 24


def test_train_errors_and_run_of_the_result(anime, tmp_path):
    write_images(tmp_path / "p", 4)
    write_images(tmp_path / "a", 4, seed=2)
    data = [f"data.photo={tmp_path / 'p'}", f"data.anime={tmp_path / 'a'}"]
    out = anime("train", "tiny", *data, "train.max_stpes=2")
    _no_traceback(out)
    assert out.returncode == 2 and "did you mean 'train.max_steps'" in out.stderr
    out = anime("train", "tiny", *data, "train.max_steps=2", f"output_dir={tmp_path / 'run'}", "-q")
    assert out.returncode == 0, out.stderr
    out = anime(
        "run", "tiny", "--weights", tmp_path / "run" / "generator.safetensors", tmp_path / "p", "-o", tmp_path / "o"
    )
    assert out.returncode == 0 and len(list((tmp_path / "o").iterdir())) == 4


def test_generate_same_seed_same_grid(anime, tmp_path):
    torch.manual_seed(0)
    w = save_native(tmp_path / "g.safetensors", {"generator": tiny_anime_plugin.TinyGen()}, "tinygen")
    for name in ("a.png", "b.png"):
        out = anime("run", "tinygen", "--weights", w, "--num", "4", "--seed", "3", "-o", tmp_path / name)
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_run_help_does_not_import_torch():
    """``anime run --help`` and ``anime run MODEL --help`` build their options from the specs alone.

    The installed plugins' entry modules are light (the tiny test plugin is not, so it is left out).
    """
    code = (
        "import sys\n"
        "from anime_core.cli import cli\n"
        "for args in (['run', '--help'], ['run', 'ae', '--help'], ['run', 'dcgan', '--help']):\n"
        "    try:\n"
        "        cli.main(args=args, prog_name='anime', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=subprocess_env())
    assert out.returncode == 0, out.stderr
    assert "--interpolate" in out.stdout and "--max-pixels" in out.stdout and "--num" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"
