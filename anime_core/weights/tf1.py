"""TensorFlow 1 checkpoints, read without TensorFlow (the tests' writer is ``tests/tf1_writer.py``).

A checkpoint ``NAME.ckpt`` is a pair of files (TensorFlow's "tensor bundle"):

- ``NAME.ckpt.index``: a LevelDB-format table (an SSTable) mapping each variable name to a
  ``BundleEntryProto`` protobuf: dtype (1), shape (2), shard_id (3), offset (4), size (5) and the
  masked CRC32C of its bytes (6); partitioned variables carry slices (7). The entry with the empty
  key is the ``BundleHeaderProto``: num_shards (1), endianness (2: 0 little, 1 big), version (3).
  The table is: data blocks of prefix-compressed entries (shared, non-shared and value lengths as
  varints, then the key suffix and the value; a restart array of uint32 and its count close each
  block), each followed by a 5-byte trailer (compression type, masked CRC32C of contents + type);
  an index block whose values are the data blocks' handles (offset, size varints); and a 48-byte
  footer: metaindex and index handles, zero padding, magic ``0xdb4775248b80fb57``. TensorFlow
  writes the index uncompressed (its ``BundleWriter`` sets no compression).
- ``NAME.ckpt.data-00000-of-00001`` (one file per shard): the raw tensor bytes, in the byte order
  the header names, at the offsets the index gives.

Only the protobuf fields above are decoded (a small varint reader, no protobuf dependency).
String and variant tensors (bookkeeping, not weights) are skipped. Reading returns numpy arrays
and checks every size and offset against the files, so a damaged file is one clear error, and the
CRC32C of each tensor is verified (vectorised: it costs about as much as reading the file).

Bounded by design: the data file is looked for before the index is read, the index is read with
limits on its size, entries, name lengths and dimensions, each of its blocks once; every
variable's declared bytes (shape x dtype) must fit its data file before anything is read, and
:func:`open_checkpoint` reads no tensor, so a caller reads only the variables it needs, once.
"""

from __future__ import annotations

import glob
import math
import re
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from anime_core.budget import check_bytes, fmt_bytes
from anime_core.errors import WeightsUnavailable

INDEX_SUFFIX = ".index"
_DATA = re.compile(r"^(?P<stem>.+)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})$")
_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5
_MASK_DELTA = 0xA282EAD8
#: TensorFlow DataType enum -> numpy dtype (little-endian); bfloat16 is read as uint16 and flagged
_DTYPES = {
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 14: "<u2", 17: "<u2",
    19: "<f2", 22: "<u4", 23: "<u8",
}
_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 9: "int64", 10: "bool",
          14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}
_SKIPPED = {7, 21}  # DT_STRING, DT_VARIANT: bookkeeping, never weights
BFLOAT16 = 14
#: bounds on what an index may declare, checked while it is read (a generator has hundreds of variables)
MAX_INDEX_BYTES = 16 << 20
MAX_VARIABLES = 1 << 16
MAX_KEY = 1024
MAX_DIMS = 8
_CRC_BATCH = 32 << 20  # bytes read before their checksums are verified together (the check copies them once)


@dataclass(frozen=True)
class Entry:
    """Where one variable lives: its dtype (TensorFlow enum), shape, shard, byte range and masked CRC32C."""

    dtype: int
    shape: tuple[int, ...]
    shard: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    sliced: bool = False


# -- naming: either file of the pair, or the prefix ------------------------------------------


def checkpoint_prefix(path: str | Path) -> Path | None:
    """The ``NAME.ckpt`` prefix when ``path`` names a TF checkpoint (either file or the prefix), else ``None``."""
    path = Path(path).expanduser()
    if path.name.endswith(INDEX_SUFFIX):
        return path.with_name(path.name[: -len(INDEX_SUFFIX)])
    match = _DATA.match(path.name)
    if match:
        return path.with_name(match["stem"])
    if not path.exists() and path.with_name(path.name + INDEX_SUFFIX).exists():
        return path
    return None


def index_path(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + INDEX_SUFFIX)


def data_path(prefix: Path, shard: int = 0, count: int = 1) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{count:05d}")


# -- CRC32C (Castagnoli), as LevelDB and TensorFlow use it -------------------------------------


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _table()
_CRC_NP = np.array(_CRC_TABLE, dtype=np.uint32)


def crc32c(data: bytes) -> int:
    """CRC32C of ``data``, byte by byte (for small buffers: index blocks, tests)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """LevelDB's masked CRC (stored CRCs are masked so that CRCs of CRCs do not collide)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _raw_rows(rows: np.ndarray, init: np.ndarray) -> np.ndarray:
    """The unconditioned CRC register after each row of ``rows`` (uint8, n x L), all rows at once."""
    crc = init.astype(np.uint32).copy()
    for j in range(rows.shape[1]):
        crc = _CRC_NP[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> 8)
    return crc


def crc32c_many(buffers: list[bytes], chunk: int = 1024) -> list[int]:
    """CRC32C of each buffer, vectorised with numpy.

    The register is linear over GF(2): each buffer is cut into ``chunk``-byte rows (left-padded
    with zeros, which leave a zero register unchanged), every row of every buffer is run at once,
    and the rows' registers are chained with the operator "advance by ``chunk`` zero bytes".
    The initial 0xFFFFFFFF is folded in by inverting the first four bytes (equivalent for a
    reflected CRC). Buffers under 4 bytes go byte by byte.
    """
    out: list[int | None] = [crc32c(b) if len(b) < 4 else None for b in buffers]
    big = [i for i, b in enumerate(buffers) if out[i] is None]
    if not big:
        return [int(c) for c in out]  # type: ignore[arg-type]
    owners = [-(-len(buffers[i]) // chunk) for i in big]
    rows = np.zeros((sum(owners), chunk), np.uint8)  # the one copy of the buffers
    flat, start = rows.reshape(-1), 0
    for i, n in zip(big, owners, strict=True):
        data = np.frombuffer(buffers[i], dtype=np.uint8)
        begin = start + n * chunk - len(data)  # left-padded to whole rows
        flat[begin : begin + len(data)] = data
        flat[begin : begin + 4] ^= 0xFF
        start += n * chunk
    regs = _raw_rows(rows, np.zeros(len(rows), np.uint32))
    # columns of the "advance by chunk zero bytes" operator, one per register bit
    basis = _raw_rows(np.zeros((32, chunk), np.uint8), np.array([1 << b for b in range(32)], np.uint32))
    advance = [int(v) for v in basis]
    start = 0
    for i, n in zip(big, owners, strict=True):
        crc = 0
        for reg in regs[start : start + n].tolist():
            shifted = 0
            bit = 0
            while crc:
                if crc & 1:
                    shifted ^= advance[bit]
                crc >>= 1
                bit += 1
            crc = shifted ^ reg
        out[i] = crc ^ 0xFFFFFFFF
        start += n
    return [int(c) for c in out]  # type: ignore[arg-type]


# -- protobuf and table decoding ---------------------------------------------------------------


class _Corrupt(Exception):
    """Internal: the file is not what it claims; becomes one WeightsUnavailable sentence."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Corrupt("a truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varint/fixed fields, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, value
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise _Corrupt("a truncated fixed-width field")
            yield field, int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise _Corrupt("a truncated length-delimited field")
            yield field, buf[pos : pos + length]
            pos += length
        else:
            raise _Corrupt(f"protobuf wire type {wire}")


def _entry(value: bytes) -> Entry:
    dtype, shape, shard, offset, size, crc, sliced = 0, [], 0, 0, 0, None, False
    for field, v in _fields(value):
        if field == 1 and isinstance(v, int):
            dtype = v
        elif field == 2 and isinstance(v, bytes):  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            for f, dim in _fields(v):
                if f == 2 and isinstance(dim, bytes):
                    if len(shape) >= MAX_DIMS:
                        raise _Corrupt(f"a shape of more than {MAX_DIMS} dimensions")
                    size_of = dict(_fields(dim)).get(1, 0)
                    if not isinstance(size_of, int) or size_of >= 1 << 62:
                        raise _Corrupt("a negative or absurd dimension")
                    shape.append(size_of)
        elif field == 3 and isinstance(v, int):
            shard = v
        elif field == 4 and isinstance(v, int):
            offset = v
        elif field == 5 and isinstance(v, int):
            size = v
        elif field == 6 and isinstance(v, int):
            crc = v
        elif field == 7:
            sliced = True
    return Entry(dtype, tuple(shape), shard, offset, size, crc, sliced)


def _block(data: bytes, offset: int, size: int) -> bytes:
    """The contents of the block at ``offset`` after checking its trailer (type and masked CRC32C)."""
    end = offset + size + _TRAILER
    if offset < 0 or end > len(data):
        raise _Corrupt("a block handle pointing outside the file")
    contents, kind = data[offset : offset + size], data[offset + size]
    stored = int.from_bytes(data[offset + size + 1 : end], "little")
    framed = data[offset : offset + size + 1]
    crc = crc32c(framed) if len(framed) < 4096 else crc32c_many([framed])[0]
    if mask(crc) != stored:
        raise _Corrupt("a block checksum mismatch")
    if kind == 1:
        raise _Corrupt("a snappy-compressed block (TensorFlow writes checkpoint indexes uncompressed)")
    if kind != 0:
        raise _Corrupt(f"unknown block compression type {kind}")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block; keys longer than :data:`MAX_KEY` bytes are refused as they appear."""
    if len(block) < 4:
        raise _Corrupt("a block too short for its restart array")
    restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * restarts
    if restarts < 1 or limit < 0:
        raise _Corrupt("a bad restart array")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        fresh, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        if shared > len(key) or pos + fresh + length > limit:
            raise _Corrupt("an entry running past its block")
        if shared + fresh > MAX_KEY:
            raise _Corrupt(f"a variable name longer than {MAX_KEY} bytes")
        key = key[:shared] + block[pos : pos + fresh]
        pos += fresh
        yield key, block[pos : pos + length]
        pos += length


def _handles(data: bytes, index_offset: int, index_size: int) -> Iterator[tuple[int, int]]:
    """The data blocks' (offset, size), each checked to lie after the previous one and before the index block.

    So every byte of the file is read at most once, however many handles the index block holds
    (a hostile index can point thousands of handles at one block).
    """
    end = 0
    for _, handle in _block_entries(_block(data, index_offset, index_size)):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        if offset < end or offset + size + _TRAILER > index_offset:
            raise _Corrupt("data blocks that overlap or repeat")
        end = offset + size + _TRAILER
        yield offset, size


def _table_items(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The table's (key, value) pairs, in order; keys must increase strictly, as in any LevelDB table."""
    if len(data) < _FOOTER:
        raise _Corrupt("a file shorter than a table footer")
    footer = data[-_FOOTER:]
    if int.from_bytes(footer[-8:], "little") != _MAGIC:
        raise _Corrupt("no table magic number at its end")
    _, pos = _varint(footer, 0)  # metaindex offset
    _, pos = _varint(footer, pos)  # metaindex size (no meta blocks are used)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    last: bytes | None = None
    for offset, size in _handles(data, index_offset, index_size):
        for key, value in _block_entries(_block(data, offset, size)):
            if last is not None and key <= last:
                raise _Corrupt("variable names out of order or repeated")
            last = key
            yield key, value


def read_index(path: str | Path) -> tuple[int, bool, dict[str, Entry]]:
    """``(num_shards, big_endian, {variable name: Entry})`` of an ``.index`` file.

    Bounded by the file: at most :data:`MAX_INDEX_BYTES` bytes, :data:`MAX_VARIABLES` entries,
    every block read once, shapes of at most :data:`MAX_DIMS` dimensions.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_INDEX_BYTES:
        raise WeightsUnavailable(
            f"{path} is {fmt_bytes(size)}, above the {fmt_bytes(MAX_INDEX_BYTES)} a TensorFlow checkpoint index may "
            f"take (an index lists variables, not their values); check that it is a checkpoint index"
        )
    try:
        items = _table_items(path.read_bytes())
        first = next(items, None)
        if first is None or first[0] != b"":
            raise _Corrupt("no bundle header entry")
        header = dict(_fields(first[1]))
        shards, endian = header.get(1, 1), header.get(2, 0)
        if not isinstance(shards, int) or not 1 <= shards <= 99999 or endian not in (0, 1):
            raise _Corrupt("a bad bundle header")
        entries: dict[str, Entry] = {}
        for key, value in items:
            if len(entries) >= MAX_VARIABLES:
                raise WeightsUnavailable(
                    f"{path} lists more than {MAX_VARIABLES:,} variables, above the limit for one checkpoint; "
                    f"check that it is an intact checkpoint index"
                )
            entries[key.decode("utf-8", "replace")] = _entry(value)
    except _Corrupt as exc:
        raise WeightsUnavailable(
            f"{path} is not a readable TensorFlow checkpoint index ({exc}); use an intact copy of the file"
        ) from None
    return shards, endian == 1, entries


# -- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """An opened checkpoint: its index read and every variable's extent checked against its data file.

    No tensor is read yet: :meth:`read` reads the variables asked for, each once.
    """

    prefix: Path
    index: Path
    files: tuple[Path, ...]
    big_endian: bool
    entries: Mapping[str, Entry]  # the weights: string and variant variables left out

    def nbytes(self, name: str) -> int:
        """Memory the array of ``name`` takes once read (bfloat16 is widened to float32)."""
        e = self.entries[name]
        return e.size * 2 if e.dtype == BFLOAT16 else e.size

    def read(self, names: Collection[str] | None = None, verify: bool = True) -> dict[str, np.ndarray]:
        """``{name: array}`` for ``names`` (default: all), after checking their total against the memory budget."""
        asked = set(self.entries if names is None else names)
        names = [n for n in self.entries if n in asked]
        check_bytes(
            sum(self.nbytes(n) for n in names), f"reading {len(names)} variables of {self.index}",
            error=WeightsUnavailable,
        )
        out: dict[str, np.ndarray] = {}
        pending: list[tuple[str, Entry, bytearray]] = []
        held = 0
        handles: dict[int, BinaryIO] = {}
        try:
            for name in names:
                e = self.entries[name]
                if e.shard not in handles:
                    handles[e.shard] = self.files[e.shard].open("rb")
                pending.append((name, e, self._bytes(name, e, handles[e.shard])))
                held += e.size
                if held >= _CRC_BATCH:
                    out.update(self._arrays(pending, verify))
                    pending, held = [], 0
            out.update(self._arrays(pending, verify))
        finally:
            for fh in handles.values():
                fh.close()
        return out

    def _bytes(self, name: str, e: Entry, fh: BinaryIO) -> bytearray:
        if e.sliced:
            raise WeightsUnavailable(
                f"{self.index} holds the partitioned variable '{_shown(name)}' (saved in slices), which this reader "
                f"does not join; save the checkpoint without partitioning"
            )
        if e.dtype not in _DTYPES:
            raise WeightsUnavailable(
                f"{self.index}: variable '{_shown(name)}' has {dtype_name(e.dtype)}, which this reader does not support"
            )
        buf = bytearray(e.size)
        fh.seek(e.offset)
        if fh.readinto(buf) != e.size:
            raise WeightsUnavailable(f"{self.files[e.shard]} changed while it was read; try again")
        return buf

    def _arrays(self, pending: list[tuple[str, Entry, bytearray]], verify: bool) -> dict[str, np.ndarray]:
        """The arrays of buffers read, after checking their CRC32Cs together (one vectorised pass per batch)."""
        if verify:
            checked = [(name, e, buf) for name, e, buf in pending if e.crc32c is not None]
            for (name, e, _), crc in zip(checked, crc32c_many([buf for _, _, buf in checked]), strict=True):
                if mask(crc) != e.crc32c:
                    raise WeightsUnavailable(
                        f"{self.files[e.shard]} is corrupt: the bytes of '{_shown(name)}' fail their checksum; "
                        f"use an intact copy of the checkpoint"
                    )
        return {name: self._array(e, buf) for name, e, buf in pending}

    def _array(self, e: Entry, buf: bytearray) -> np.ndarray:
        dtype = np.dtype(_DTYPES[e.dtype]).newbyteorder("=")
        array = np.frombuffer(buf, dtype=dtype)  # writable: it shares the bytearray
        if dtype.itemsize > 1 and self.big_endian != (sys.byteorder == "big"):
            array.byteswap(inplace=True)
        if e.dtype == BFLOAT16:  # the top half of a float32: widening is exact
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array.reshape(e.shape)


def open_checkpoint(path: str | Path) -> Checkpoint:
    """Open the checkpoint ``path`` names (either file or the prefix), reading its index but no tensor.

    The data file is looked for before the index is read (a lone ``.index`` costs nothing), and
    every variable's declared shape, dtype, size and offset must fit its data file.
    """
    given = Path(path).expanduser()
    prefix = checkpoint_prefix(given)
    if prefix is None:
        raise WeightsUnavailable(f"{given} is not a TensorFlow checkpoint (NAME.ckpt.index + NAME.ckpt.data-*)")
    index = index_path(prefix)
    if not index.is_file():
        raise WeightsUnavailable(
            f"TensorFlow checkpoint {prefix.name} has no index file {index}; put {index.name} beside its data file"
        )
    first = data_path(prefix)
    if not first.is_file() and not any(prefix.parent.glob(glob.escape(prefix.name) + ".data-00000-of-*")):
        raise WeightsUnavailable(
            f"TensorFlow checkpoint {prefix.name} has no data file {first}; put {first.name} beside {index.name}"
        )
    shards, big, entries = read_index(index)
    files = tuple(data_path(prefix, s, shards) for s in range(shards))
    for f in files:
        if not f.is_file():
            raise WeightsUnavailable(
                f"TensorFlow checkpoint {prefix.name} has no data file {f}; put {f.name} beside {index.name}"
            )
    sizes = [f.stat().st_size for f in files]
    wanted = {k: e for k, e in entries.items() if e.dtype not in _SKIPPED}
    for name, e in wanted.items():
        if not _fits(e, sizes):
            raise WeightsUnavailable(
                f"{index} is corrupt or does not belong to {files[min(e.shard, len(files) - 1)].name}: variable "
                f"'{_shown(name)}' ({_shape(e.shape)}, {dtype_name(e.dtype)}) does not fit the data file; use an "
                f"intact pair"
            )
    return Checkpoint(prefix, index, files, big, wanted)


def _fits(e: Entry, sizes: list[int]) -> bool:
    """Whether ``e``'s bytes lie in its shard and, for a known dtype, are exactly its shape times its item size."""
    if not 0 <= e.shard < len(sizes) or e.offset + e.size > sizes[e.shard]:
        return False
    count = math.prod(e.shape)  # Python ints: no overflow, however absurd the dimensions
    if e.dtype in _DTYPES:
        return e.size == count * np.dtype(_DTYPES[e.dtype]).itemsize
    return count <= (1 << 48 if e.sliced else e.size)  # a sliced variable's bytes are in other entries


def _shape(shape: tuple[int, ...]) -> str:
    return str(list(shape)) if len(shape) <= MAX_DIMS else f"{len(shape)} dimensions"


def read_checkpoint(path: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """``{variable name: array}`` of the checkpoint that ``path`` names (either file or the prefix).

    The other file is looked for beside the one given; a missing one is an error naming it.
    bfloat16 variables come back as (exactly equal) float32 arrays; string and variant variables
    are skipped. Each variable is read once; :func:`open_checkpoint` and :meth:`Checkpoint.read`
    read only some.
    """
    return open_checkpoint(path).read(verify=verify)


def dtype_name(code: int) -> str:
    return _NAMES.get(code, f"TensorFlow dtype {code}")


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(name: str, limit: int = 120) -> str:
    """A name read from a file, safe to print: control and bidi characters escaped (``\\x1b``), cut to ``limit``."""
    text = _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), name)
    return text if len(text) <= limit else text[: limit - 3] + "..."
