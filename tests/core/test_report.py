"""report.html of a run (issue 16 "a run report people look at") and labelled sample grids (issue 18)."""

from __future__ import annotations

import base64
import builtins
import html
import io
import json
import re
from types import SimpleNamespace

import pytest
import torch
from helpers import write_images
from PIL import Image

from anime_core.cli import main
from anime_core.training import outputs, report
from anime_core.training.loop import train
from anime_core.training.task import TrainingTask


def _images(page: str) -> list[Image.Image]:
    found = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in found]


@pytest.fixture
def data(tmp_path):
    write_images(tmp_path / "photo", 4)
    write_images(tmp_path / "anime", 4, seed=1)
    return [f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}"]


def test_a_run_writes_a_self_contained_report_and_says_where_at_the_start(tiny_registry, data, tmp_path, capsys):
    run = train("tiny", overrides=[*data, f"output_dir={tmp_path / 'r'}", "train.max_steps=4",
                                   "train.sample_every=2"], progress=False)
    err = capsys.readouterr().err
    first = err.splitlines()[:2]  # said before the run trains, not at its end
    assert first == [f"run folder: {run.absolute()}", f"report: {run.absolute() / 'report.html'} "
                     "(updated at each sample step)"]
    page = (run / "report.html").read_text()
    assert "finished at step 4" in page and f"anime train tiny --resume {run.absolute()}" in page
    assert "<h2>Losses</h2>" in page and "src=\"http" not in page and "<script" not in page
    images = _images(page)
    # loss plot, learning rate + throughput plot, newest sample grid, the earlier one
    assert len(images) == 4 and all(im.width > 100 for im in images[:2])
    assert "step 4" in page and "step 2" in page
    state = json.loads((run / "report.json").read_text())
    assert state["model"] == "tiny" and state["max_steps"] == 4
    assert [p[0] for p in state["sessions"][0]] == [1, 2, 3, 4]  # log_every=1: each step timed
    assert "l1_weight: 10.0" in page  # the resolved config


def test_anime_report_rebuilds_it_and_without_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("train:\n  max_steps: 3\n")
    (run / "metrics.csv").write_text("step,epoch,g_loss,lr_generator\n1,0,2.0,0.1\n2,0,1.5,0.1\n3,0,1.2,0.05\n4,0")
    Image.new("RGB", (40, 20), "red").save(run / "samples" / "step-0000003.png")
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(run)])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == str(run / "report.html")
    page = html.unescape((run / "report.html").read_text())
    assert page.count('pip install "anime-core[report]"') == 2  # losses and learning rate sections
    assert "g_loss 1.2" in page  # the last complete row's values instead of a plot; the cut row is ignored
    assert len(_images(page)) == 1 and _images(page)[0].size == (40, 20)
    assert "status</th><td>unknown" in page


def test_anime_report_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path)])
    assert exit_.value.code == 2 and "not a run folder" in capsys.readouterr().err


def test_throughput_is_per_session_and_points_are_thinned(tmp_path, monkeypatch):
    assert report.throughput([[[1, 10.0], [3, 11.0]], [[5, 100.0], [9, 102.0]]]) == [(3, 2.0), (9, 2.0)]
    monkeypatch.setattr(report, "MAX_POINTS", 10)
    rep = report.RunReport(tmp_path, "tiny", log_every=1)
    for step in range(1, 31):
        rep.tick(step)
    rep.update(force=True)
    kept = json.loads((tmp_path / "report.json").read_text())["sessions"][-1]
    assert len(kept) <= 10 and kept[0][0] == 1  # halved, the first point of the session kept
    again = report.RunReport(tmp_path, "tiny", log_every=5)  # a resumed session starts a new list
    again.tick(31)
    again.tick(32)
    again.tick(35)
    assert again.sessions[-1] == [[31, pytest.approx(again.sessions[-1][0][1])], [35, again.sessions[-1][1][1]]]
    assert len(again.sessions) == 2


def test_a_failing_report_never_stops_the_run(tmp_path, monkeypatch, caplog):
    def broken(run_dir):  # type: ignore[no-untyped-def]
        raise OSError("disk says no")

    monkeypatch.setattr(report, "write_report", broken)
    rep = report.RunReport(tmp_path, "tiny")
    assert rep.update(force=True) is None and rep.update(force=True) is None
    assert sum("disk says no" in r.getMessage() for r in caplog.records) == 1  # said once


class _Task(TrainingTask):
    def build(self, steps_per_epoch):  # type: ignore[no-untyped-def]
        pass

    def step(self, batch, ctx):  # type: ignore[no-untyped-def]
        return {}


def _task(cls=_Task, kind="translate"):  # type: ignore[no-untyped-def]
    task = cls.__new__(cls)
    task.spec = SimpleNamespace(kind=kind)
    task.nets = {"generator": torch.nn.Conv2d(3, 3, 1)}
    return task


def test_sample_grids_label_their_rows(tmp_path):
    acc = SimpleNamespace(is_main_process=True)
    batch = {"photo": torch.rand(4, 3, 32, 32) * 2 - 1}
    outputs.write_samples(acc, _task(), batch, tmp_path, 1)
    with Image.open(tmp_path / "samples" / "step-0000001.png") as im:
        grid = im.convert("L")
    margin = grid.width - (4 * 34 + 2)  # 4 images of 32 px per row, 2 px padding
    assert margin > 20 and grid.height == 2 * 34 + 2  # one row of inputs, one of outputs
    labels = grid.crop((0, 0, margin, grid.height))
    dark_rows = [y for y in range(grid.height) if min(labels.getpixel((x, y)) for x in range(margin)) < 100]
    assert any(y < 34 for y in dark_rows) and any(y > 36 for y in dark_rows)  # text beside each row

    class Triple(_Task):
        sample_rows = ("photo", "output", "anime")

        def sample(self, b):  # type: ignore[no-untyped-def]
            return torch.cat([b["photo"]] * 3)

    assert outputs.row_labels(_task(Triple), 12, 4) == ("photo", "output", "anime")
    assert outputs.row_labels(_task(Triple), 8, 4) == ()  # a declaration that does not fit: no labels
    assert outputs.row_labels(_task(), 8, 4) == ("input", "output")
    assert outputs.row_labels(_task(kind="generate"), 16, 8) == ()  # samples from noise have no rows

    class Own(_Task):
        def sample(self, b):  # type: ignore[no-untyped-def]
            return b["photo"]

    assert outputs.row_labels(_task(Own), 8, 4) == ()  # a layout we cannot know
    assert outputs.row_labels(_task(Own), 12, 4) == ("input", "output", "target")


@pytest.mark.slow
def test_anime_eval_on_a_run_scores_each_checkpoint_and_names_what_it_could_not(tiny_registry, data, tmp_path):
    from click.testing import CliRunner

    from anime_core.cli.eval_cmd import eval_command
    from anime_core.errors import UsageError, WeightsUnavailable

    run = train("tiny", overrides=[*data, f"output_dir={tmp_path / 'r'}", "train.max_steps=4",
                                   "train.checkpoint_every=2"], progress=False)

    def invoke(*args):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(eval_command, [str(a) for a in (run, *args, "--device", "cpu", "-q")],
                                  standalone_mode=False)

    # the photos stand in for targets named like them: paired metrics run, offline FID/KID are named
    out = invoke("--all-checkpoints", "--real", tmp_path / "photo")
    assert out.exception is None and out.return_value == 0, out.exception
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["STEP", "CHECKPOINT", "PSNR", "SSIM"]
    assert [r.split()[:2] for r in rows[:2]] == [["2", "checkpoint_0"], ["4", "checkpoint_1"]]
    assert rows[2].startswith("best by psnr: ") and f"anime run tiny --weights {run}/checkpoints/" in rows[2]
    assert "not computed: fid, kid, is, prc: weights for backbone:inception are not cached" in out.stderr
    assert "lpips: weights for backbone:alexnet" in out.stderr and "training photos" in out.stderr
    table = (run / "eval" / "checkpoints.csv").read_text().splitlines()
    assert table[0] == "STEP,CHECKPOINT,PSNR,SSIM" and len(table) == 3
    assert (run / "eval" / "checkpoints.png").read_bytes()[:4] == b"\x89PNG"
    assert "Checkpoints evaluated" in (run / "report.html").read_text()

    # the final export; anime images not named like the photos: no paired metrics, and nothing else offline
    write_images(tmp_path / "other", 3, seed=5, ext=".jpg")
    for f in (tmp_path / "other").iterdir():
        f.rename(f.with_name(f"x{f.name}"))
    out = invoke("--real", tmp_path / "other")
    assert isinstance(out.exception, WeightsUnavailable)
    assert "psnr, ssim, lpips: the files of" in str(out.exception) and "backbone:inception" in str(out.exception)

    out = invoke("-m", "psnr,fid", "--real", tmp_path / "photo")  # named metrics: a missing one is exit 3
    assert isinstance(out.exception, WeightsUnavailable) and "not computed: fid:" in str(out.exception)
    assert out.stdout.splitlines()[1].startswith("METRIC") and "psnr" in out.stdout

    (run / "generator.safetensors").unlink()
    out = invoke("--real", tmp_path / "photo")
    assert isinstance(out.exception, UsageError) and "--all-checkpoints" in str(out.exception)
    out = CliRunner().invoke(eval_command, ["--all-checkpoints", "--real", str(tmp_path), "--fake", str(tmp_path)],
                             standalone_mode=False)
    assert isinstance(out.exception, UsageError) and "RUN_DIR" in str(out.exception)
