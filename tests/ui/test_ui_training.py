"""The Train tab's engine: form -> ``anime train`` arguments, the run folder's plot and samples, the subprocess."""

from __future__ import annotations

import time

import pytest
from helpers import make_image, write_images

from anime_core import runfiles
from anime_core.errors import ConfigError, UsageError
from anime_core.ui import training


def test_overrides_pass_only_what_the_form_changed(registry, tmp_path):
    photos, anime = tmp_path / "p", tmp_path / "a"
    photos.mkdir()
    anime.mkdir()
    base = training.defaults("cyclegan")
    form = {**base, "train.max_steps": 0.0, "train.batch_size": 2.0, "train.device": "cpu"}
    args = training.overrides(str(photos), f" {anime} ", form, "optim.lr_g=1e-4\n\n# a note\n", base)
    assert args == [f"data.photo={photos}", f"data.anime={anime}", "train.batch_size=2", "train.device=cpu",
                    "optim.lr_g=1e-4"]
    with pytest.raises(UsageError, match="is not a folder on this machine"):
        training.overrides(str(tmp_path / "nowhere"), None, {})
    with pytest.raises(UsageError, match="'lr 0.1' is not a key=value setting"):
        training.overrides(None, None, {}, "lr 0.1")


def test_losses_and_samples_of_a_run_folder(tmp_path):
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "metrics.csv").write_text(
        "step,epoch,loss_g,loss_d,lr_g\n1,0,2.5,0.5,0.001\n2,0,2.0,,0.001\n3,0,nan,0.4,0.0\n"
    )
    # steps, epochs and learning rates are not losses; an empty or non-finite cell is no point
    assert training.metrics(run) == {"loss_g": [(1, 2.5), (2, 2.0)], "loss_d": [(1, 0.5), (3, 0.4)]}
    image, note = training.loss_plot(run)
    assert note == "Losses up to step 3." and image.width > 2 * image.height  # one panel per loss, side by side
    assert training.loss_plot(None) == (None, "") and training.loss_plot(tmp_path) == (None, "Nothing logged yet.")
    assert training.latest_sample(run) is None
    for step in (90, 120):
        make_image((8, 8), step).save(run / "samples" / f"step-{step:07d}.png")
    assert training.latest_sample(run).tobytes() == make_image((8, 8), 120).tobytes()


def test_without_matplotlib_the_plot_is_the_latest_values(tmp_path, monkeypatch):
    import anime_core.training.report as report

    def no_matplotlib(*args, **kwargs):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(report, "plot_png", no_matplotlib)
    (tmp_path / "metrics.csv").write_text("step,g_total\n5,1.25\n")
    assert training.loss_plot(tmp_path) == (
        None, 'Step 5: g_total 1.25. Plots need matplotlib: `pip install "anime-core[report]"`.'
    )


def test_start_checks_the_config_before_starting_anything(registry, tmp_path):
    job = training.TrainJob(tmp_path)
    with pytest.raises(ConfigError, match="did you mean"):
        job.start("cyclegan", ["train.batch_sise=2"])
    with pytest.raises(UsageError, match="unknown model"):
        job.start("cyclegna", [])
    assert list(tmp_path.iterdir()) == [] and not job.running and job.status() == "No run started yet."
    with pytest.raises(UsageError, match="is not a run folder"):
        job.resume("cyclegan", tmp_path)


def test_run_folders_are_listed_and_named_by_model(registry, tmp_path):
    old = runfiles.new_run_dir(tmp_path, "cyclegan")
    new = runfiles.new_run_dir(tmp_path, "cyclegan")
    assert new != old and new.name.startswith(old.name) and old.is_dir() and new.is_dir()  # same second: -2
    for run in (old, new):
        (run / "config.yaml").write_text("{}\n")
    (tmp_path / "not-a-run").mkdir()
    assert set(training.list_runs(tmp_path)) == {str(old), str(new)}
    assert training.model_of_run(old) == "cyclegan" and training.model_of_run(tmp_path / "x-1") is None


LIMIT = 240  # seconds: starting python, torch and accelerate takes a minute on a loaded 2-core machine


def _wait(predicate, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_start_stop_resume_a_real_subprocess(tiny_site, tmp_path, monkeypatch):
    """The tab's three buttons on a real ``anime train`` of the tiny test plugin (installed by entry point)."""
    from anime_core.registry import load_registry, set_registry

    monkeypatch.setenv("PYTHONPATH", str(tiny_site))
    monkeypatch.syspath_prepend(str(tiny_site))
    set_registry(load_registry())
    job = training.TrainJob(tmp_path / "runs")
    try:
        write_images(tmp_path / "photo", 4, (20, 20), seed=1)
        write_images(tmp_path / "anime", 4, (20, 20), seed=2)
        args = training.overrides(str(tmp_path / "photo"), str(tmp_path / "anime"), {"train.max_steps": 100000})
        run = job.start("tiny", args)
        assert run.parent == tmp_path / "runs" and job.running and "Running in" in job.status()
        _wait(lambda: len(training.metrics(run).get("g", [])) >= 2, LIMIT)
        assert "Stopping" in job.stop()
        _wait(lambda: not job.running, LIMIT)
        assert job.status().startswith("Stopped; resume it"), job.log()
        stopped_at = int(training.metrics(run)["g"][-1][0])
        job.resume("tiny", run, [f"train.max_steps={stopped_at + 2}"])
        _wait(lambda: not job.running, LIMIT)
        assert job.status().startswith("Finished"), job.log()
        assert (run / "generator.safetensors").is_file() and "resumed from" in job.log()
        assert training.metrics(run)["g"][-1][0] == stopped_at + 2
    finally:
        job.shutdown()
        set_registry(None)
