"""The training paths a new user trips on (issue 18): data folders, resume from elsewhere, failed runs, VGG19."""

from __future__ import annotations

import os

import pytest
from helpers import write_images

from anime_core import config as cfglib
from anime_core.cli import main
from anime_core.errors import ConfigError, WeightsUnavailable
from anime_core.training import preflight
from anime_core.training.loop import train


def anime(*args, capsys):  # type: ignore[no-untyped-def]
    """``anime ARGS`` in this process: (exit code, stderr)."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


@pytest.fixture
def folders(tmp_path):
    write_images(tmp_path / "data" / "photo", 4)
    write_images(tmp_path / "data" / "anime", 4, seed=1)
    return tmp_path / "data"


@pytest.mark.slow
def test_data_paths_are_stored_absolute_so_resume_works_from_anywhere(tiny_registry, folders, tmp_path, monkeypatch):
    monkeypatch.chdir(folders.parent)
    run = train("tiny", overrides=["data.photo=data/photo", "data.anime=data/anime", "output_dir=r",
                                   "train.max_steps=2", "train.checkpoint_every=2"], progress=False).absolute()
    cfg = cfglib.read_yaml(run / "config.yaml")
    assert cfg["data"]["photo"] == str(folders / "photo") and os.path.isabs(cfg["data"]["anime"])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    train("tiny", resume=run, overrides=["train.max_steps=3"], progress=False)
    assert cfglib.read_yaml(run / "config.yaml")["train"]["max_steps"] == 3

    # the data moved: the error names the key and the command that points the run at the new place
    (folders / "photo").rename(folders / "photos-2024")
    with pytest.raises(ConfigError) as err:
        train("tiny", resume=run, overrides=["train.max_steps=4"], progress=False)
    assert f"data.photo {folders / 'photo'} (saved in {run}/config.yaml) does not exist" in str(err.value)
    assert f"anime train tiny --resume {run} data.photo=FOLDER" in str(err.value)
    train("tiny", resume=run, overrides=["train.max_steps=4", f"data.photo={folders / 'photos-2024'}"],
          progress=False)
    assert cfglib.read_yaml(run / "config.yaml")["data"]["photo"] == str(folders / "photos-2024")
    assert not (elsewhere / "runs").exists()


def test_a_model_without_its_data_names_the_key_and_anime_info_lists_it(registry, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = anime("train", "dcgan", "train.device=cpu", capsys=capsys)
    assert code == 2
    assert err.strip() == ("error: 'dcgan' reads its training images from data.anime; pass data.anime=FOLDER "
                           "(or data.photo=FOLDER)")
    code, err = anime("train", "dcgan", f"data.anime={tmp_path / 'nope'}", capsys=capsys)
    assert code == 2 and "data.anime" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, err = anime("train", "dcgan", f"data.anime={tmp_path / 'empty'}", capsys=capsys)
    assert code == 2 and "holds no images" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no runs/ folder was made
    with pytest.raises(SystemExit):
        main(["info", "dcgan"])
    assert "training data: data.anime=FOLDER or data.photo=FOLDER" in capsys.readouterr().out.splitlines()


def test_a_run_that_fails_before_its_first_step_leaves_no_folder(tiny_registry, tmp_path, monkeypatch):
    write_images(tmp_path / "p", 1)
    write_images(tmp_path / "a", 1)
    data = [f"data.photo={tmp_path / 'p'}", f"data.anime={tmp_path / 'a'}"]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError, match="fewer than train.batch_size=2"):  # found after the folder was made
        train("tiny", overrides=data, progress=False)
    assert list(work.iterdir()) == []  # runs/ too: this run made it
    (work / "runs" / "older").mkdir(parents=True)
    with pytest.raises(ConfigError):
        train("tiny", overrides=data, progress=False)
    assert [p.name for p in (work / "runs").iterdir()] == ["older"]
    mine = work / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError):
        train("tiny", overrides=[*data, f"output_dir={mine}"], progress=False)
    assert (mine / "notes.txt").read_text() == "keep me"  # a folder it did not make is kept


def test_animegan_checks_the_photo_folder_before_preparing_and_explains_missing_vgg(registry, tmp_path, monkeypatch,
                                                                                    capsys):
    write_images(tmp_path / "frames", 2, size=(40, 36))
    write_images(tmp_path / "photos", 2, size=(40, 36), seed=3)
    monkeypatch.chdir(tmp_path)
    small = ["train.image_size=32", "train.batch_size=1", "data.num_workers=0", "train.device=cpu"]
    code, err = anime("train", "animegan", f"data.anime={tmp_path / 'frames'}", f"data.photo={tmp_path / 'none'}",
                      *small, capsys=capsys)
    assert code == 2 and "data.photo" in err and "does not exist" in err
    assert not (tmp_path / "frames_prepared").exists() and not (tmp_path / "runs").exists()

    # offline and no VGG19 in the cache (the tests' ANIME_HOME is empty): the error offers the option
    code, err = anime("train", "animegan", f"data.anime={tmp_path / 'frames'}", f"data.photo={tmp_path / 'photos'}",
                      *small, capsys=capsys)
    assert code == 3 and "anime weights import backbone:vgg19" in err
    assert "loss.vgg_pretrained=false, where the perceptual losses compare random VGG19 features" in err
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "frames_prepared").exists()  # the VGG19 check (required_weights) comes before preparing
    assert "run folder:" not in err  # nothing announced before the checks pass (issue 24 item 5)


def test_random_perceptual_features_are_announced(registry, tmp_path):
    spec = registry.model("animegan")
    cfg = cfglib.resolve(spec, None, ["loss.vgg_pretrained=false", "train.image_size=32"])
    task = spec.task_class()(spec, cfg, registry)
    task.build(steps_per_epoch=1)
    warning = preflight.warn_random_features(task, cfg)
    assert warning is not None and warning.startswith("warning: loss.vgg_pretrained=false: the perceptual")
    cfg.loss.vgg_pretrained = True  # the same nets under a config that asks for ImageNet weights: no warning
    assert preflight.warn_random_features(task, cfg) is None


def test_missing_vgg_advice_only_where_the_option_exists(registry, tmp_path):
    err = WeightsUnavailable("weights for backbone:vgg19 are not cached; run 'anime weights import backbone:vgg19'")
    with pytest.raises(WeightsUnavailable, match="loss.vgg_pretrained=false"), \
            preflight.perceptual_advice(cfglib.resolve(registry.model("animegan"))):
        raise err
    cyclegan = cfglib.resolve(registry.model("cyclegan"))
    with pytest.raises(WeightsUnavailable) as kept, preflight.perceptual_advice(cyclegan):
        raise err
    assert kept.value is err  # a model without the option gets the error as it was
