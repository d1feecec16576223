"""A TensorFlow 1 checkpoint writer for the tests: the format :mod:`anime_core.weights.tf1` reads.

Only tests write checkpoints (fixtures of the official AnimeGAN layouts, and damaged files for the
reliability tests), so the writer lives here, not in the package. It produces what TensorFlow's
``BundleWriter`` does for one shard; the table pieces (:func:`field`, :func:`entry_bytes`,
:func:`build_block`, :func:`append_block`) are public so a test can assemble a hostile index.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np

from anime_core.fsutil import write_bytes_atomic
from anime_core.weights.tf1 import _DTYPES, _MAGIC, BFLOAT16, crc32c, crc32c_many, data_path, index_path, mask


def put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return put_varint(number << 3 | 2) + put_varint(len(value)) + value
    return put_varint(number << 3) + put_varint(value)


def entry_bytes(dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(field(2, field(1, d)) for d in shape)
    out = field(1, dtype) + field(2, dims)
    if offset:
        out += field(4, offset)
    out += field(5, size) + put_varint(6 << 3 | 5) + crc.to_bytes(4, "little")
    return out


def build_block(items: list[tuple[bytes, bytes]], restart_every: int) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % restart_every:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += put_varint(shared) + put_varint(len(key) - shared) + put_varint(len(value))
        out += key[shared:] + value
        last = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def append_block(out: bytearray, contents: bytes) -> bytes:
    """Append ``contents`` with its trailer; return its encoded handle."""
    handle = put_varint(len(out)) + put_varint(len(contents))
    out += contents + b"\0" + struct.pack("<I", mask(crc32c(contents + b"\0")))
    return handle


def write_checkpoint(
    prefix: str | Path,
    tensors: Mapping[str, np.ndarray],
    block_size: int = 4096,
    big_endian: bool = False,
    bfloat16: Collection[str] = (),
) -> Path:
    """Write ``tensors`` as the TF1 checkpoint ``prefix`` (``.index`` + ``.data-00000-of-00001``); return the index.

    The on-disk format TensorFlow's ``BundleWriter`` produces for one shard: sorted keys,
    uncompressed blocks of about ``block_size`` bytes, restart points every 16 entries, each
    tensor's masked CRC32C. ``big_endian`` writes what a big-endian machine would;
    the uint16 arrays named in ``bfloat16`` are stored as bfloat16 bit patterns.
    """
    prefix = Path(prefix)
    codes = {np.dtype(v).str: k for k, v in _DTYPES.items() if k not in (BFLOAT16, 17)}
    codes[np.dtype("<u2").str] = 17
    order = ">" if big_endian else "<"
    header = field(1, 1) + (field(2, 1) if big_endian else b"") + field(3, field(1, 1))
    names = sorted(tensors)
    arrays = [np.array(tensors[name], order="C") for name in names]  # (ascontiguousarray makes scalars 1-d)
    raws = [a.astype(a.dtype.newbyteorder(order)).tobytes() for a in arrays]
    data, items = bytearray(), [(b"", header)]
    for name, array, raw, crc in zip(names, arrays, raws, crc32c_many(raws), strict=True):
        code = codes[array.dtype.newbyteorder("<").str if array.dtype.itemsize > 1 else array.dtype.str]
        if name in bfloat16:
            code = BFLOAT16
        items.append((name.encode(), entry_bytes(code, array.shape, len(data), len(raw), mask(crc))))
        data += raw
    table, index_items, pending, size = bytearray(), [], [], 0
    for key, value in items:
        pending.append((key, value))
        size += len(key) + len(value)
        if size >= block_size:
            index_items.append((key, append_block(table, build_block(pending, 16))))
            pending, size = [], 0
    if pending:
        index_items.append((pending[-1][0], append_block(table, build_block(pending, 16))))
    meta_handle = append_block(table, build_block([], 1))
    index_handle = append_block(table, build_block(index_items, 1))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", _MAGIC)
    table += footer
    write_bytes_atomic(data_path(prefix), bytes(data))
    write_bytes_atomic(index_path(prefix), bytes(table))
    return index_path(prefix)
