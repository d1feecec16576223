"""Issue 25, weights: readers of foreign formats cost time and memory in proportion to the network they give.

Each hostile file is built here, small: a PyTorch zip whose tensor entry is deflated zeros (a zip
bomb), TensorFlow indexes whose handles point at one block again and again, declare absurd shapes
or carry terminal escapes in their names, a TF checkpoint with a big unused variable, and native
safetensors listing thousands of parts.
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tf1_writer
import torch
from helpers import make_image
from safetensors.torch import save_file

from anime_core.errors import WeightsUnavailable
from anime_core.registry import get_registry
from anime_core.weights import files, tf1

ESC = "\x1b"


def _one_sentence(text: str) -> str:
    """The error line of a CLI's stderr, checked to be one line with no traceback or 'unexpected'."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text[-3000:]
    assert "Traceback" not in text and "unexpected" not in text.lower(), text[-3000:]
    return lines[0]


# -- builders ---------------------------------------------------------------------------------------


def _zip_bomb(path: Path, floats: int) -> Path:
    """A torch.save zip whose storage entry holds ``floats`` zeros, deflated (torch.save never compresses).

    The pickle declares the full size, so ``torch.load`` inflates and keeps it all.
    """
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(7)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for info in src.infolist():
            name = info.filename
            if name.endswith("data.pkl"):  # the 7-element storage and shape become ``floats`` elements
                pkl = src.read(info).replace(b"K\x07", b"J" + struct.pack("<i", floats))
                out.writestr(info, pkl)
            elif name.endswith("data/0"):
                with out.open(name, "w", force_zip64=True) as fh:  # deflated, as the archive's default
                    zeros = bytes(1 << 20)
                    for _ in range(floats * 4 >> 20):
                        fh.write(zeros)
            else:
                out.writestr(info, src.read(info))
    return path


def _deflated_zip(path: Path, nbytes: int) -> Path:
    """Like :func:`_zip_bomb`, the compression chosen per entry by ``ZipFile.writestr``."""
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(nbytes // 4)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            deflate = info.filename.endswith("data/0")
            out.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    return path


def _table(path: Path, blocks: list[list[tuple[bytes, bytes]]], repeat: int = 1) -> Path:
    """An SSTable of ``blocks`` (sorted (key, value) lists), the index block listing every handle ``repeat`` times."""
    table, handles = bytearray(), []
    for items in blocks:
        handles.append((items[-1][0], tf1_writer.append_block(table, tf1_writer.build_block(items, 16))))
    meta = tf1_writer.append_block(table, tf1_writer.build_block([], 1))
    index = tf1_writer.append_block(table, tf1_writer.build_block(handles * repeat, 1))
    table += (meta + index).ljust(40, b"\0") + struct.pack("<Q", tf1._MAGIC)
    path.write_bytes(bytes(table))
    return path


def _header() -> tuple[bytes, bytes]:
    return b"", tf1_writer.field(1, 1) + tf1_writer.field(3, tf1_writer.field(1, 1))


def _index_bomb(prefix: Path, entries: int, handles: int) -> Path:
    """An index whose index block holds ``handles`` handles to one block of ``entries`` entries."""
    items = [_header()] + [(b"v%08d" % i, tf1_writer.entry_bytes(1, (1,), 0, 4, 0)) for i in range(entries)]
    return _table(tf1.index_path(prefix), [items], repeat=handles)


def _odd_shapes(prefix: Path, shape: tuple[int, ...], size: int, name: bytes = b"w") -> Path:
    """A checkpoint whose one float32 variable declares ``shape`` and ``size`` bytes (the data file holds 4)."""
    tf1.data_path(prefix).write_bytes(b"\0" * 4)
    crc = tf1.mask(tf1.crc32c(b"\0" * min(size, 4)))  # right for the bytes a reader would take
    return _table(tf1.index_path(prefix), [[_header(), (name, tf1_writer.entry_bytes(1, shape, 0, size, crc))]])


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    make_image((16, 16), 0).save(path)
    return path


def _run(run_bounded, tmp_path: Path, weights: Path, **kw: object):
    args = ["run", "animegan", "--weights", weights, _photo(tmp_path), "-o", tmp_path / "out.png", "--device", "cpu"]
    return run_bounded([*args, "-q"], **kw)


# -- 1. a zip bomb as a .pt file -------------------------------------------------------------------


def test_a_deflated_pt_entry_is_refused_without_inflating(tmp_path, monkeypatch):
    path = _deflated_zip(tmp_path / "bomb.pt", 32 << 20)  # 32 MiB of zeros in about 32 KB
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a compressed checkpoint"))
    with pytest.raises(WeightsUnavailable, match=r"compressed or oversized entry 'archive/data/0'") as err:
        files.read_state(path)
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def test_a_plain_pt_still_loads_and_its_size_is_checked_against_the_budget(tmp_path, monkeypatch):
    path = tmp_path / "plain.pt"
    torch.save({"w": torch.arange(300_000, dtype=torch.float32)}, path)
    state, _ = files.read_state(path)
    assert torch.equal(state["w"], torch.arange(300_000, dtype=torch.float32))
    monkeypatch.setenv("ANIME_MAX_MEMORY", "1M")
    with pytest.raises(WeightsUnavailable, match=r"loading the PyTorch checkpoint .* above the 1 MiB memory budget"):
        files.read_state(path)


def test_a_zip_bomb_under_an_address_space_limit_is_one_sentence(tmp_path, run_bounded):
    bomb = _zip_bomb(tmp_path / "bomb.pt", 64 << 20)  # 256 MiB inflated, from about 1 MB
    assert bomb.stat().st_size < 2 << 20
    res = _run(run_bounded, tmp_path, bomb, headroom=192 << 20, timeout=60)
    assert res.returncode == 3, res.stderr[-3000:]
    assert "compressed or oversized entry" in _one_sentence(res.stderr)


# -- 2. TensorFlow index bombs and unused variables --------------------------------------------------


def test_a_lone_index_is_refused_before_it_is_read(tmp_path):
    index = _index_bomb(tmp_path / "bomb.ckpt", 1000, 1000)  # a million entries in 40 KB
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match=r"has no data file .*bomb\.ckpt\.data-00000-of-00001"):
        files.read_state(index)
    assert time.monotonic() - start < 1


def test_handles_repeating_a_block_are_refused_at_once(tmp_path):
    index = _index_bomb(tmp_path / "bomb.ckpt", 300, 300)
    tf1.data_path(tmp_path / "bomb.ckpt").write_bytes(b"\0" * 4)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match="data blocks that overlap or repeat") as err:
        files.read_state(index)
    assert err.value.exit_code == 3 and time.monotonic() - start < 1


def test_an_index_with_too_many_variables_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tf1, "MAX_VARIABLES", 100)
    tensors = {f"v{i:04d}": np.zeros(1, np.float32) for i in range(101)}
    index = tf1_writer.write_checkpoint(tmp_path / "many.ckpt", tensors)
    with pytest.raises(WeightsUnavailable, match="lists more than 100 variables"):
        tf1.read_index(index)


def test_an_index_bomb_under_an_address_space_limit_is_one_sentence(tmp_path, run_bounded):
    index = _index_bomb(tmp_path / "bomb.ckpt", 10_000, 10_000)  # 10^8 entries in 400 KB: minutes before
    tf1.data_path(tmp_path / "bomb.ckpt").write_bytes(b"\0" * 4)
    res = _run(run_bounded, tmp_path, index, timeout=60)
    assert res.returncode == 3 and "overlap or repeat" in _one_sentence(res.stderr), res.stderr[-3000:]


def _official_v2(unused: int) -> dict[str, np.ndarray]:
    from anime_plugin_animegan.converters_tf import to_tf, v2_names
    from anime_plugin_animegan.generator import build_v2

    state = {k: v.numpy() for k, v in to_tf(build_v2().state_dict(), v2_names()).items()}
    state["generator/G_MODEL/A/Conv/weights/Adam"] = np.ones(unused // 4, np.float32)  # an optimiser slot
    return state


def test_only_the_variables_the_layout_maps_are_read_once(tmp_path, monkeypatch):
    unused = 32 << 20
    state = _official_v2(unused)
    needed = sum(v.nbytes for k, v in state.items() if not k.endswith("/Adam"))
    index = tf1_writer.write_checkpoint(tmp_path / "v2.ckpt", state)
    tracemalloc.start()
    try:
        loaded = files.load_weights(index, "animegan", get_registry())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.layout == "animegan.v2-tf"
    assert peak < 2.5 * needed < unused, f"peak {peak / 2**20:.0f} MiB for {needed / 2**20:.0f} MiB of weights"
    reads: list[str] = []
    original = tf1.Checkpoint._bytes

    def spy(self, name, *args):  # type: ignore[no-untyped-def]
        reads.append(name)
        return original(self, name, *args)

    monkeypatch.setattr(tf1.Checkpoint, "_bytes", spy)
    files.load_weights(index, "animegan", get_registry())
    assert sorted(reads) == sorted(k for k in state if not k.endswith("/Adam")), "each mapped variable, once"
    # the variables read are checked against the memory budget first
    monkeypatch.setenv("ANIME_MAX_MEMORY", str(needed // 2))
    with pytest.raises(WeightsUnavailable, match=r"reading 77 variables of .* above the .* memory budget"):
        files.load_weights(index, "animegan", get_registry())


# -- 3. absurd shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "size", "why"),
    [
        ((1 << 32, 1 << 32), 0, r"'w' \(\[4294967296, 4294967296\], float32\) does not fit the data file"),
        ((1,) * 200_000, 4, "a shape of more than 8 dimensions"),
        ((1 << 62,), 4, "a negative or absurd dimension"),
        ((65536, 65536, 3, 3), 65536 * 65536 * 36, "does not fit the data file"),
    ],
)
def test_absurd_shapes_are_one_sentence(tmp_path, shape, size, why):
    index = _odd_shapes(tmp_path / "odd.ckpt", shape, size)
    with pytest.raises(WeightsUnavailable, match=why) as err:
        files.read_state(index)
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def test_a_huge_declared_shape_under_an_address_space_limit_is_one_sentence(tmp_path, run_bounded):
    index = _odd_shapes(tmp_path / "huge.ckpt", (1 << 32, 1 << 32), 0, b"generator/G_MODEL/A/Conv/weights")
    res = _run(run_bounded, tmp_path, index, timeout=60)
    assert res.returncode == 3 and "does not fit the data file" in _one_sentence(res.stderr), res.stderr[-3000:]


# -- 4. thousands of parts in a native file ---------------------------------------------------------


def _many_parts(path: Path, n: int, model: str = "animegan") -> Path:
    meta = {"format": "anime-core", "model": model, "parts": json.dumps([f"p{i}" for i in range(n)]), "generator": "{}"}
    save_file({f"p{i}.w": torch.zeros(1) for i in range(n)}, str(path), metadata=meta)
    return path


def test_thousands_of_parts_are_refused_at_once(tmp_path):
    path = _many_parts(tmp_path / "parts.safetensors", 2000)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable, match=r"'parts' lists 2,000 parts, above the limit of 64") as err:
        files.load_weights(path, "animegan", get_registry())
    assert err.value.exit_code == 3 and time.monotonic() - start < 2


def test_parts_are_split_in_linear_time(tmp_path):
    n = 64
    path = _many_parts(tmp_path / "parts.safetensors", n)
    loaded = files.load_weights(path, "animegan", get_registry())
    assert list(loaded.parts) == [f"p{i}" for i in range(n)]
    assert all(set(part) == {"w"} for part in loaded.parts.values())


def test_a_parts_bomb_under_an_address_space_limit_is_exit_3_with_a_short_line(tmp_path, run_bounded):
    path = _many_parts(tmp_path / "parts.safetensors", 20_000)  # minutes of startswith before
    res = _run(run_bounded, tmp_path, path, timeout=60)
    line = _one_sentence(res.stderr)
    assert res.returncode == 3 and "above the limit of 64" in line and len(line) < 400, res.stderr[-3000:]


def test_a_missing_part_lists_a_few_escaped_names(tmp_path):
    import anime_core
    from anime_core.errors import UsageError

    names = [f"{ESC}[31mred\npart{i}" for i in range(10)]
    meta = {"format": "anime-core", "model": "animegan", "parts": json.dumps(names), "generator": "{}"}
    path = tmp_path / "odd.safetensors"
    save_file({f"{n}.w": torch.zeros(1) for n in names}, str(path), metadata=meta)
    with pytest.raises(UsageError, match="has no 'generator' part") as err:
        anime_core.load("animegan", weights=path, device="cpu")
    msg = str(err.value)
    assert not re.search(r"[\x00-\x1f]", msg) and len(msg) < 400, msg
    assert "'\\x1b[31mred\\npart0'" in msg and "... and 6 more" in msg, msg


# -- 5. names from files in messages ------------------------------------------------------------------


def test_tf_variable_names_are_escaped_in_messages(tmp_path):
    evil = f"a{ESC}]0;pwned\x07{ESC}[2J\nfake error line\u202e"
    tf1_writer.write_checkpoint(tmp_path / "evil.ckpt", {evil: np.zeros(2, np.float32)})
    with pytest.raises(WeightsUnavailable) as err:
        files.load_weights(tmp_path / "evil.ckpt.index", "animegan", get_registry())
    msg = str(err.value)
    assert re.search(r"'a\\x1b\]0;pwned\\x07\\x1b\[2J\\nfake error line\\u202e'", msg), msg
    assert not re.search(r"[\x00-\x1f\x7f\u202e]", msg), msg
    data = tf1.data_path(tmp_path / "evil.ckpt")
    data.write_bytes(b"\xff" * 8)  # its checksum fails: that message names it too
    with pytest.raises(WeightsUnavailable, match=r"the bytes of 'a\\x1b.*' fail their checksum") as err:
        tf1.read_checkpoint(data)
    assert not re.search(r"[\x00-\x1f\x7f\u202e]", str(err.value))
