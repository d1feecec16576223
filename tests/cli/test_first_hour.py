"""Issue 17: the traps a new user meets in the first hour, on the command line.

Emulated fp16/bf16 on a CPU, silent full-resolution runs, eval files in the current folder,
help text that hides what differs, and exit codes: each is checked as the user would meet it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_anime_plugin
import torch
from helpers import make_image, subprocess_env, write_images
from PIL import Image

import anime_core
from anime_core.cli import main
from anime_core.cli.run import check_weights_path
from anime_core.errors import UsageError
from anime_core.inference import pipeline as pl
from anime_core.inference import precision as auto
from anime_core.runner.batches import Job
from anime_core.runner.eta import Eta
from anime_core.runner.inputs import InputFile
from anime_core.runner.options import FileOptions
from anime_core.runner.translate import translate_files
from anime_core.weights.files import save_native

EXIT = {"ok": 0, "some inputs failed": 1, "usage": 2, "weights unavailable": 3}


def anime(capsys, *args) -> tuple[int, str, str]:
    """``anime ARGS`` in this process (fast): exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


def flat(text: str) -> str:
    """Help text with click's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    net = tiny_anime_plugin.TinyGenerator(width=4)
    return save_native(tmp_path / "tiny.safetensors", {"generator": net}, "tiny", {"width": 4})


# -- 1. fp16/bf16 where the device only emulates them ---------------------------------------
def _native(monkeypatch, fp16: bool, bf16: bool) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_fp16_supported", lambda: fp16)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: bf16)


def test_emulated_half_precision_runs_in_fp32_with_a_notice(tiny_registry, weights, monkeypatch):
    _native(monkeypatch, fp16=False, bf16=True)
    img = make_image((20, 14), 0)
    reference = anime_core.load("tiny", weights=weights, device="cpu", precision="fp32")(img)
    with pytest.warns(pl.PrecisionFallback, match="this CPU has no native fp16 arithmetic.*running in fp32"):
        pipe = anime_core.load("tiny", weights=weights, device="cpu", precision="fp16")
    assert pipe.precision == "fp32" and "fp16" in pipe.precision_notice
    assert pipe(img).tobytes() == reference.tobytes()  # exactly the fp32 result, not an fp16 one
    native = anime_core.load("tiny", weights=weights, device="cpu", precision="bf16")  # this "CPU" has bf16
    assert native.precision == "bf16" and native.precision_notice is None


def test_which_precisions_count_as_accelerated(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert auto.precision_accelerated(cuda, "fp16") and not auto.precision_accelerated(cuda, "bf16")  # pre-Ampere
    assert pl.resolve_precision(cuda, "bf16") == ("fp32", "this cuda device has no native bf16 arithmetic, so "
                                                          "bf16 would be far slower than fp32; running in fp32")
    _native(monkeypatch, fp16=True, bf16=False)
    assert pl.resolve_precision(torch.device("cpu"), "fp16") == ("fp16", None)
    assert pl.resolve_precision(torch.device("cpu"), "fp32") == ("fp32", None)
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        pl.resolve_precision(torch.device("cpu"), "fp8")


def test_cli_says_once_that_bf16_falls_back_on_a_cpu_without_it(tiny_site, weights, tmp_path):
    """A real CPU limited to AVX2 (oneDNN's own switch), no monkeypatching: one note line, exit 0."""
    make_image((20, 14), 0).save(tmp_path / "a.png")
    env = subprocess_env(tiny_site, ONEDNN_MAX_CPU_ISA="AVX2")
    args = ["run", "tiny", "-w", weights, "--device", "cpu", "--precision", "bf16", tmp_path / "a.png", "-o", "o"]
    out = subprocess.run([sys.executable, "-m", "anime_core.cli", *map(str, args)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [line for line in out.stderr.splitlines() if "bf16" in line] == [
        "note: this CPU has no native bf16 arithmetic, so bf16 would be far slower than fp32; running in fp32"
    ]
    assert "Warning" not in out.stderr  # the notice, not Python's warning machinery


def test_precision_help_says_where_half_precision_helps(tiny_registry, capsys):
    code, out, _ = anime(capsys, "run", "tiny", "--help")
    assert code == 0
    assert "fp16/bf16 speed up CUDA GPUs (bf16 from Ampere on) and Apple MPS" in flat(out)
    assert "fp32 runs there, with a notice" in flat(out)


# -- 2. large photos at full resolution on a CPU --------------------------------------------
def test_large_image_on_cpu_announces_its_size_and_time(tiny_registry, weights, tmp_path):
    make_image((1200, 900), 0).save(tmp_path / "big.png")
    make_image((40, 30), 1).save(tmp_path / "small.png")
    pipe = anime_core.load("tiny", weights=weights, device="cpu")
    lines: list[str] = []
    options = FileOptions(output=tmp_path / "out", progress=False, announce=lines.append)
    report = translate_files(pipe, [str(tmp_path / "small.png"), str(tmp_path / "big.png")], options)
    assert report.exit_code == 0 and len(report.written) == 2
    assert len(lines) == 1, lines  # the small image is not announced
    match = re.fullmatch(
        rf"{re.escape(str(tmp_path / 'big.png'))}: 1200x900 px \(1\.1 MP\) on the CPU, about (\d+) s "
        r"\(--size 1024: about (\d+) s\)",
        lines[0],
    )
    assert match, lines[0]
    assert int(match[2]) <= int(match[1])  # fewer pixels, less time
    silent = FileOptions(output=tmp_path / "out2", progress=False)  # no announce: nothing is measured
    assert translate_files(pipe, [str(tmp_path / "big.png")], silent).exit_code == 0


def test_eta_rate_comes_from_the_runs_own_batches(tiny_registry, weights):
    pipe = anime_core.load("tiny", weights=weights, device="cpu")
    lines: list[str] = []
    eta = Eta(pipe, lines.append)
    name = Path("x.png")
    job = Job(InputFile(name, name), name, Image.new("RGB", (2000, 1000)), False)
    eta.after([job], 20.0)  # 2 MP took 20 s
    eta.before([job])
    assert lines == ["x.png: 2000x1000 px (2.0 MP) on the CPU, about 20 s (--size 1024: about 5 s)"]


def test_eta_rate_is_kept_for_the_next_run_of_the_same_set_up(tiny_registry, weights, monkeypatch):
    """The calibration (1.3-1.7 s before a first large image) runs once per set-up: the next run starts from the
    rate the last one measured; a damaged rate file or another thread count calibrates again."""
    pipe = anime_core.load("tiny", weights=weights, device="cpu")
    name = Path("x.png")
    job = Job(InputFile(name, name), name, Image.new("RGB", (2000, 1000)), False)
    Eta(pipe, print).after([job], 20.0)  # a run measured 10 s per MP
    calibrations: list[int] = []
    monkeypatch.setattr(Eta, "_calibrate", lambda self: calibrations.append(1) or 3.0)
    lines: list[str] = []
    eta = Eta(pipe, lines.append)
    eta.before([job])
    assert lines == ["x.png: 2000x1000 px (2.0 MP) on the CPU, about 20 s (--size 1024: about 5 s)"]
    assert calibrations == []
    for damage in (b"\xff" * 10, b'{"rate": NaN, "overhead": 0}', b'{"rate": 1, "overhead": 0}' + b" " * 5000):
        eta._cache().write_bytes(damage)
        assert Eta(pipe, print).seconds(2000, 1000, False) == pytest.approx(6.0)  # the calibration's 3 s/MP
    assert len(calibrations) == 3
    Eta(pipe, print).after([job], 20.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert Eta(pipe, print).seconds(2000, 1000, False) == pytest.approx(6.0)
    finally:
        torch.set_num_threads(threads)
    assert len(calibrations) == 4


def test_size_help_names_the_default(tiny_registry, capsys):
    _, out, _ = anime(capsys, "run", "tiny", "--help")
    assert "Resize so the long side is N px [default: original, or the style's preset]" in flat(out)


# -- 5. anime eval writes per-image scores only when asked ----------------------------------
@pytest.fixture
def paired(tmp_path, monkeypatch):
    write_images(tmp_path / "real", 5, (16, 16), seed=1)  # precision/recall needs k+1 = 4 images a side
    write_images(tmp_path / "fake", 5, (16, 16), seed=2)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "real", tmp_path / "fake"


def test_eval_default_runs_what_it_can_offline_and_names_the_rest(paired, tmp_path, capsys):
    real, fake = paired
    code, out, err = anime(capsys, "eval", "--real", real, "--fake", fake, "-q")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:3]] == ["psnr", "ssim"]
    assert "not computed: fid, kid, is, prc: the backbone:inception weights are not cached" in err
    assert "lpips: the backbone:alexnet weights are not cached (name lpips in --metrics to download them, or " \
           "run 'anime weights pull backbone:alexnet')" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake", "real"]  # nothing written into the current folder


def test_eval_default_includes_distribution_metrics_once_cached(paired, monkeypatch, capsys):
    from anime_core.metrics import inception
    from anime_core.weights import store

    class ChannelMean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"pool": x.float().mean(dim=(2, 3)), "logits": x.float().mean(dim=(2, 3))}

    monkeypatch.setattr(inception, "InceptionV3Features", ChannelMean)
    monkeypatch.setattr(store, "cache_status", lambda key, source: "cached" if "inception" in key else "not cached")
    real, fake = paired
    code, out, err = anime(capsys, "eval", "--real", real, "--fake", fake, "-q", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data["metrics"]) == {"fid", "kid", "is", "precision", "recall", "psnr", "ssim"}
    assert list(data["not_computed"]) == ["lpips"]


def test_eval_default_with_nothing_runnable_exits_3(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "real", 3, (16, 16), seed=1)
    write_images(tmp_path / "fake", 2, (16, 16), seed=2, ext=".jpg")
    (tmp_path / "fake" / "img000.jpg").rename(tmp_path / "fake" / "other.jpg")
    code, _, err = anime(capsys, "eval", "--real", tmp_path / "real", "--fake", tmp_path / "fake", "-q")
    assert code == EXIT["weights unavailable"]
    assert "no metric can run without downloading weights here" in err
    assert "psnr, ssim, lpips: the files of the two folders are not named alike" in err


def test_per_image_file_only_when_asked_and_replacing_is_said(paired, tmp_path, capsys):
    real, fake = paired
    target = tmp_path / "scores.csv"
    code, _, err = anime(capsys, "eval", "--real", real, "--fake", fake, "-m", "psnr", "--per-image", target, "-q")
    assert code == 0 and f"per-image scores: {target}\n" in err
    assert target.read_text().splitlines()[0] == "name,real,fake,psnr"
    target.write_text("the user's own notes\n")
    code, _, err = anime(capsys, "eval", "--real", real, "--fake", fake, "-m", "ssim", "--csv", target, "-q")
    assert code == 0 and f"per-image scores: {target} (replaced the file that was there)" in err
    assert target.read_text().splitlines()[0] == "name,real,fake,ssim"
    code, _, err = anime(capsys, "eval", "--real", real, "--fake", fake, "-m", "fid", "--per-image", target)
    assert code == EXIT["usage"] and "--per-image writes the paired metrics (psnr, ssim, lpips)" in err


# -- 6. help text ---------------------------------------------------------------------------
def test_run_listing_shows_each_models_description_uncut(registry, capsys):
    code, out, _ = anime(capsys, "run", "--help")
    assert code == 0
    text = flat(out)
    for name in ("animegan", "cyclegan", "dcgan"):
        assert f"{name} {flat(registry.models[name].description)}" in text
    commands = text.split("Commands:")[1]
    assert "Translate INPUTS" not in commands and "..." not in commands  # click's cut-off marker


def test_run_help_names_defaults_layouts_and_only_real_styles(tiny_registry, capsys):
    _, out, _ = anime(capsys, "run", "tiny", "--help")
    text = flat(out)
    assert "Output folder [default: anime_out/]" in text
    assert "Pretrained style: demo (see 'anime info tiny')" in text
    layouts = ("native .safetensors", "foreign .pt/.pth", "NAME.ckpt.index", ".onnx graph (needs anime-core[onnx])")
    for layout in layouts:
        assert layout in text
    _, out, _ = anime(capsys, "run", "tinygen", "--help")
    text = flat(out)
    assert "--style" not in text  # no style is installed for tinygen
    assert "-n, --num INTEGER RANGE Images to generate. [default: 16; x>=1]" in text
    assert "--seed INTEGER Random seed: same seed, same images. [default: 0]" in text
    assert "[default: tinygen-seedSEED.png in the current folder]" in text


# -- 7. exit codes --------------------------------------------------------------------------
def test_exit_codes(tiny_registry, weights, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    make_image((20, 14), 0).save(a)
    make_image((20, 14), 1).save(b)
    out = tmp_path / "out"
    code, _, err = anime(capsys, "run", "tiny", "-w", weights, a, "-o", out)
    assert code == EXIT["ok"], err
    code, _, err = anime(capsys, "run", "tiny", "-w", weights, a, tmp_path / "gone.png", "-o", out)
    assert code == EXIT["some inputs failed"] and "1 written (1 replaced), 1 failed" in err  # a.png again
    code, _, err = anime(capsys, "run", "tiny", "-w", tmp_path / "nope.safetensors", a)
    assert code == EXIT["usage"] and f"error: --weights {tmp_path / 'nope.safetensors'} does not exist" in err
    code, _, err = anime(capsys, "run", "tiny", "-w", weights, tmp_path / "gone.png", "-o", out)
    assert code == EXIT["usage"] and f"no input found ({tmp_path / 'gone.png'}: no such file or folder)" in err
    code, _, err = anime(capsys, "run", "tiny", "-w", weights, "nothing-*.png", "-o", out)
    assert code == EXIT["usage"] and "nothing-*.png: pattern matches no files" in err
    code, _, err = anime(capsys, "run", "tiny", "-w", weights, a, b, "-o", tmp_path / "many.png")
    assert code == EXIT["usage"] and "names one file but 2 inputs were given; give a folder" in err
    code, _, err = anime(capsys, "run", "tiny", "--style", "dmeo", a)
    assert code == EXIT["usage"] and "error: tiny has no style 'dmeo'; did you mean 'demo'?" in err
    code, _, err = anime(capsys, "run", "tinygen", "--style", "demo")
    assert code == EXIT["usage"] and "tinygen has no pretrained styles installed; use --weights FILE" in err
    code, _, err = anime(capsys, "run", "tiny", "--style", "demo", a)  # ANIME_OFFLINE=1 in the tests
    assert code == EXIT["weights unavailable"] and "not cached" in err
    code, out_text, err = anime(capsys, "weights", "path", "tiny:demo")
    assert code == EXIT["weights unavailable"] and out_text == ""
    assert "tiny:demo is not cached (it would be " in err and "'anime weights pull tiny:demo'" in err
    code, out_text, _ = anime(capsys, "weights", "path")
    assert code == EXIT["ok"] and out_text.strip()


def test_eval_weights_that_do_not_exist_are_a_usage_error(tiny_registry, tmp_path, capsys):
    write_images(tmp_path / "photos", 1, (16, 16))
    args = ["eval", "tiny", "-w", tmp_path / "nope.pt", "--photos", tmp_path / "photos", "--anime", tmp_path / "photos"]
    code, _, err = anime(capsys, *args)
    assert code == EXIT["usage"] and "--weights" in err and "does not exist" in err


def test_weights_check_takes_a_tf1_checkpoint_prefix(tmp_path):
    (tmp_path / "Hayao-60.ckpt.index").write_bytes(b"")
    check_weights_path(tmp_path / "Hayao-60.ckpt")  # the prefix names no file, but its .index is there
    check_weights_path(tmp_path / "Hayao-60.ckpt.index")
    with pytest.raises(UsageError, match="Hayao-61.ckpt does not exist"):
        check_weights_path(tmp_path / "Hayao-61.ckpt")
