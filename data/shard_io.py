"""Read and write token shards in the published Parameter Golf format, and load their tokenizer.

A shard is a header of 256 little-endian int32 (magic 20240520, version 1,
token count, then zeros) followed by the tokens as little-endian uint16.
train_gpt.py carries its own reader and tokenizer loader (it must stay
self-contained); this module is for the data scripts and tools around it, and
tests/test_twins.py checks that the twins agree.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import sentencepiece as spm

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
BOS_ID = 1


class ShardError(ValueError):
    """A shard file that does not follow the format."""


class DataError(Exception):
    """A bad input or option of a data script: the message names it and the fix; the script exits with exit_code."""

    exit_code = 1


def load_tokenizer(path: str | Path) -> spm.SentencePieceProcessor:
    """The SentencePiece model at path (given as --tokenizer), refused as train_gpt.py's load_tokenizer refuses
    TOKENIZER_PATH, in the same words; also refused: a BOS id other than the shards' or more pieces than uint16."""
    if not str(path).endswith(".model"):
        raise DataError(f"--tokenizer {path} is not a SentencePiece .model file")
    if Path(path).is_dir():
        raise DataError(f"--tokenizer {path} is a folder; name the .model file inside it")
    if not Path(path).is_file():
        raise DataError(f"--tokenizer {path} does not exist; download it with the data "
                        "(data/cached_challenge_fineweb.py) or build the sample (data/build_sample.py)")
    try:
        sp = spm.SentencePieceProcessor(model_file=str(path))
    except Exception as exc:  # sentencepiece raises OSError/RuntimeError on a bad proto
        raise DataError(f"--tokenizer {path} cannot be loaded as a SentencePiece model ({exc})") from None
    if sp.bos_id() != BOS_ID:
        raise DataError(f"--tokenizer {path} has BOS id {sp.bos_id()}, but shards need BOS id {BOS_ID}")
    if sp.vocab_size() > 1 << 16:
        raise DataError(f"--tokenizer {path} has {sp.vocab_size()} pieces, more than uint16 shards can hold")
    return sp


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
