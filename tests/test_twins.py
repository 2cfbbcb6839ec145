"""The deliberate twins agree: train_gpt.py carries its own shard reader and byte accounting (it must stay
self-contained), data/shard_io.py and data/shard_tool.py carry theirs for the tools. Each pair must give the
same answers: the same tokens and the same rejected files, the same per-id byte tables for the sample, the
published and a byte-fallback tokenizer, and the same per-position byte counts of a token stream.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

import shard_io
import shard_tool
import train_gpt
from conftest import real_tokenizer_path
from test_shard_tool import train_tokenizer

VOCAB = 1024  # the sample's


# --------------------------------------------------------------------------- shard readers


def test_shard_readers_read_the_same_tokens(sample_data):
    data_path = sample_data["data_path"]
    for split in ("val", "train"):
        files = train_gpt.find_shards(data_path, split)
        assert files == sorted(Path(data_path).glob(f"fineweb_{split}_*.bin")) and files
        for path in files:
            assert train_gpt.shard_token_count(path) == shard_io.read_header(path)
            assert np.array_equal(train_gpt.load_shard(path, VOCAB), shard_io.read_shard(path))
    val = train_gpt.find_shards(data_path, "val")
    stream = np.concatenate([shard_io.read_shard(p) for p in val])
    for seq_len in (7, 128):  # the trainer keeps whole sequences plus the one target after them
        usable = (stream.size - 1) // seq_len * seq_len
        assert np.array_equal(np.asarray(train_gpt.load_validation_tokens(val, seq_len, VOCAB)), stream[:usable + 1])


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[:-2]
    elif how == "extra bytes":
        data += b"\0\0"
    elif how == "shorter than the header":
        data = data[:100]
    else:  # a header field
        header = np.frombuffer(bytes(data[:shard_io.HEADER_BYTES]), dtype="<i4").copy()
        header[{"bad magic": 0, "bad version": 1, "count too large": 2}[how]] += 1
        data[:shard_io.HEADER_BYTES] = header.tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "extra bytes", "shorter than the header", "bad magic", "bad version",
                                 "count too large"])
def test_shard_readers_reject_the_same_files(tmp_path, how):
    path = shard_io.write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(1, 50, dtype=np.uint16))
    _damage(path, how)
    with pytest.raises(shard_io.ShardError):
        shard_io.read_header(path)
    with pytest.raises(train_gpt.ConfigError):
        train_gpt.load_shard(path, VOCAB)


def test_shard_readers_reject_the_same_token_ids(tmp_path):
    folder = tmp_path / "fineweb10B_sp1024"
    folder.mkdir()
    tokens = np.array([1, 5, 1023, 1, 7], dtype=np.uint16)
    shard_io.write_shard(folder / "fineweb_train_000000.bin", tokens)
    path = shard_io.write_shard(folder / "fineweb_val_000000.bin", np.append(tokens, 1024))
    assert shard_tool.validate(folder).problems[0].startswith(f"{path}: 1 token id(s) >= vocabulary size {VOCAB}")
    with pytest.raises(train_gpt.ConfigError, match=f"token id 1024 >= VOCAB_SIZE={VOCAB}"):
        train_gpt.load_shard(path, VOCAB)
    assert shard_tool.validate(folder, vocab_size=VOCAB + 1).problems == []
    assert np.array_equal(train_gpt.load_shard(path, VOCAB + 1), shard_io.read_shard(path))


# --------------------------------------------------------------------------- byte accounting


@pytest.fixture(scope="module")
def fallback_model(tmp_path_factory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "fallback.model", 512, byte_fallback=True)


@pytest.fixture(params=["sample", "published", "byte-fallback"])
def tokenizer(request, sample_data, fallback_model):
    """(name, SentencePiece processor): the offline sample's, the published sp1024 (skipped when absent), and
    one with byte fallback trained here."""
    path = {"sample": sample_data["tokenizer"], "published": real_tokenizer_path(),
            "byte-fallback": fallback_model}[request.param]
    if not Path(path).is_file():
        pytest.skip(f"the published tokenizer is absent at {path} (set ASQU_GOLF_REAL_TOKENIZER)")
    return request.param, spm.SentencePieceProcessor(model_file=str(path))


def test_byte_tables_are_equal(tokenizer):
    _, sp = tokenizer
    ours = shard_tool.byte_tables(sp)
    theirs = train_gpt.build_byte_luts(sp, sp.vocab_size())
    for name in shard_tool.ByteTables._fields:  # base, leading_space, boundary, byte_value
        assert np.array_equal(getattr(ours, name).astype(np.int64), np.asarray(getattr(theirs, name)).astype(np.int64)), name


def token_stream(name: str, sp, sample_data) -> np.ndarray:
    """A stream to count: the sample's val shard; for the others, documents of real text (each after BOS),
    and for byte fallback also spaces spelled <0xE2><0x96><0x81>, whole and broken, at many positions."""
    if name == "sample":
        return np.asarray(shard_io.read_shard(train_gpt.find_shards(sample_data["data_path"], "val")[0]))
    from pydoc_data.topics import topics

    texts = [t for _, t in sorted(topics.items())][40:60] + ["ﬁne ①  café 日本語 snow☃man\tx_y = [1, 2]"]
    toks = np.concatenate([[1] + ids for ids in sp.encode(texts)]).astype(np.int64)
    if name == "byte-fallback":
        e2, x96, x81 = (sp.piece_to_id(f"<0x{v:02X}>") for v in (0xE2, 0x96, 0x81))
        rng = np.random.default_rng(0)
        for pos in sorted(rng.choice(toks.size, 60, replace=False).tolist(), reverse=True):
            toks = np.insert(toks, pos, [[e2, x96, x81], [e2, x96], [x96, x81]][pos % 3])
        assert np.count_nonzero(shard_tool.byte_tables(sp).byte_value[toks] >= 0) > 100
    return toks


def test_stream_byte_counts_are_equal(tokenizer, sample_data):
    if not hasattr(train_gpt, "stream_bytes"):
        pytest.skip("train_gpt.stream_bytes does not exist yet: the per-position byte count is being added there")
    name, sp = tokenizer
    tokens = token_stream(name, sp, sample_data)
    ours = shard_tool.stream_bytes(tokens, shard_tool.byte_tables(sp))
    theirs = train_gpt.stream_bytes(tokens, train_gpt.build_byte_luts(sp, sp.vocab_size()))
    assert theirs.dtype == ours.dtype == np.float64 and theirs.shape == ours.shape
    differ = np.flatnonzero(theirs != ours)
    assert differ.size == 0, f"first difference at position {differ[:1]}: train_gpt {theirs[differ[:5]]}, " \
                             f"shard_tool {ours[differ[:5]]}"
