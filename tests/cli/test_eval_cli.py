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


# -- issue 24, item 2: every skipped pair says why, --size, one rule for sizes, partial results kept ------------
def test_shown_escapes_control_characters_and_undecodable_bytes():
    from anime_core.cli.eval_common import shown

    assert shown("a\x1b[31mb\nc\td\x7f") == "a\\x1b[31mb\\nc\\td\\x7f"
    assert shown("caf\udce9.png") == "caf\\xe9.png" and shown("ok é.png") == "ok é.png"


def test_pairs_of_another_aspect_ratio_are_each_named_before_the_error(tmp_path):
    from PIL import Image

    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir(), fake.mkdir()
    names = ["plain", "esc\x1b[2Jape", "new\nline"]
    for name in names:
        Image.new("RGB", (16, 16), "red").save(real / f"{name}.png")
        Image.new("RGB", (16, 8), "red").save(fake / f"{name}.png")
    out = invoke("--real", real, "--fake", fake, "-m", "psnr", "-q")
    assert isinstance(out.exception, UsageError) and "all 3 were skipped" in str(out.exception)
    lines = out.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith("failed: ") and "another aspect ratio" in line for line in lines)
    assert f"failed: {fake}/esc\\x1b[2Jape.png: size 16x8" in out.stderr and "\x1b" not in out.stderr
    assert f"failed: {fake}/new\\nline.png" in out.stderr


def test_same_aspect_ratio_fakes_are_resized_to_the_real_size(tmp_path):
    from helpers import make_image
    from PIL import Image

    real, fake = tmp_path / "real", tmp_path / "fake"
    real.mkdir(), fake.mkdir()
    for i in range(2):
        img = make_image((32, 16), i)
        img.save(real / f"{i}.png")
        img.resize((16, 8), Image.Resampling.LANCZOS).save(fake / f"{i}.png")  # a model's half-size output
    out = invoke("--real", real, "--fake", fake, "-m", "psnr", "--json", "-q")
    assert out.exception is None and out.return_value == 0, out.stderr
    psnr = json.loads(out.stdout)["metrics"]["psnr"]
    assert "(2 fakes resized to their real's size)" in psnr["detail"] and 20 < psnr["value"] < 60
    # --size 16 scales both sides to 16 px on the long side: then they match without resizing the fakes
    out = invoke("--real", real, "--fake", fake, "-m", "psnr", "--json", "-q", "--size", 16)
    assert out.exception is None and "resized" not in json.loads(out.stdout)["metrics"]["psnr"]["detail"]
    assert "long side is N px" in " ".join(CliRunner().invoke(eval_command, ["--help"]).output.split())


def test_size_translates_the_photos_at_n_px(tiny_registry, tmp_path):
    from PIL import Image

    weights = save_native(
        tmp_path / "t.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(4)}, "tiny", {"width": 4}
    )
    write_images(tmp_path / "photos", 2, (32, 24), seed=1)
    write_images(tmp_path / "anime", 2, (32, 24), seed=2)
    out = invoke("tiny", "--weights", weights, "--photos", tmp_path / "photos", "--anime", tmp_path / "anime",
                 "-m", "psnr", "--size", 16, "-o", tmp_path / "outs", "--device", "cpu", "-q")
    assert out.exception is None, out.exception
    assert {Image.open(p).size for p in (tmp_path / "outs").iterdir()} == {(16, 12)}


@pytest.mark.slow
def test_all_checkpoints_keeps_the_scores_of_earlier_checkpoints_when_a_later_one_fails(tiny_registry, tmp_path):
    from anime_core.training import checkpoint
    from anime_core.training.loop import train

    write_images(tmp_path / "photo", 3, (16, 16))
    write_images(tmp_path / "anime", 3, (16, 16), seed=1)
    run = train("tiny", overrides=[f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}",
                                   f"output_dir={tmp_path / 'r'}", "train.max_steps=4", "train.checkpoint_every=2"],
                progress=False)
    (run / "generator.safetensors").unlink()
    second = checkpoint.checkpoints(run)[1].path / "generator.safetensors"
    second.write_bytes(b"damaged")
    out = invoke(run, "--all-checkpoints", "--real", tmp_path / "photo", "-m", "psnr", "--device", "cpu", "-q")
    assert out.exception is not None
    assert f"the scores of 1 checkpoint(s) scored before this are kept in {run / 'eval' / 'checkpoints.csv'}" \
        in out.stderr
    table = (run / "eval" / "checkpoints.csv").read_text().splitlines()
    assert table[0] == "STEP,CHECKPOINT,PSNR" and table[1].startswith("2,checkpoint_0,") and len(table) == 2
