"""The deliberate twins agree: train_gpt.py carries its own shard reader and tokenizer loader (it must stay
self-contained), data/shard_io.py carries the data tools'. Both must give the same answers: the same tokens, the same
rejected files, the same reasons.
(The byte accounting has one copy, train_gpt.py's, which data/shard_tool.py imports.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import shard_io
import shard_tool
import train_gpt

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


# --------------------------------------------------------------------------- tokenizer loaders


def _reasons(path: Path) -> list[str | None]:
    """What train_gpt.load_tokenizer and shard_io.load_tokenizer say of path, after the name each gives it
    (TOKENIZER_PATH=... and --tokenizer ...); None where it loads."""
    reasons = []
    for load, error, name in ((lambda p: train_gpt.load_tokenizer(str(p), VOCAB), train_gpt.ConfigError,
                               f"TOKENIZER_PATH={path}"),
                              (shard_io.load_tokenizer, shard_io.DataError, f"--tokenizer {path}")):
        try:
            load(path)
            reasons.append(None)
        except error as exc:
            assert str(exc).startswith(name), exc
            reasons.append(str(exc).removeprefix(name))
    return reasons


@pytest.mark.parametrize("case", ["the sample's", "not .model", "a folder", "missing", "not a model"])
def test_tokenizer_loaders_refuse_the_same_files_in_the_same_words(sample_data, tmp_path, case):
    path = {"the sample's": Path(sample_data["tokenizer"]), "not .model": tmp_path / "tok.txt",
            "a folder": tmp_path / "tok.model", "missing": tmp_path / "absent.model",
            "not a model": tmp_path / "junk.model"}[case]
    if case == "a folder":
        path.mkdir()
    elif case in ("not .model", "not a model"):
        path.write_bytes(b"not a sentencepiece proto")
    trainer, tools = _reasons(path)
    assert trainer == tools
    assert (trainer is None) == (case == "the sample's")
    if case == "a folder":
        assert trainer == " is a folder; name the .model file inside it"


def test_the_tools_loader_also_refuses_a_bos_id_the_shards_do_not_use(tmp_path):
    import sentencepiece as spm

    text = [f"word{i} and other words number {i * 7}" for i in range(200)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=str(tmp_path / "bos2"), vocab_size=60,
                                   model_type="bpe", pad_id=0, bos_id=2, eos_id=1, unk_id=3, minloglevel=2)
    with pytest.raises(shard_io.DataError, match=r"bos2\.model has BOS id 2, but shards need BOS id 1$"):
        shard_io.load_tokenizer(tmp_path / "bos2.model")
