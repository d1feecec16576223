"""The TensorFlow 1 checkpoint reader: on-disk format, naming, checksums, damaged and missing files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tf1_writer
import torch

from anime_core.errors import WeightsUnavailable
from anime_core.weights import files, tf1

MAGIC_BYTES = bytes.fromhex("57fb808b247547db")  # 0xdb4775248b80fb57, little-endian, the table's last 8 bytes


def _tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    # 40 keys with long shared prefixes: prefix-compressed entries, restart points, several blocks
    out = {f"generator/G_MODEL/b{i}/Conv/weights": rng.standard_normal((3, 3, 2, i % 5 + 1)).astype(np.float32)
           for i in range(40)}
    out["global_step"] = np.array(1234, dtype=np.int64)
    out["half"] = rng.standard_normal(7).astype(np.float16)
    out["mask"] = np.array([True, False, True])
    out["bytes"] = np.arange(5, dtype=np.uint8)
    out["empty"] = np.zeros((0, 3), np.float32)
    return out


def test_crc32c_matches_the_standard_check_value_and_the_vectorised_version():
    assert tf1.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert tf1.crc32c(b"") == 0
    buffers = [os.urandom(n) for n in (0, 1, 3, 4, 5, 1023, 1024, 1025, 4099, 70_000)]
    assert tf1.crc32c_many(buffers, chunk=512) == [tf1.crc32c(b) for b in buffers]


def test_written_checkpoint_has_the_bundle_layout_and_reads_back(tmp_path):
    tensors = _tensors(np.random.default_rng(0))
    index = tf1_writer.write_checkpoint(tmp_path / "model.ckpt", tensors, block_size=256)  # several data blocks
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    assert index == tmp_path / "model.ckpt.index" and data.is_file()
    raw = index.read_bytes()
    assert raw[-8:] == MAGIC_BYTES
    # first entry of the first block: no shared/new key bytes (the empty key), a 6-byte header value:
    # num_shards = 1 (field 1) and version {producer = 1} (field 3), as TensorFlow's BundleWriter writes it
    assert raw[:9] == bytes.fromhex("000006" "0801" "1a020801")
    # the data file is the tensors' little-endian bytes, in key order
    assert data.read_bytes() == b"".join(np.ascontiguousarray(tensors[k]).tobytes() for k in sorted(tensors))
    shards, big, entries = tf1.read_index(index)
    assert shards == 1 and not big and len(entries) == len(tensors)
    name = "generator/G_MODEL/b7/Conv/weights"
    assert entries[name].shape == (3, 3, 2, 3) and entries[name].dtype == 1
    assert entries[name].crc32c == tf1.mask(tf1.crc32c(tensors[name].tobytes()))
    for given in (index, data, tmp_path / "model.ckpt"):  # either file, or the prefix
        back = tf1.read_checkpoint(given)
        assert set(back) == set(tensors)
        for k, v in tensors.items():
            assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)


def test_read_state_gives_torch_tensors_with_the_tf_names(tmp_path):
    w = np.random.default_rng(1).standard_normal((1, 1, 4, 2)).astype(np.float32)
    tf1_writer.write_checkpoint(tmp_path / "g.ckpt", {"scope/Conv/weights": w})
    state, meta = files.read_state(tmp_path / "g.ckpt.index")
    assert meta == {"format": files.TF1_FORMAT}
    assert torch.equal(state["scope/Conv/weights"], torch.from_numpy(w))


def test_big_endian_and_bfloat16_checkpoints_read_exactly(tmp_path):
    values = np.array([1.5, -2.25, 3.0e-3], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16 = the top half of a float32
    tf1_writer.write_checkpoint(tmp_path / "b.ckpt", {"w": values, "bf": bits}, big_endian=True, bfloat16={"bf"})
    data = (tmp_path / "b.ckpt.data-00000-of-00001").read_bytes()
    assert data == bits.astype(">u2").tobytes() + values.astype(">f4").tobytes()
    _, big, entries = tf1.read_index(tmp_path / "b.ckpt.index")
    assert big and entries["bf"].dtype == tf1.BFLOAT16
    back = tf1.read_checkpoint(tmp_path / "b.ckpt")
    assert back["w"].dtype == np.float32 and np.array_equal(back["w"], values)
    expected = (bits.astype(np.uint32) << 16).view(np.float32)
    assert back["bf"].dtype == np.float32 and np.array_equal(back["bf"], expected)


def test_a_missing_half_is_named(tmp_path):
    tf1_writer.write_checkpoint(tmp_path / "m.ckpt", {"w": np.ones(3, np.float32)})
    (tmp_path / "m.ckpt.data-00000-of-00001").unlink()
    with pytest.raises(WeightsUnavailable, match=r"no data file .*m\.ckpt\.data-00000-of-00001"):
        files.read_state(tmp_path / "m.ckpt.index")
    tf1_writer.write_checkpoint(tmp_path / "n.ckpt", {"w": np.ones(3, np.float32)})
    (tmp_path / "n.ckpt.index").unlink()
    with pytest.raises(WeightsUnavailable, match=r"no index file .*n\.ckpt\.index"):
        files.read_state(tmp_path / "n.ckpt.data-00000-of-00001")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[:-1], "no table magic number"),
        (lambda raw: raw[:10], "shorter than a table footer"),
        (lambda raw: bytes([raw[0] ^ 0xFF]) + raw[1:], "block checksum mismatch"),
        (lambda raw: b"\0" * len(raw), "no table magic number"),
    ],
)
def test_a_damaged_index_is_one_sentence(tmp_path, damage, message):
    index = tf1_writer.write_checkpoint(tmp_path / "d.ckpt", {"w": np.ones((2, 2), np.float32)})
    index.write_bytes(damage(index.read_bytes()))
    with pytest.raises(WeightsUnavailable, match=message) as err:
        tf1.read_checkpoint(index)
    assert err.value.exit_code == 3 and "\n" not in str(err.value)


def test_corrupt_or_short_data_is_refused(tmp_path):
    tensors = {"a": np.arange(6, dtype=np.float32), "b": np.ones(2, np.int32)}
    index = tf1_writer.write_checkpoint(tmp_path / "c.ckpt", tensors)
    data = tmp_path / "c.ckpt.data-00000-of-00001"
    good = data.read_bytes()
    data.write_bytes(good[:4] + bytes([good[4] ^ 1]) + good[5:])
    with pytest.raises(WeightsUnavailable, match="'a' fail their checksum"):
        tf1.read_checkpoint(index)
    data.write_bytes(good[:-4])
    with pytest.raises(WeightsUnavailable, match="does not fit the data file"):
        tf1.read_checkpoint(index)
