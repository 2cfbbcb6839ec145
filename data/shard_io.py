"""Read and write token shards in the published Parameter Golf format.

A shard is a header of 256 little-endian int32 (magic 20240520, version 1,
token count, then zeros) followed by the tokens as little-endian uint16.
train_gpt.py carries its own reader (it must stay self-contained); this module
is for the data scripts and tools around it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
BOS_ID = 1


class ShardError(ValueError):
    """A shard file that does not follow the format."""


def write_shard(path: str | Path, tokens) -> Path:
    """Write tokens (any int sequence with values < 65536) as one shard, atomically."""
    path = Path(path)
    toks = np.asarray(tokens)
    if toks.size and (toks.min() < 0 or toks.max() >= 1 << 16):
        raise ValueError(f"{path}: token ids must fit in uint16, got range [{toks.min()}, {toks.max()}]")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, toks.size
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(toks.astype("<u2", copy=False).tobytes())
    tmp.replace(path)
    return path


def read_header(path: str | Path) -> int:
    """Check a shard's header and size; return its token count or raise ShardError."""
    path = Path(path)
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ShardError(f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if int(header[0]) != SHARD_MAGIC or int(header[1]) != SHARD_VERSION:
        raise ShardError(
            f"{path}: bad header (magic {int(header[0])}, version {int(header[1])}; "
            f"expected {SHARD_MAGIC}, {SHARD_VERSION})"
        )
    n = int(header[2])
    expected = HEADER_BYTES + 2 * n
    if n < 0 or size != expected:
        raise ShardError(f"{path}: header says {n} tokens ({expected} bytes) but the file has {size} bytes")
    return n


def read_shard(path: str | Path) -> np.ndarray:
    """Return a shard's tokens as a uint16 array (memory-mapped, read-only)."""
    n = read_header(path)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,))
