"""Paired data (Abbas et al., "Ordinary to Anime", sections II.A-B, Table III): matching, 40/10 split, denoise."""

from __future__ import annotations

import numpy as np
import pytest
from anime_plugin_ae.data import paired_split, split_pairs
from anime_plugin_ae.task import AETask
from PIL import Image

from anime_core.config import resolve
from anime_core.errors import ConfigError


def cfg(registry, photo, anime, *overrides):
    return resolve(registry.model("ae"), None, [f"data.photo={photo}", f"data.anime={anime}", *overrides])


def build_datasets(config):
    return paired_split(config, train=True), paired_split(config, train=False)


def test_paper_split_is_40_10_and_seeded():
    pairs = [(f"p{i}", f"a{i}") for i in range(50)]
    train, val = split_pairs(pairs, 0.2, seed=0)
    assert (len(train), len(val)) == (40, 10) and not set(train) & set(val)
    assert split_pairs(pairs, 0.2, seed=0) == (train, val)
    assert split_pairs(pairs, 0.2, seed=1)[1] != val
    assert split_pairs(pairs[:3], 0.2, seed=0)[1]  # a positive fraction keeps at least one for validation
    with pytest.raises(ConfigError, match="val_fraction"):
        split_pairs(pairs, 1.0, seed=0)


def test_datasets_from_folders(registry, tmp_path, make_pairs):
    photo, anime = make_pairs(tmp_path, 5, size=40)
    train, val = build_datasets(cfg(registry, photo, anime, "train.image_size=32"))
    assert (len(train), len(val)) == (4, 1)
    item = val[0]
    assert item["photo"].shape == item["anime"].shape == (3, 32, 32)
    assert float(item["photo"].min()) >= -1 and float(item["anime"].max()) <= 1


def test_the_task_trains_on_the_registered_kind_and_keeps_its_validation_pairs(registry, tmp_path, make_pairs):
    photo, anime = make_pairs(tmp_path, 5, size=40)
    assert registry.model("ae").dataset == "ae.paired"
    assert registry.dataset("ae.paired").builder() is paired_split
    config = cfg(registry, photo, anime, "train.image_size=32")
    task = AETask(registry.model("ae"), config, registry)
    train = task.dataset()
    assert [len(train), len(task.val_set)] == [4, 1]
    assert not set(train.pairs) & set(task.val_set.pairs)
    assert task.val_set.pairs == paired_split(config, train=False).pairs


def test_unmatched_names_are_listed(registry, tmp_path, make_pairs):
    photo, anime = make_pairs(tmp_path, 3)
    (anime / "001.png").rename(anime / "extra.png")
    with pytest.raises(ConfigError, match=r"in anime folder \(data.anime\) have no partner in photo folder "
                                          r"\(data.photo\) \(extra\).* in photo folder .* \(001\)"):
        build_datasets(cfg(registry, photo, anime))


def test_median_denoise_filters_only_the_photo(registry, tmp_path):
    photo, anime = tmp_path / "photo", tmp_path / "anime"
    photo.mkdir()
    anime.mkdir()
    arr = np.full((32, 32, 3), 128, np.uint8)
    arr[::7, ::5] = 255  # isolated salt pixels
    Image.fromarray(arr).save(photo / "x.png")
    Image.fromarray(arr).save(anime / "x.png")
    plain, _ = build_datasets(cfg(registry, photo, anime, "train.image_size=32", "data.val_fraction=0"))
    clean, _ = build_datasets(
        cfg(registry, photo, anime, "train.image_size=32", "data.val_fraction=0", "data.denoise=median")
    )
    assert float(plain[0]["photo"].max()) == 1.0
    assert float(clean[0]["photo"].max()) == pytest.approx(128 / 127.5 - 1, abs=1e-6)  # salt removed
    assert float(clean[0]["anime"].max()) == 1.0  # targets untouched
    with pytest.raises(ConfigError, match="'data.denoise' must be one of none, median, gaussian"):
        build_datasets(cfg(registry, photo, anime, "data.val_fraction=0", "data.denoise=bilateral"))
    with pytest.raises(ConfigError, match="odd number"):
        build_datasets(cfg(registry, photo, anime, "data.val_fraction=0", "data.denoise=median", "data.denoise_size=4"))
