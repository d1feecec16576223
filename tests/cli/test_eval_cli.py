"""``anime eval`` through click: tables, JSON, CSV, exit codes, and the MODEL mode with the tiny plugin."""

from __future__ import annotations

import json
import re

import pytest
import tiny_anime_plugin
import torch
from click.testing import CliRunner
from helpers import write_images
from torch import nn

from anime_core.cli.eval_cmd import eval_command
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.weights.files import save_native


class ChannelMean(nn.Module):
    name = "channel-mean"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def invoke(*args):
    return CliRunner().invoke(eval_command, [str(a) for a in args], standalone_mode=False)


@pytest.fixture
def folders(tmp_path):
    write_images(tmp_path / "real", 5, (16, 16), seed=1)
    write_images(tmp_path / "fake", 5, (16, 16), seed=2)
    return tmp_path / "real", tmp_path / "fake"


@pytest.fixture
def small_inception(monkeypatch):
    """Stand in for the Inception network (its weights cannot be downloaded in tests)."""
    from anime_core.metrics import inception

    monkeypatch.setattr(inception, "InceptionV3Features", ChannelMean)


def test_json_and_csv_for_paired_metrics(folders, tmp_path):
    real, fake = folders
    out = invoke("--real", real, "--fake", fake, "-m", "psnr,ssim", "--json", "--csv", tmp_path / "p.csv", "-q")
    assert out.exception is None and out.return_value == 0
    data = json.loads(out.stdout)
    assert set(data["metrics"]) == {"psnr", "ssim"} and data["counts"] == {"pairs": 5}
    assert data["metrics"]["psnr"]["implementation"].startswith("torchmetrics ")
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0] == "name,real,fake,psnr,ssim"


def test_table_and_bad_image_exit_1(folders, small_inception, tmp_path):
    real, fake = folders
    (fake / "junk.png").write_text("nope")
    out = invoke("--real", real, "--fake", fake, "-m", "fid,kid,is,prc", "-q")
    assert out.exception is None and out.return_value == 1
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["METRIC", "VALUE", "IMPLEMENTATION", "EXTRACTOR", "DETAIL"]
    assert [r.split()[0] for r in rows[:5]] == ["fid", "kid", "is", "precision", "recall"]
    assert "channel-mean" in rows[0] and "(5 real, 5 fake; 1 unreadable)" in out.stdout
    assert f"failed: {fake / 'junk.png'}: not an image" in out.stderr


def test_offline_distribution_metrics_exit_3_but_psnr_printed(folders, tmp_path, monkeypatch):
    real, fake = folders
    monkeypatch.chdir(tmp_path)
    out = invoke("--real", real, "--fake", fake, "-m", "fid,psnr", "-q")
    assert isinstance(out.exception, WeightsUnavailable) and out.exception.exit_code == 3
    assert "anime weights import backbone:inception" in str(out.exception)
    assert out.stdout.splitlines()[1].startswith("psnr ") and re.search(r"^fid +unavailable", out.stdout, re.M)
    assert not (tmp_path / "eval_per_image.csv").exists()  # per-image scores only with --per-image (issue 17)


def test_usage_errors(folders, tmp_path):
    real, fake = folders
    (fake / "extra.png").write_bytes((fake / "img000.png").read_bytes())
    out = invoke("--real", real, "--fake", fake, "-m", "ssim")
    assert isinstance(out.exception, UsageError) and "(extra)" in str(out.exception)
    out = invoke("--real", real, "--fake", fake, "-m", "fdi")
    assert isinstance(out.exception, UsageError) and "did you mean 'fid'" in str(out.exception)
    out = invoke("--real", real)
    assert isinstance(out.exception, UsageError) and "--fake" in str(out.exception)


def test_translate_model_scored_against_anime_folder(tiny_registry, tmp_path):
    torch.manual_seed(0)
    weights = save_native(
        tmp_path / "t.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(4)}, "tiny", {"width": 4}
    )
    write_images(tmp_path / "photos", 3, (16, 16), seed=1)
    write_images(tmp_path / "anime", 3, (16, 16), seed=2)
    args = ["tiny", "--weights", weights, "--photos", tmp_path / "photos", "--anime", tmp_path / "anime"]
    out = invoke(
        *args, "-m", "psnr", "--json", "-o", tmp_path / "outs", "--csv", tmp_path / "p.csv", "--device", "cpu", "-q"
    )
    assert out.exception is None, out.exception
    assert json.loads(out.stdout)["counts"] == {"pairs": 3}
    assert sorted(p.name for p in (tmp_path / "outs").iterdir()) == ["img000.png", "img001.png", "img002.png"]
    out = invoke(*args, "--real", tmp_path / "anime")
    assert isinstance(out.exception, UsageError)


def test_generate_model_samples_num_images(tiny_registry, small_inception, tmp_path):
    weights = save_native(tmp_path / "g.safetensors", {"generator": tiny_anime_plugin.TinyGen()}, "tinygen")
    write_images(tmp_path / "anime", 4, (8, 8))
    out = invoke("tinygen", "-w", weights, "--anime", tmp_path / "anime", "--num", 6, "-m", "fid,prc", "--json", "-q")
    assert out.exception is None, out.exception
    data = json.loads(out.stdout)
    assert data["counts"] == {"real": 4, "fake": 6} and set(data["metrics"]) == {"fid", "precision", "recall"}
    out = invoke("tinygen", "-w", weights, "--anime", tmp_path / "anime", "--photos", tmp_path / "anime")
    assert isinstance(out.exception, UsageError) and "--num" in str(out.exception)
