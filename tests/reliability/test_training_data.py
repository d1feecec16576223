"""Issue 12 item 17: hostile or awkward training data.

A decompression-bomb-sized image among the training images is skipped with a warning, as any
unreadable image is; a read-only data folder is never written to (AnimeGAN's prepared copies go to the
cache under $ANIME_HOME, issue 24 item 5).
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib
import struct
import tempfile
import zlib

import pytest

from anime_core.cli import main
from anime_core.training.loop import train


def write_bomb_png(path: pathlib.Path, side: int = 20_000) -> None:
    """A 200-byte PNG whose header claims side x side pixels (400 MP, past Pillow's refusal limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


def test_a_bomb_sized_image_is_skipped_with_a_warning(tiny_registry, train_data, tmp_path, caplog, metric_rows):
    write_bomb_png(tmp_path / "anime" / "bomb.png")
    with caplog.at_level(logging.WARNING, logger="anime.data"):
        run = train(
            "tiny", overrides=[*train_data, f"output_dir={tmp_path / 'r'}", "train.max_steps=3"], progress=False
        )
    assert "skipping 1 anime images over" in caplog.text and "decompression-bomb sized): bomb.png" in caplog.text
    assert len(metric_rows(run)) == 3


def test_a_read_only_data_folder_needs_no_write_access_at_all(registry, tmp_path, monkeypatch, capsys):
    """Issue 24 item 5: AnimeGAN's prepared copies go to the cache under $ANIME_HOME, never beside the data."""
    from helpers import write_images

    ro = tmp_path / "ro"
    write_images(ro / "anime", 2)
    ro.chmod(0o555)  # enough for an ordinary user; root ignores it, so every write under it is refused as well
    writes: list[str] = []
    real_mkdir, real_mkstemp = pathlib.Path.mkdir, tempfile.mkstemp

    def mkdir(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if ro in self.parents or self == ro:
            writes.append(str(self))
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    def mkstemp(*args, **kwargs):  # type: ignore[no-untyped-def]
        where = pathlib.Path(str(kwargs.get("dir") or (args[2] if len(args) > 2 else tempfile.gettempdir())))
        if ro in where.parents or where == ro:
            writes.append(str(where))
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(where))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    try:
        with pytest.raises(SystemExit) as done:
            main(["prepare", "animegan", "--anime", str(ro / "anime")])
    finally:
        ro.chmod(0o755)
    captured = capsys.readouterr()
    assert done.value.code == 0, captured.err
    assert writes == [] and sorted(p.name for p in ro.iterdir()) == ["anime"]
    assert f"prepared {os.environ['ANIME_HOME']}/prepared/" in captured.out


def test_a_dataset_that_cannot_write_beside_read_only_data_is_a_config_error(
    tiny_registry, train_data, tmp_path, monkeypatch
):
    """The core's fallback for a plugin whose dataset writes a cache beside the data and does not say so itself."""
    import tiny_anime_plugin

    from anime_core.errors import ConfigError

    cache = tmp_path / "anime" / ".cache"

    def caching_dataset(self):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(cache))  # what a read-only mount says

    monkeypatch.setattr(tiny_anime_plugin.TinyTask, "dataset", caching_dataset)
    with pytest.raises(ConfigError, match=f"cannot write {cache} \\(Read-only file system\\); make it writable"):
        train("tiny", overrides=[*train_data, f"output_dir={tmp_path / 'r'}"], progress=False)
