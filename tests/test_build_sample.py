"""Tests for data/build_sample.py: the offline real-text sample dataset.

One default-text build with a 512-piece tokenizer is shared by most tests
(module-scoped); the default 1024-piece build runs once through the command
line, and the published tokenizer is exercised when it is available.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

import build_sample as bs
from conftest import REPO, real_tokenizer_path
from shard_io import BOS_ID, read_header, read_shard

SMALL_VOCAB = 512
SHARD_TOKENS = 75_000
PAD_ID, EOS_ID, UNK_ID = 0, 2, 3
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁"


# ------------------------------------------------------------------------ helpers


def split_at_bos(tokens) -> list[np.ndarray]:
    """The documents of a token stream: the runs that follow each BOS."""
    tokens = np.asarray(tokens)
    starts = np.flatnonzero(tokens == BOS_ID)
    assert starts.size and starts[0] == 0, "the stream must start with BOS"
    return [tokens[s + 1 : e] for s, e in zip(starts, list(starts[1:]) + [tokens.size])]


def check_roundtrip(sp: spm.SentencePieceProcessor, ids, text: str) -> int:
    """Assert that ids spell text as the tokenizer normalises it; return the <unk> count.

    Every ordinary piece must match the normalised text at its position; an <unk>
    must stand for a non-empty run of characters that are not in the vocabulary
    (SentencePiece merges such a run into one <unk>). Without <unk>, decoding
    must give the normalised text exactly.
    """
    expected = sp.normalize(text).replace(" ", WORD_BOUNDARY)
    pos, n_unk = 0, 0
    for token in map(int, ids):
        if token == sp.unk_id():
            end = pos
            while end < len(expected) and sp.piece_to_id(expected[end]) == sp.unk_id():
                end += 1
            assert end > pos, f"<unk> at {pos} but {expected[pos:pos + 20]!r} is in the vocabulary"
            pos, n_unk = end, n_unk + 1
        else:
            piece = sp.id_to_piece(token)
            assert expected.startswith(piece, pos), (
                f"piece {piece!r} does not match the text at {pos}: {expected[pos:pos + 40]!r}"
            )
            pos += len(piece)
    assert pos == len(expected), f"tokens end at {pos} of {len(expected)}: {expected[pos:pos + 40]!r} left"
    if n_unk == 0:
        assert sp.decode([int(t) for t in ids]) == expected.replace(WORD_BOUNDARY, " ")
    return n_unk


def check_dataset_decodes(info: dict, documents: list[str]) -> tuple[int, int]:
    """Check both splits against the source documents; return (unk tokens, all tokens)."""
    sp = spm.SentencePieceProcessor(model_file=str(info["tokenizer"]))
    train = np.concatenate([read_shard(p) for p in info["train_shards"]])
    val = read_shard(info["val_shard"])
    decoded = split_at_bos(train) + split_at_bos(val)
    assert len(decoded) == len(documents)
    n_unk = sum(check_roundtrip(sp, ids, text) for ids, text in zip(decoded, documents))
    return n_unk, train.size + val.size


def snapshot(*dirs: Path) -> dict:
    return {
        path: (path.read_bytes(), path.stat().st_mtime_ns)
        for d in dirs
        for path in sorted(d.rglob("*"))
        if path.is_file()
    }


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = bs.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def paragraphs_from_topics(count: int, lines_each: int = 6) -> list[str]:
    """Real text without blank lines inside, for --input files."""
    from pydoc_data.topics import topics

    lines = [line.strip() for key in sorted(topics) for line in topics[key].splitlines() if line.strip()]
    return ["\n".join(lines[i * lines_each : (i + 1) * lines_each]) for i in range(count)]


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def documents() -> list[str]:
    return bs.default_documents()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("sample512")
    return bs.build_sample(
        root / "out", root / "tokenizers", vocab_size=SMALL_VOCAB, shard_tokens=SHARD_TOKENS
    )


@pytest.fixture(scope="module")
def sample_sp(sample) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(sample["tokenizer"]))


# -------------------------------------------------------------- the default build


def test_default_text_is_deterministic_and_large_enough(documents):
    assert documents == bs.default_documents()
    assert len(documents) > 100
    assert all(doc == doc.strip() and doc for doc in documents)
    assert sum(map(len, documents)) > 500_000


def test_shards_are_named_and_sized_like_the_published_export(sample):
    out = sample["out_dir"]
    names = sorted(p.name for p in out.iterdir())
    n = len(sample["train_shards"])
    assert n >= 2
    assert names == [f"fineweb_train_{i:06d}.bin" for i in range(n)] + ["fineweb_val_000000.bin"]
    sizes = [read_header(p) for p in sample["train_shards"]]
    assert all(size == SHARD_TOKENS for size in sizes[:-1])
    assert 0 < sizes[-1] <= SHARD_TOKENS
    assert sum(sizes) == sample["train_tokens"]
    assert read_header(sample["val_shard"]) == sample["val_tokens"]


def test_every_document_starts_with_bos_and_counts_match(sample, documents):
    train = np.concatenate([read_shard(p) for p in sample["train_shards"]])
    val = read_shard(sample["val_shard"])
    for tokens, n_docs in ((train, sample["train_documents"]), (val, sample["val_documents"])):
        assert tokens[0] == BOS_ID
        assert int(np.count_nonzero(tokens == BOS_ID)) == n_docs
        assert not np.any(tokens == EOS_ID) and not np.any(tokens == PAD_ID)
        assert int(tokens.max()) < SMALL_VOCAB
    assert train.size == sample["train_tokens"] and val.size == sample["val_tokens"]
    # The last tenth of the documents (rounded, at least one) is the validation split.
    assert sample["val_documents"] == round(len(documents) * 0.1)
    assert sample["train_documents"] + sample["val_documents"] == len(documents)


def test_shards_decode_to_the_source_text(sample, documents):
    n_unk, n_tokens = check_dataset_decodes(sample, documents)
    # Coverage 0.999 (as in the published model) leaves the rarest characters
    # out of the vocabulary; they must stay rare.
    assert n_unk < 0.01 * n_tokens


def test_tokenizer_is_trained_like_the_published_one(sample, sample_sp):
    sp = sample_sp
    assert sample["tokenizer"] == sample["out_dir"].parent / "tokenizers" / f"sample_{SMALL_VOCAB}_bpe.model"
    vocab_lines = sample["tokenizer"].with_suffix(".vocab").read_text(encoding="utf-8").splitlines()
    assert len(vocab_lines) == SMALL_VOCAB
    assert sp.vocab_size() == sample["vocab_size"] == SMALL_VOCAB
    assert (sp.pad_id(), sp.bos_id(), sp.eos_id(), sp.unk_id()) == (0, 1, 2, 3)
    assert [sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert all(sp.is_control(i) for i in (0, 1, 2)) and sp.is_unknown(3)
    # BPE: every piece after the specials has a score equal to minus its merge rank.
    assert [sp.get_score(i) for i in range(4, 8)] == [0.0, -1.0, -2.0, -3.0]
    # No dummy prefix: a text's first word carries no "▁", later words do.
    first = sp.encode("the value", out_type=str)
    assert not first[0].startswith(WORD_BOUNDARY)
    assert any(piece.startswith(WORD_BOUNDARY) for piece in first[1:])
    assert sp.encode(" the") == sp.encode("the")
    # No byte fallback: no byte pieces, and an unseen character becomes <unk>.
    assert not any(sp.is_byte(i) for i in range(sp.vocab_size()))
    assert sp.encode("\u65e5") == [sp.unk_id()]
    # Split digits: no piece holds a digit next to anything else.
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    assert all(len(p) == 1 for p in pieces if any(c.isdigit() for c in p))
    assert sp.encode("2024", out_type=str) == ["2", "0", "2", "4"]
    # nmt_nfkc normalisation: compatibility forms fold, whitespace runs collapse.
    assert sp.normalize("\ufb01 \uff21\uff11  x\ny").replace(WORD_BOUNDARY, " ") == "fi A1 x y"


def test_rebuild_reuses_the_same_tokenizer_and_gives_identical_shards(sample, tmp_path):
    tokenizer = sample["tokenizer"]
    before = (tokenizer.read_bytes(), tokenizer.stat().st_mtime_ns)
    again = bs.build_sample(
        tmp_path / "out", tokenizer.parent, vocab_size=SMALL_VOCAB, shard_tokens=SHARD_TOKENS
    )
    # The tokenizer is retrained, found identical to the existing one, and left alone.
    assert again["tokenizer"] == tokenizer and again["tokenizer_trained"] is False
    assert (tokenizer.read_bytes(), tokenizer.stat().st_mtime_ns) == before
    shards = sample["train_shards"] + [sample["val_shard"]]
    shards_again = again["train_shards"] + [again["val_shard"]]
    assert [p.name for p in shards_again] == [p.name for p in shards]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(shards_again, shards))


# ------------------------------------------------------------- overwrite policy


def test_refuses_an_output_that_holds_shards(sample, capsys):
    out, tokenizers = sample["out_dir"], sample["tokenizer"].parent
    assert bs.existing_shards(out) == sorted(out.glob("fineweb_*.bin"))
    before = snapshot(out, tokenizers)
    code, stdout, stderr = run_main(
        capsys, "--out", out, "--tokenizer-dir", tokenizers, "--vocab-size", SMALL_VOCAB
    )
    assert code == 2
    assert str(out) in stderr and "--force" in stderr and stdout == ""
    assert snapshot(out, tokenizers) == before
    with pytest.raises(bs.OutputExistsError):
        bs.build_sample(out, tokenizers, vocab_size=SMALL_VOCAB)
    assert snapshot(out, tokenizers) == before


def test_force_rebuilds_and_removes_stale_shards(sample, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(sample["out_dir"], out)
    stale = out / "fineweb_train_000099.bin"
    shutil.copy(sample["val_shard"], stale)
    code, stdout, _ = run_main(
        capsys, "--out", out, "--tokenizer-dir", sample["tokenizer"].parent,
        "--vocab-size", SMALL_VOCAB, "--shard-tokens", SHARD_TOKENS, "--force",
    )
    assert code == 0 and "sample dataset" in stdout
    assert not stale.exists()
    originals = sample["train_shards"] + [sample["val_shard"]]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in originals)
    assert all((out / p.name).read_bytes() == p.read_bytes() for p in originals)


def test_refuses_to_replace_a_different_tokenizer(tmp_path, capsys):
    paragraphs = paragraphs_from_topics(120)
    text_a, text_b = tmp_path / "a.txt", tmp_path / "b.txt"
    text_a.write_text("\n\n".join(paragraphs[:60]), encoding="utf-8")
    text_b.write_text("\n\n".join(paragraphs[60:]), encoding="utf-8")
    tokenizers = tmp_path / "tok"
    common = ["--tokenizer-dir", tokenizers, "--vocab-size", 200]
    assert run_main(capsys, "--input", text_a, "--out", tmp_path / "a", *common)[0] == 0
    before = snapshot(tokenizers)
    code, _, stderr = run_main(capsys, "--input", text_b, "--out", tmp_path / "b", *common)
    assert code == 2
    assert "sample_200_bpe.model" in stderr and "--force" in stderr
    assert snapshot(tokenizers) == before and not (tmp_path / "b").exists()


# -------------------------------------------------------------------- --input


def test_input_files_give_one_document_per_paragraph_block(tmp_path):
    paragraphs = paragraphs_from_topics(40)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    # Blocks are separated by blank lines, however many and even with spaces on them.
    first.write_text("\n\n".join(paragraphs[:25]) + "\n", encoding="utf-8")
    second.write_text("\n\n\n".join(paragraphs[25:35]) + "\n  \n" + "\n \t\n".join(paragraphs[35:]), encoding="utf-8")
    info = bs.build_sample(
        tmp_path / "out", tmp_path / "tok", vocab_size=160, inputs=[first, second], val_fraction=0.2
    )
    assert (info["train_documents"], info["val_documents"]) == (32, 8)
    assert info["tokenizer"].name == "sample_160_bpe.model"
    n_unk, n_tokens = check_dataset_decodes(info, paragraphs)
    assert n_tokens == info["train_tokens"] + info["val_tokens"]
    assert n_unk < 0.01 * n_tokens


# --------------------------------------------------------------------- errors


@pytest.fixture
def small_text(tmp_path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text("\n\n".join(paragraphs_from_topics(4)), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing input", r"--input \S*does-not-exist\.txt: does not exist"),
        ("empty input", r"--input \S*empty\.txt: no text found"),
        ("vocab too large", r"--vocab-size 1024 is too large for this text: .*at most (\d+).*--vocab-size \1 or less"),
        ("vocab too small", r"--vocab-size 20 is too small: this text needs at least \d+"),
        ("tokenizer not a model", r"--tokenizer \S*small\.txt is not a SentencePiece \.model file"),
        ("tokenizer missing", r"--tokenizer \S*absent\.model does not exist; download it with the data"),
        ("bad val fraction", r"--val-fraction 1\.0: must be between 0 and 1"),
        ("single document", r"only 1 document\(s\).*separate documents by blank lines"),
    ],
)
def test_errors_name_the_problem_and_exit_nonzero(case, expected, small_text, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n\t\n", encoding="utf-8")
    single = tmp_path / "single.txt"
    single.write_text(paragraphs_from_topics(1)[0], encoding="utf-8")
    args = {
        "missing input": ["--input", tmp_path / "does-not-exist.txt"],
        "empty input": ["--input", empty],
        "vocab too large": ["--input", small_text, "--vocab-size", 1024],
        "vocab too small": ["--input", small_text, "--vocab-size", 20],
        "tokenizer not a model": ["--input", small_text, "--tokenizer", small_text],
        "tokenizer missing": ["--input", small_text, "--tokenizer", tmp_path / "absent.model"],
        "bad val fraction": ["--input", small_text, "--val-fraction", 1.0],
        "single document": ["--input", single, "--vocab-size", 60],
    }[case]
    out, tokenizers = tmp_path / "out", tmp_path / "tok"
    code, stdout, stderr = run_main(capsys, *args, "--out", out, "--tokenizer-dir", tokenizers)
    assert code == 1 and stdout == ""
    assert re.search(expected, stderr), stderr
    assert not out.exists() and not tokenizers.exists()


# ------------------------------------------------------------ the command line


def test_command_line_default_build(tmp_path, documents):
    out, tokenizers = tmp_path / "sample_sp1024", tmp_path / "tokenizers"
    result = subprocess.run(
        [sys.executable, "data/build_sample.py", "--out", str(out), "--tokenizer-dir", str(tokenizers)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    model = tokenizers / "sample_1024_bpe.model"
    assert model.is_file() and model.with_suffix(".vocab").is_file()
    assert spm.SentencePieceProcessor(model_file=str(model)).vocab_size() == 1024
    stdout = result.stdout
    assert "sample_1024_bpe.model (trained, vocab 1024)" in stdout
    train = re.search(r"train: ([\d,]+) documents, ([\d,]+) tokens in (\d+) shards", stdout)
    val = re.search(r"val: +([\d,]+) documents, ([\d,]+) tokens in 1 shard", stdout)
    assert train and val, stdout
    as_int = lambda s: int(s.replace(",", ""))  # noqa: E731
    train_shards = sorted(out.glob("fineweb_train_*.bin"))
    assert len(train_shards) == int(train.group(3))
    assert sum(read_header(p) for p in train_shards) == as_int(train.group(2))
    assert all(read_header(p) <= bs.DEFAULT_SHARD_TOKENS for p in train_shards)
    val_tokens = read_header(out / "fineweb_val_000000.bin")
    assert val_tokens == as_int(val.group(2))
    assert as_int(train.group(1)) + as_int(val.group(1)) == len(documents)
    assert val_tokens >= 20_000, "the default validation split should be big enough to evaluate on"


def test_command_line_default_paths():
    assert bs.default_out_dir(1024) == REPO / "data" / "datasets" / "sample_sp1024"
    args = bs.parse_args([])
    assert args.tokenizer_dir == REPO / "data" / "tokenizers"
    assert (args.vocab_size, args.out, args.input, args.tokenizer, args.force) == (None, None, None, None, False)
    assert (args.val_fraction, args.shard_tokens) == (0.1, 100_000)


# ------------------------------------------------------ the published tokenizer


@pytest.fixture(scope="module")
def real_tokenizer() -> Path:
    path = real_tokenizer_path()
    if not path.is_file():
        pytest.skip(
            f"published tokenizer not found at {path}; set ASQU_GOLF_REAL_TOKENIZER to its "
            "fineweb_1024_bpe.model to run this test"
        )
    return path


def test_published_tokenizer_shards_decode_to_the_source_text(real_tokenizer, documents, tmp_path, capsys):
    tokenizers = tmp_path / "tok"
    info = bs.build_sample(tmp_path / "out", tokenizers, tokenizer_model=real_tokenizer)
    assert info["tokenizer"] == real_tokenizer and info["tokenizer_trained"] is False
    assert info["vocab_size"] == 1024 and not tokenizers.exists()
    n_unk, n_tokens = check_dataset_decodes(info, documents)
    # Trained on web text, the published vocabulary lacks characters common in
    # Python docs ("_", "{", "[", ...): those become <unk>, which decoding cannot
    # restore and the byte tables count as zero bytes.
    assert 0 < n_unk < 0.1 * n_tokens
    code, _, stderr = run_main(
        capsys, "--tokenizer", real_tokenizer, "--vocab-size", 512,
        "--out", tmp_path / "other", "--tokenizer-dir", tokenizers,
    )
    assert code == 1 and "--vocab-size 512 contradicts --tokenizer" in stderr
