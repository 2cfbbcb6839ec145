"""Tests of data/shard_tool.py: validate on good and damaged datasets, stats and decode.

Most tests use small synthetic shards (and tiny SentencePiece models trained in fixtures,
one with byte fallback for the byte rule). The last group uses the real published tokenizer
(``ASQU_GOLF_REAL_TOKENIZER`` or ``<repo>/../shared/data/fineweb_1024_bpe.model``)
on real text (Python's bundled documentation topics plus a few hand-written lines):
the shards decode back to the text up to the tokenizer's NFKC and whitespace
normalisation, with every run of characters outside its vocabulary shown as one
``<unk>`` surface, and the byte counts (decoded text and the scorer's tables) equal an
independent count made from the text itself. They are skipped, saying why, when that file is absent.
"""
from __future__ import annotations

import io
import json
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import shard_tool
import train_gpt
from conftest import REPO, real_tokenizer_path
from shard_io import BOS_ID, HEADER_BYTES, read_header, read_shard, write_shard

VOCAB = 1024
TINY_VOCAB = 256


# --------------------------------------------------------------------------- helpers


def write_dataset(folder: Path, val_docs: list, train_docs: list, shard_tokens: int) -> Path:
    """Shards the way the exporter writes them: one val shard, train documents concatenated
    and cut every ``shard_tokens`` tokens (so documents continue across shards)."""
    folder.mkdir(parents=True, exist_ok=True)
    val = np.concatenate([np.concatenate([[BOS_ID], d]) for d in val_docs]).astype(np.uint16)
    write_shard(folder / "fineweb_val_000000.bin", val)
    train = np.concatenate([np.concatenate([[BOS_ID], d]) for d in train_docs]).astype(np.uint16)
    for i, start in enumerate(range(0, train.size, shard_tokens)):
        write_shard(folder / f"fineweb_train_{i:06d}.bin", train[start:start + shard_tokens])
    return folder


def random_docs(seed: int, n: int, vocab: int = VOCAB) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(4, vocab, size=int(rng.integers(5, 40))) for _ in range(n)]


def run_tool(capsys, *args) -> tuple[int, str, str]:
    code = shard_tool.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def problem_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("FAILED:")]


@pytest.fixture
def good(tmp_path) -> Path:
    """A valid sp1024-like dataset: 1 val shard (12 docs), 3 train shards with documents spanning them."""
    folder = write_dataset(tmp_path / "datasets" / "fineweb10B_sp1024", random_docs(1, 12), random_docs(2, 40), 400)
    assert len(list(folder.glob("fineweb_train_*.bin"))) == 3
    assert read_header(folder / "fineweb_val_000000.bin") < 400  # the last (only) val shard may be short
    assert int(read_shard(folder / "fineweb_train_000001.bin")[0]) != BOS_ID  # a document continues here
    return folder


# --------------------------------------------------------------------------- validate


def test_validate_accepts_a_good_dataset(good, capsys):
    code, out, err = run_tool(capsys, "validate", good)
    assert code == 0, err
    assert err == ""
    val_tokens = read_header(good / "fineweb_val_000000.bin")
    train_tokens = sum(read_header(p) for p in good.glob("fineweb_train_*.bin"))
    assert "vocabulary: 1024 (from the folder name)" in out
    assert f"val: 1 shard(s), {val_tokens:,} tokens, 12 documents" in out
    assert f"train: 3 shard(s), {train_tokens:,} tokens, 40 documents" in out
    assert out.rstrip().endswith(f"OK: {good}")


def _bad_magic(folder):
    path = folder / "fineweb_train_000001.bin"
    header = np.fromfile(path, dtype="<i4", count=256)
    header[0] = 12345
    data = bytearray(path.read_bytes())
    data[:HEADER_BYTES] = header.tobytes()
    path.write_bytes(bytes(data))
    return path, f"{path}: bad header (magic 12345, version 1; expected 20240520, 1)"


def _truncated(folder):
    path = folder / "fineweb_train_000002.bin"
    n = read_header(path)
    with open(path, "r+b") as f:
        f.truncate(HEADER_BYTES + 2 * n - 10)
    return path, f"{path}: header says {n} tokens ({HEADER_BYTES + 2 * n} bytes) but the file has " \
                 f"{HEADER_BYTES + 2 * n - 10} bytes"


def _token_too_large(folder):
    path = folder / "fineweb_val_000000.bin"
    toks = np.array(read_shard(path))
    toks[7] = 1500
    write_shard(path, toks)
    return path, f"{path}: 1 token id(s) >= vocabulary size 1024 (first at token 7: id 1500; largest 1500)"


def _missing_bos(folder):
    path = folder / "fineweb_val_000000.bin"
    toks = np.array(read_shard(path))
    toks[0] = 5
    write_shard(path, toks)
    return path, f"{path}: starts with id 5, not BOS (1)"


def _eos_inside(folder):
    path = folder / "fineweb_train_000000.bin"
    toks = np.array(read_shard(path))
    toks[9] = 2
    write_shard(path, toks)
    return path, f"{path}: 1 EOS token(s) (id 2); documents are separated by BOS only"


def _gap(folder):
    (folder / "fineweb_train_000001.bin").unlink()
    return folder, f"{folder}: train shards must be numbered from 000000 without gaps; missing fineweb_train_000001.bin"


def _no_val(folder):
    (folder / "fineweb_val_000000.bin").unlink()
    return folder, f"{folder}: no val shard (fineweb_val_000000.bin); the trainer needs one"


@pytest.mark.parametrize("damage", [_bad_magic, _truncated, _token_too_large, _missing_bos, _eos_inside, _gap, _no_val])
def test_validate_reports_each_damage_once_naming_the_file(good, capsys, damage):
    path, expected = damage(good)
    code, out, err = run_tool(capsys, "validate", good)
    assert code == 1
    problems = problem_lines(err)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), (problems[0], expected)
    assert err.splitlines()[-1] == f"FAILED: 1 problem(s) in {good}"
    assert "OK:" not in out


def test_validate_empty_or_missing_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_tool(capsys, "validate", tmp_path / "empty")
    assert code == 1 and "no fineweb_val_NNNNNN.bin or fineweb_train_NNNNNN.bin shards" in err
    code, _, err = run_tool(capsys, "validate", tmp_path / "nowhere")
    assert code == 1 and f"{tmp_path / 'nowhere'}: no such directory" in err and "build_sample.py" in err


def test_validate_vocab_sources(good, tmp_path, capsys):
    # an explicit --vocab-size below the ids present is reported
    code, out, err = run_tool(capsys, "validate", good, "--vocab-size", "512")
    assert code == 1 and "vocabulary: 512 (from --vocab-size)" in out
    assert all("token id(s) >= vocabulary size 512" in p for p in problem_lines(err))
    # a folder name that says nothing: ids are not checked, and the tool says so
    plain = write_dataset(tmp_path / "plain", random_docs(3, 5), random_docs(4, 5), 1000)
    code, out, _ = run_tool(capsys, "validate", plain)
    assert code == 0 and "token ids not checked against a vocabulary" in out


# --------------------------------------------------------------------------- validate against a manifest


def write_manifest(where: Path, folder: Path, shard_size: int = 400, **stats) -> Path:
    """A manifest shaped like the published one (datasets[].stats, tokenizers[], shard_size)."""
    entry = {"name": folder.name, "tokenizer_name": "sp_bpe_1024", "vocab_size": VOCAB, "stats": stats}
    manifest = {"shard_size": shard_size, "datasets": [entry],
                "tokenizers": [{"name": "sp_bpe_1024", "vocab_size": VOCAB, "model_path": "tokenizers/x.model"}]}
    path = where / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def manifest_stats(folder: Path) -> dict:
    val = read_shard(folder / "fineweb_val_000000.bin")
    return {"files_val": 1, "files_train": 3, "tokens_val": int(val.size), "docs_val": int((val == BOS_ID).sum())}


@pytest.mark.parametrize("where", [0, 1, 2])  # in the folder, beside it, or in data/ (where the downloader puts it)
def test_validate_checks_a_matching_manifest(good, capsys, where):
    place = [good, good.parent, good.parent.parent][where]
    path = write_manifest(place, good, **manifest_stats(good))
    code, out, err = run_tool(capsys, "validate", good)
    assert code == 0, err
    assert f"train shards present: 3 of 3 in {path}" in out


@pytest.mark.parametrize("change, expected", [
    ({"tokens_val": +1}, "the val shards hold {tokens_val:,} tokens; {manifest} says {tokens_val_plus:,}"),
    ({"docs_val": +1}, "the val shards hold 12 documents; {manifest} says 13"),
    ({"files_val": +1}, "1 val shard(s) but {manifest} lists 2; the val split must be complete (rerun the downloader)"),
    ({"files_train": -1}, "3 train shards but {manifest} lists only 2"),
])
def test_validate_reports_manifest_disagreements(good, capsys, change, expected):
    stats = manifest_stats(good)
    (key, delta), = change.items()
    original = stats[key]
    stats[key] += delta
    path = write_manifest(good.parent.parent, good, **stats)
    code, _, err = run_tool(capsys, "validate", good)
    assert code == 1
    problems = problem_lines(err)
    if key == "files_val":  # with 2 val shards listed, shard 0 would have to be full: reported as well
        short = good / "fineweb_val_000000.bin"
        assert problems.pop(0) == (f"{short}: {read_header(short):,} tokens; the manifest's shard_size is 400 and "
                                   "only the last val shard may be shorter")
    message = expected.format(manifest=path, tokens_val=original, tokens_val_plus=original + 1)
    assert problems == [f"{good}: {message}"], problems


def test_validate_checks_the_manifest_shard_size(good, capsys):
    stats = manifest_stats(good)
    stats["files_train"] = 5  # shard 2 is then not the last one, so it must be full
    write_manifest(good.parent, good, **stats)
    code, out, err = run_tool(capsys, "validate", good)
    path = good / "fineweb_train_000002.bin"
    assert code == 1
    assert problem_lines(err) == [f"{path}: {read_header(path):,} tokens; the manifest's shard_size is 400 and "
                                  "only the last train shard may be shorter"]
    assert "train shards present: 3 of 5" in out


def test_validate_reports_a_manifest_off_the_published_layout(good, capsys):
    (good.parent / "manifest.json").write_text(json.dumps({"datasets": {good.name: {}}}))
    code, _, err = run_tool(capsys, "validate", good)
    assert code == 1 and problem_lines(err)[0].startswith(f"{good.parent / 'manifest.json'} does not follow the "
                                                          "published manifest layout")
    (good.parent / "manifest.json").write_text(json.dumps({"name": "some web app"}))  # not an export's manifest
    assert run_tool(capsys, "validate", good)[0] == 0


def test_validate_takes_the_vocabulary_from_the_manifest(tmp_path, capsys):
    folder = write_dataset(tmp_path / "datasets" / "mydata", random_docs(5, 5, vocab=600), random_docs(6, 5), 1000)
    manifest = write_manifest(tmp_path, folder, files_val=1, files_train=1)
    data = json.loads(manifest.read_text())
    data["datasets"][0]["vocab_size"] = 512
    manifest.write_text(json.dumps(data))
    code, out, err = run_tool(capsys, "validate", folder)
    assert f"vocabulary: 512 (from {manifest})" in out
    assert code == 1 and all(">= vocabulary size 512" in p for p in problem_lines(err))


# --------------------------------------------------------------------------- stats and decode (tiny tokenizer)


def train_tokenizer(path: Path, vocab_size: int, byte_fallback: bool = False) -> Path:
    """A SentencePiece BPE model with the published model's settings, trained on Python's doc topics."""
    import sentencepiece as spm
    from pydoc_data.topics import topics

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([t for _, t in sorted(topics.items())][:30]), model_writer=buf, model_type="bpe",
        vocab_size=vocab_size, character_coverage=1.0, byte_fallback=byte_fallback, normalization_rule_name="nmt_nfkc",
        add_dummy_prefix=False, split_digits=True, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        hard_vocab_limit=False, minloglevel=2,
    )
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tiny.model", TINY_VOCAB)


@pytest.fixture(scope="module")
def fallback_tokenizer(tmp_path_factory) -> Path:
    """Byte fallback: characters outside the vocabulary become <0xNN> byte pieces instead of <unk>."""
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "fallback.model", 512, byte_fallback=True)


def test_byte_rule_on_a_byte_fallback_tokenizer(fallback_tokenizer):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(fallback_tokenizer))
    tables = train_gpt.build_byte_luts(sp, sp.vocab_size())  # the one byte table, which shard_tool counts with
    byte = {v: sp.piece_to_id(f"<0x{v:02X}>") for v in (0xE2, 0x96, 0x81, 0x41)}
    e2, x96, x81, a = byte[0xE2], byte[0x96], byte[0x81], byte[0x41]
    word, spaced = sp.piece_to_id("in"), sp.piece_to_id("\u2581the")
    assert tables.base[word] == 2 and not tables.leading_space[word] and tables.leading_space[spaced]
    stream = [BOS_ID, e2, x96, x81, word, spaced, e2, x96, a, x96, x81, BOS_ID, spaced, e2, x96, x81]
    expected = [0, 0, 0, 0, 2, 4, 1, 1, 1, 1, 1, 0, 3, 1, 0, 0]
    # a space spelled by byte fallback (E2 96 81) is 1 byte in all, 0 right after a boundary token (issue 23, as a
    # '▁' piece there); a broken triple is 1 byte per piece; '▁the' is 3 + 1 bytes, but 3 right after a boundary
    assert train_gpt.stream_bytes(np.array(stream), tables).tolist() == expected
    # on text: the table bytes are the UTF-8 bytes of the normalised text, byte-fallback characters included
    text = "naïve café — 日本語\ttabs  and  spaces"
    ids = sp.encode(text)
    assert sp.unk_id() not in ids and any(tables.byte_value[i] >= 0 for i in ids)
    assert train_gpt.stream_bytes(np.array([BOS_ID] + ids), tables).sum() == len(normalise(text).encode("utf-8"))


def encoded_dataset(folder: Path, model: Path, texts_val: list[str], texts_train: list[str], shard_tokens: int):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    enc = lambda texts: [np.array(ids, dtype=np.int64) for ids in sp.encode(texts)]  # noqa: E731
    return write_dataset(folder, enc(texts_val), enc(texts_train), shard_tokens), sp


@pytest.fixture
def tiny_dataset(tmp_path, tiny_tokenizer):
    from pydoc_data.topics import topics

    texts = [t for _, t in sorted(topics.items())][30:50]
    folder, sp = encoded_dataset(tmp_path / "tinyset", tiny_tokenizer, texts[:5], texts[5:], 3000)
    return folder, sp, texts


def test_stats_counts_and_table(tiny_dataset, tiny_tokenizer, capsys):
    folder, sp, texts = tiny_dataset
    stats = shard_tool.compute_stats(folder, tiny_tokenizer)
    val_tokens = read_header(folder / "fineweb_val_000000.bin")
    train_tokens = sum(read_header(p) for p in folder.glob("fineweb_train_*.bin"))
    assert stats["val"]["tokens"] == val_tokens and stats["val"]["documents"] == 5
    assert stats["train"]["tokens"] == train_tokens and stats["train"]["documents"] == 15
    assert stats["train"]["shards"] == len(list(folder.glob("fineweb_train_*.bin"))) > 1
    assert stats["train"]["mean_document_tokens"] == pytest.approx(train_tokens / 15)
    assert stats["val"]["sample_exact"] and stats["val"]["sample_tokens"] == val_tokens
    expected_unk = sum(sp.encode(texts[:5]), []).count(sp.unk_id())
    assert stats["val"]["unk_tokens"] == expected_unk
    code, out, _ = run_tool(capsys, "stats", folder, "--tokenizer", tiny_tokenizer)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("train "))
    assert f"{train_tokens:,}" in row and f"{stats['train']['bytes_per_token']:.4f}" in row and "all 15 docs" in row
    code, out, _ = run_tool(capsys, "stats", folder, "--tokenizer", tiny_tokenizer, "--json", "--split", "val")
    assert json.loads(out)["val"]["tokens"] == val_tokens and "train" not in json.loads(out)


def test_stats_refuses_a_tokenizer_too_small_for_the_ids(good, tiny_tokenizer, capsys):
    code, _, err = run_tool(capsys, "stats", good, "--tokenizer", tiny_tokenizer)
    assert code == 1
    assert err.startswith("error: ") and f"but the tokenizer has {TINY_VOCAB} pieces: wrong --tokenizer" in err
    assert "fineweb_val_000000.bin" in err


def test_stats_and_decode_name_a_missing_tokenizer(good, tmp_path, capsys):
    for command in ("stats", "decode"):
        code, _, err = run_tool(capsys, command, good, "--tokenizer", tmp_path / "none.model")
        assert code == 1
        assert f"--tokenizer {tmp_path / 'none.model'} does not exist" in err and "build_sample.py" in err


def test_decode_prints_the_first_documents(tiny_dataset, tiny_tokenizer, capsys):
    folder, sp, texts = tiny_dataset
    code, out, _ = run_tool(capsys, "decode", folder, "--tokenizer", tiny_tokenizer, "-n", 2, "--max-chars", 0)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    ids = sp.encode(texts[:2])
    assert lines[0] == f"--- val document 0: fineweb_val_000000.bin token 0, {len(ids[0]) + 1:,} tokens, " \
                       f"{ids[0].count(sp.unk_id())} <unk> ---"
    assert lines[1] == sp.decode(ids[0]) and lines[3] == sp.decode(ids[1])
    assert lines[2].startswith(f"--- val document 1: fineweb_val_000000.bin token {len(ids[0]) + 1:,},")
    code, out, _ = run_tool(capsys, "decode", folder, "--tokenizer", tiny_tokenizer, "-n", 1, "--max-chars", 50)
    assert len(out.splitlines()[1]) == 50 and "(cut at 50 characters)" in out.splitlines()[0]


def test_decode_stitches_documents_across_train_shards(tiny_dataset, tiny_tokenizer, capsys):
    folder, sp, texts = tiny_dataset
    code, out, _ = run_tool(capsys, "decode", folder, "--tokenizer", tiny_tokenizer, "--split", "train",
                            "-n", 100, "--max-chars", 0)
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == "(the train split holds only 15 document(s))"
    assert lines[1:-1:2] == [sp.decode(ids) for ids in sp.encode(texts[5:])]
    assert any("continues into the next shard" in header for header in lines[0:-1:2])


def test_decode_random_sample_is_seeded_and_whole(tiny_dataset, tiny_tokenizer):
    folder, sp, texts = tiny_dataset
    first = shard_tool.pick_documents(folder, "train", 4, randomize=True, seed=7)
    again = shard_tool.pick_documents(folder, "train", 4, randomize=True, seed=7)
    assert [(d.shard, d.offset) for d in first] == [(d.shard, d.offset) for d in again]
    assert 1 <= len(first) <= 4 and len({(d.shard, d.offset) for d in first}) == len(first)
    whole = {sp.decode(ids) for ids in sp.encode(texts[5:])}
    for doc in first:
        assert int(doc.tokens[0]) == BOS_ID
        assert sp.decode(doc.tokens.tolist()) in whole  # whole documents only


def test_sampled_stats_draw_whole_documents_near_the_budget(tiny_dataset, tiny_tokenizer):
    folder, _, _ = tiny_dataset
    exact = shard_tool.compute_stats(folder, tiny_tokenizer, splits=("train",))["train"]
    sampled = shard_tool.compute_stats(folder, tiny_tokenizer, splits=("train",), sample_tokens=6000, seed=1)["train"]
    assert not sampled["sample_exact"] and sampled["sample_documents"] < exact["documents"]
    assert 0 < sampled["sample_tokens"] < exact["tokens"]
    assert sampled["tokens"] == exact["tokens"] and sampled["documents"] == exact["documents"]  # counts stay exact
    assert sampled["bytes_per_token"] == pytest.approx(exact["bytes_per_token"], rel=0.15)
    assert sampled["bytes_per_token_decoded"] == pytest.approx(exact["bytes_per_token_decoded"], rel=0.15)


def test_the_offline_sample_passes_validate(tmp_path, tiny_tokenizer, capsys):
    """build_sample.py's output (shards of real text, with a given tokenizer) is a valid dataset."""
    import subprocess

    builder = REPO / "data" / "build_sample.py"
    if not builder.is_file():
        pytest.skip("data/build_sample.py is not there yet")
    out = tmp_path / "sample_tiny"
    proc = subprocess.run([sys.executable, str(builder), "--out", str(out), "--tokenizer", str(tiny_tokenizer)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    code, text, err = run_tool(capsys, "validate", out, "--tokenizer", tiny_tokenizer)
    assert code == 0, err
    assert f"vocabulary: {TINY_VOCAB} (from --tokenizer)" in text
    stats = shard_tool.compute_stats(out, tiny_tokenizer)
    assert stats["val"]["documents"] >= 1 and stats["train"]["documents"] > stats["val"]["documents"]
    assert 1.0 < stats["train"]["bytes_per_token"] < 8.0


# --------------------------------------------------------------------------- the real published tokenizer


def published_tokenizer() -> Path:
    """The published tokenizer (conftest.real_tokenizer_path); skip if absent."""
    path = real_tokenizer_path()
    if not path.is_file():
        pytest.skip(f"the published tokenizer is absent at {path} (set ASQU_GOLF_REAL_TOKENIZER)")
    return path


HANDWRITTEN = [
    "ﬁne ①  Ｆｕｌｌ\u3000width and café;\n\n a snow☃man, 日本語 text\tand x_y = [1, 2] * 3.",
    "Plain prose: the quick brown fox jumps over the lazy dog 1234567890 times, “quoted” — dashed…",
]


@pytest.fixture(scope="module")
def real_set(tmp_path_factory):
    """Real text encoded with the published tokenizer into val + train shards (documents span shards)."""
    model = published_tokenizer()
    from pydoc_data.topics import topics

    texts = HANDWRITTEN + [t for _, t in sorted(topics.items())]
    folder, sp = encoded_dataset(tmp_path_factory.mktemp("real") / "fineweb10B_sp1024", model,
                                 texts[:12], texts[12:], 20_000)
    return folder, sp, model, texts


def vocabulary_chars(sp) -> set[str]:
    chars: set[str] = set()
    for i in range(sp.vocab_size()):
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i) or sp.is_byte(i)):
            chars.update(sp.id_to_piece(i).replace("\u2581", " "))
    return chars


def normalise(text: str) -> str:
    """nmt_nfkc as seen from outside: NFKC, any whitespace run becomes one space, ends trimmed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def expected_decoding(text: str, known: set[str]) -> str:
    """The normalised text with every run of characters outside the vocabulary shown as one <unk> (' ⁇ ')."""
    return re.sub("[^" + re.escape("".join(sorted(known))) + "]+", " \u2047 ", normalise(text))


def test_real_tokenizer_round_trip_up_to_normalisation(real_set, capsys):
    folder, sp, model, texts = real_set
    known = vocabulary_chars(sp)
    decoded = []
    for split, n_docs in (("val", 12), ("train", len(texts) - 12)):
        code, out, _ = run_tool(capsys, "decode", folder, "--tokenizer", model, "--split", split,
                                "-n", n_docs, "--max-chars", 0)
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 2 * n_docs and all(h.startswith(f"--- {split} document ") for h in lines[0::2])
        decoded += lines[1::2]
    assert decoded == [expected_decoding(t, known) for t in texts]
    # What that means for the hand-written line: NFKC folds the ligature, the circled and the full-width
    # characters; 'é', '☃', the CJK run and '_=[]*' are outside the vocabulary and come back as <unk>.
    unk = " \u2047 "
    assert decoded[0] == ("fine 1 Full width and caf" + unk + "; a snow" + unk + "man, " + unk + " text and x" + unk
                          + "y " + unk + " " + unk + "1, 2" + unk + " " + unk + " 3.")
    assert decoded[1] == normalise(HANDWRITTEN[1])  # nothing outside the vocabulary: exact up to normalisation


def test_real_tokenizer_bytes_per_token_match_an_independent_count(real_set):
    folder, sp, model, texts = real_set
    known = vocabulary_chars(sp)
    stats = shard_tool.compute_stats(folder, model, sample_tokens=10**9)
    for split, split_texts in (("val", texts[:12]), ("train", texts[12:])):
        s = stats[split]
        assert s["sample_exact"] and s["sample_tokens"] == s["tokens"]
        # independent: UTF-8 bytes of the normalised text, characters outside the vocabulary worth 0
        independent = sum(len("".join(c for c in normalise(t) if c in known).encode("utf-8")) for t in split_texts)
        assert s["sample_decoded_bytes"] == independent
        assert s["bytes_per_token_decoded"] == independent / s["tokens"]
        # the scorer's tables give no byte to a leading space right after <unk>: exactly that difference
        ids = [np.array([BOS_ID] + e) for e in sp.encode(split_texts)]
        after_unk = sum(int(np.sum((d[:-1] == sp.unk_id()) & np.isin(d[1:], space_ids(sp)))) for d in ids)
        assert after_unk > 0
        assert s["sample_table_bytes"] == independent - after_unk
        assert s["bytes_per_token"] == s["sample_table_bytes"] / s["tokens"]
        assert s["documents"] == len(split_texts)


def space_ids(sp) -> np.ndarray:
    return np.array([i for i in range(sp.vocab_size()) if sp.id_to_piece(i).startswith("\u2581")])


def test_real_tokenizer_tables_equal_decoding_without_unk(tmp_path):
    model = published_tokenizer()
    texts = [HANDWRITTEN[1], "It was the best of times, it was the worst of times; it was 1859.",
             "Numbers split into digits: 2024 and 3.14159, and A-B testing."]
    folder, sp = encoded_dataset(tmp_path / "clean_sp1024", model, texts[:1], texts[1:], 50)
    assert sp.unk_id() not in sum(sp.encode(texts), [])
    stats = shard_tool.compute_stats(folder, model)
    for split, split_texts in (("val", texts[:1]), ("train", texts[1:])):
        independent = sum(len(normalise(t).encode("utf-8")) for t in split_texts)
        assert stats[split]["sample_decoded_bytes"] == stats[split]["sample_table_bytes"] == independent


def test_real_tokenizer_validate_and_sampled_stats(real_set, capsys):
    folder, sp, model, texts = real_set
    code, out, err = run_tool(capsys, "validate", folder, "--tokenizer", model)
    assert code == 0, err
    assert "vocabulary: 1024 (from --tokenizer)" in out
    exact = shard_tool.compute_stats(folder, model, splits=("train",), sample_tokens=10**9)["train"]
    first = shard_tool.compute_stats(folder, model, splits=("train",), sample_tokens=40_000, seed=3)["train"]
    again = shard_tool.compute_stats(folder, model, splits=("train",), sample_tokens=40_000, seed=3)["train"]
    assert first == again and not first["sample_exact"]
    assert first["bytes_per_token"] == pytest.approx(exact["bytes_per_token"], rel=0.1)
