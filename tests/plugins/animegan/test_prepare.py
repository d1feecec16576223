"""AnimeGAN data preparation (Liu, Chen, Hu, "AnimeGAN: a novel lightweight GAN for photo animation", section 3.2;
the edge smoothing of Chen, Lai, Liu, "CartoonGAN: generative adversarial networks for photo cartoonization", section
3.2) on generated images with sharp edges."""

from __future__ import annotations

import os

import numpy as np
import pytest
from anime_plugin_animegan.prepare import cache_root, prepare, prepared_dir
from click.testing import CliRunner
from PIL import Image, ImageDraw


def _frame(path, color=(250, 220, 40)):
    im = Image.new("RGB", (48, 48), (30, 60, 200))
    ImageDraw.Draw(im).rectangle([12, 12, 35, 35], fill=color)  # rows/cols 12..35 inclusive
    im.save(path)
    return np.asarray(im)


def _cfg(anime, prepared=None, *more):
    from anime_core.config import resolve
    from anime_core.registry import get_registry

    folder = [f"data.prepared={prepared}"] if prepared else []
    return resolve(get_registry().model("animegan"), None, [f"data.anime={anime}", *folder, *more])


def test_gray_and_edge_smoothed_copies(tmp_path):
    anime = tmp_path / "anime"
    anime.mkdir()
    rgb = _frame(anime / "a.png")
    report = prepare(_cfg(anime), progress=False)
    root = report.folder
    assert report.written == 1 and root == prepared_dir(_cfg(anime)) and root.parent == cache_root()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anime"]  # nothing beside the data
    gray = np.asarray(Image.open(root / "gray" / "a.png"))
    smooth = np.asarray(Image.open(root / "smooth" / "a.png"))
    assert gray.ndim == 2 and np.array_equal(gray, np.asarray(Image.fromarray(rgb).convert("L")))
    changed = smooth != gray
    # a 5x5 blur only changes pixels whose window sees both colours: the ring 10..37 minus 14..33
    ring = np.zeros_like(changed)
    ring[10:38, 10:38] = True
    ring[14:34, 14:34] = False
    assert changed.any() and not (changed & ~ring).any()
    assert changed[ring].mean() > 0.5  # Canny found the whole outline, dilation covered the ring
    # blurred towards the neighbour: just outside the square is brighter than the background
    assert smooth[11, 24] > gray[11, 24] and smooth[12, 24] < gray[12, 24]


def test_idempotent_refresh_and_bad_files_named(tmp_path):
    anime = tmp_path / "anime"
    (anime / "sub").mkdir(parents=True)
    _frame(anime / "a.png")
    _frame(anime / "sub" / "b.jpg", (200, 10, 10))
    (anime / "bad.png").write_text("not an image")
    cache = tmp_path / "cache"
    first = prepare(_cfg(anime, str(cache)), progress=False)
    assert first.written == 2 and first.failed == ["bad.png"]
    assert (cache / "smooth" / "sub" / "b.png").is_file()
    stamp = (cache / "gray" / "a.png").stat().st_mtime_ns
    second = prepare(_cfg(anime, str(cache)), progress=False)
    assert second.written == 0 and second.skipped == 2
    assert (cache / "gray" / "a.png").stat().st_mtime_ns == stamp
    src = anime / "a.png"
    newer = (cache / "gray" / "a.png").stat().st_mtime + 10
    os.utime(src, (newer, newer))  # the frame changed after it was prepared
    third = prepare(_cfg(anime, str(cache)), progress=False)
    assert third.written == 1 and third.skipped == 1


def test_anime_prepare_command(tmp_path):
    from anime_core.cli import cli

    anime = tmp_path / "frames"
    anime.mkdir()
    _frame(anime / "a.png")
    (anime / "broken.jpg").write_bytes(b"\xff\xd8junk")
    res = CliRunner().invoke(cli, ["prepare", "animegan", "--anime", str(anime)])
    assert res.exit_code == 0, res.output
    assert "1 written" in res.output and "broken.jpg" in res.output
    assert (prepared_dir(_cfg(anime)) / "smooth" / "a.png").is_file() and str(cache_root()) in res.output
    again = CliRunner().invoke(cli, ["prepare", "animegan", "--anime", str(anime)])
    assert "already prepared (cached), 1 unreadable (broken.jpg)" in again.output


def _read_only(monkeypatch, folder):
    """Writing under ``folder`` fails as on a read-only mount (chmod does not stop root, who runs CI)."""
    import errno
    from pathlib import Path

    mkdir = Path.mkdir

    def guarded(self, *args, **kwargs):
        if self == folder or folder in self.parents:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", guarded)


def test_read_only_data_is_never_written_to(tmp_path, monkeypatch, capsys):
    """Issue 24 item 5: the copies go to the cache under $ANIME_HOME; the data folder may stay read-only."""
    from anime_core.cli import main

    anime = tmp_path / "ro" / "frames"
    anime.mkdir(parents=True)
    _frame(anime / "a.png")
    _read_only(monkeypatch, tmp_path / "ro")
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "animegan", "--anime", str(anime)])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert (prepared_dir(_cfg(anime)) / "smooth" / "a.png").is_file()
    assert sorted(p.name for p in (tmp_path / "ro").iterdir()) == ["frames"]
    assert sorted(p.name for p in anime.iterdir()) == ["a.png"]


def test_a_read_only_cache_says_what_to_set(tmp_path, monkeypatch, capsys):
    from anime_core.cli import main

    anime = tmp_path / "frames"
    anime.mkdir()
    _frame(anime / "a.png")
    _read_only(monkeypatch, cache_root())
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "animegan", "--anime", str(anime)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert f"cannot write the prepared copies to {cache_root()}" in err
    assert "set ANIME_HOME to a writable folder, or put them in one with data.prepared=FOLDER" in err
    # following the advice works and leaves the data folder untouched
    own = tmp_path / "own"
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", "animegan", "--anime", str(anime), f"data.prepared={own}"])
    assert exit_.value.code == 0, capsys.readouterr().err
    assert (own / "smooth" / "a.png").is_file() and sorted(p.name for p in anime.iterdir()) == ["a.png"]


def test_the_cache_is_keyed_by_the_frames_names_sizes_and_times(tmp_path):
    anime = tmp_path / "anime"
    anime.mkdir()
    _frame(anime / "a.png")
    _frame(anime / "b.png", (200, 10, 10))
    first = prepare(_cfg(anime), progress=False)
    second = prepare(_cfg(anime), progress=False)
    assert first.written == 2 and second.cached and second.written == 0 and second.folder == first.folder
    color = prepare(_cfg(anime, None, "data.edge_images=color"), progress=False)
    assert color.folder != first.folder and (color.folder / "smooth_color" / "b.png").is_file()
    stamp = (anime / "a.png").stat().st_mtime + 10
    os.utime(anime / "a.png", (stamp, stamp))  # an edited frame: a new entry, never the stale copies
    third = prepare(_cfg(anime), progress=False)
    assert third.folder != first.folder and third.written == 2
    assert (first.folder / "prepared.json").is_file()
    assert sorted(p.name for p in cache_root().iterdir() if not p.name.endswith(".lock")) == sorted(
        {first.folder.name, color.folder.name, third.folder.name})  # no temp folders left


def test_a_failed_preparation_leaves_no_entry_and_two_at_once_prepare_once(tmp_path, monkeypatch):
    import threading
    import time

    from anime_plugin_animegan import prepare as prep

    anime = tmp_path / "anime"
    anime.mkdir()
    for i in range(3):
        _frame(anime / f"{i}.png")
    real = prep.edge_smooth
    calls = []

    def broken(rgb):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk gone")
        return real(rgb)

    monkeypatch.setattr(prep, "edge_smooth", broken)
    with pytest.raises(RuntimeError):
        prepare(_cfg(anime), progress=False)
    assert not any(p.is_dir() for p in cache_root().iterdir())  # neither an entry nor its temp folder

    def slow(rgb):
        time.sleep(0.05)
        return real(rgb)

    monkeypatch.setattr(prep, "edge_smooth", slow)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(prepare(_cfg(anime), progress=False)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.written for r in reports) == [0, 3] and sorted(r.cached for r in reports) == [False, True]
    assert [p.name for p in cache_root().iterdir() if p.is_dir()] == [reports[0].folder.name]
