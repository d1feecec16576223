"""'Inputs lost: 0' (docs/RELIABILITY.md): one run over a folder of good and hostile files leaves
every input byte-identical, keeps a file the user already had in the output folder, writes every
good input and names every bad one."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tiny_anime_plugin
import torch
from helpers import make_image
from PIL import Image

from anime_core.cli import main
from anime_core.weights.files import save_native


def _digests(root):
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_run_over_hostile_inputs_loses_nothing(tiny_registry, tmp_path, capsys):
    torch.manual_seed(0)
    weights = save_native(tmp_path / "w.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)}, "tiny",
                          {"width": 4})
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    make_image((24, 16), 0).save(src / "a" / "x.png")
    make_image((24, 16), 1).save(src / "b" / "x.png")  # same name, other folder
    make_image((20, 20), 2).save(src / "photo.jpg", quality=90)
    ramp = (np.linspace(0, 65535, 32 * 16).reshape(16, 32)).astype(np.uint16)
    Image.fromarray(ramp).save(src / "deep.png")  # 16-bit grayscale
    (src / "empty.png").write_bytes(b"")
    (src / "notes.png").write_text("not an image")
    good = (src / "photo.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(good[: len(good) // 2])  # truncated
    before = _digests(src)

    out = tmp_path / "out"
    out.mkdir()
    (out / "x-1.png").write_bytes(b"the user's own file")  # a name our de-duplication would invent
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["run", "tiny", "--weights", str(weights), "-q", str(src), "-o", str(out)])
    err = capsys.readouterr().err

    assert _digests(src) == before  # every input byte-identical
    assert (out / "x-1.png").read_bytes() == b"the user's own file"
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.png")} | {
        p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert {"a/x.png", "b/x.png", "photo.jpg", "deep.png"} <= written  # every good input written
    for bad in ("empty.png", "notes.png", "cut.jpg"):
        assert bad in err, err  # every bad input named
    assert done.value.code == 1  # some inputs failed, the good ones were written
