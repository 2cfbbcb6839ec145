"""Tests for data/build_corpus.py: the registry-fetched prose corpus, built here from local files.

No network: the documents come from a temporary folder (--input-dir) or from a small
sdist-like archive made in the test, and fetching is exercised with a stand-in for pip.
A small tokenizer is trained on the fixture text (the trained-tokenizer path); the
published tokenizer is used too when this checkout has it.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

import build_corpus as bc
from conftest import REPO, real_tokenizer_path
from shard_io import BOS_ID, read_shard

SMALL_VOCAB = 320
WORDS = (
    "the a model learns text from many documents and each page explains how settings work while "
    "users read guides about databases queries templates forms views tests plugins fixtures caches "
    "servers requests responses errors messages files folders packages versions releases notes "
    "quickly slowly carefully often rarely always never because although when where which that "
    "build run write read change keep drop split join check measure report compare train evaluate"
).split()


def make_prose(rng: random.Random, sentences: int) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def make_rst(rng: random.Random, title: str) -> str:
    """A reStructuredText page: title, prose with inline markup, a code block, a literal block, a note."""
    return "\n".join([
        ".. _label-%s:" % title,
        "",
        title,
        "=" * len(title),
        "",
        make_prose(rng, 5) + " See :class:`~pkg.mod.Widget` and ``value`` in :ref:`the guide <guide>`.",
        "",
        ".. code-block:: python",
        "",
        "    x = {'key': [1, 2]}  # CODE_SHOULD_VANISH",
        "",
        make_prose(rng, 4) + " For example::",
        "",
        "    LITERAL_SHOULD_VANISH = <1>",
        "",
        ".. note::",
        "",
        "   " + make_prose(rng, 2),
        "",
        "Section",
        "-------",
        "",
        "* " + make_prose(rng, 3),
        "* **bold** and *emphasis* text.",
        "",
        ">>> DOCTEST_SHOULD_VANISH = 1",
        "1",
        "",
        make_prose(rng, 6),
        "",
    ])


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """60 documents: reStructuredText pages and plain text, in nested folders, plus two that are dropped."""
    root = tmp_path_factory.mktemp("corpus_src")
    rng = random.Random(1234)
    for i in range(60):
        folder = root / f"pkg{i % 3}" / ("topics" if i % 2 else "ref")
        folder.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0:
            (folder / f"page{i:02d}.txt").write_text(make_prose(rng, 30) + "\n", encoding="utf-8")
        else:
            (folder / f"page{i:02d}.rst").write_text(make_rst(rng, f"Title {i}"), encoding="utf-8")
    (root / "short.rst").write_text("Too short.\n", encoding="utf-8")
    (root / "pkg0" / "copy_of_page00.txt").write_bytes((root / "pkg0" / "ref" / "page00.txt").read_bytes())
    (root / "pkg0" / "image.png").write_bytes(b"\x89PNG not a document")
    return root


@pytest.fixture(scope="module")
def built(corpus_dir, tmp_path_factory) -> dict:
    """One build with a small trained tokenizer (module-scoped: the other tests read it)."""
    root = tmp_path_factory.mktemp("built")
    info = bc.build_corpus(
        root / "ds", input_dir=corpus_dir, train_new_tokenizer=True, tokenizer_dir=root / "tok",
        vocab_size=SMALL_VOCAB, val_fraction=0.2, shard_tokens=20_000, min_chars=200, log=lambda _m: None,
    )
    return info


def split_at_bos(tokens) -> list[np.ndarray]:
    tokens = np.asarray(tokens)
    starts = np.flatnonzero(tokens == BOS_ID)
    assert starts.size and starts[0] == 0, "a split must start with BOS"
    return [tokens[s + 1 : e] for s, e in zip(starts, list(starts[1:]) + [tokens.size])]


def split_tokens(out_dir: Path, split: str) -> np.ndarray:
    files = sorted(out_dir.glob(f"fineweb_{split}_*.bin"))
    assert files
    return np.concatenate([np.asarray(read_shard(f), dtype=np.int64) for f in files])


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


# ------------------------------------------------------------------ prose extraction


def test_rst_to_prose_keeps_prose_and_drops_code_and_markup():
    text = make_rst(random.Random(0), "Queries")
    prose = bc.rst_to_prose(text)
    for gone in ("CODE_SHOULD_VANISH", "LITERAL_SHOULD_VANISH", "DOCTEST_SHOULD_VANISH", "label-Queries",
                 "=======", "-------", ":class:", "``", "**", ".. "):
        assert gone not in prose, gone
    assert prose.startswith("Queries\n")
    assert "See Widget and value in the guide." in prose
    assert "For example:" in prose and "example::" not in prose
    assert "Note:" in prose
    assert "- " in prose and "bold and emphasis text." in prose
    assert "\n\n\n" not in prose


@pytest.mark.parametrize("rst, expected", [
    (":meth:`~django.db.models.Model.save`", "save"),
    (":doc:`Writing your first app </intro/tutorial01>`", "Writing your first app"),
    (":setting:`!DEBUG`", "DEBUG"),
    ("`PEP 8 <https://peps.python.org/pep-0008/>`_", "PEP 8"),
    ("`the section`_", "the section"),
    ("|version|", "version"),
    ("a footnote[#]_ here", "a footnote here"),
    ("2 \\* 3", "2 * 3"),
    ("snake_case_name stays", "snake_case_name stays"),
])
def test_inline_markup(rst, expected):
    assert bc.inline_to_text(rst) == expected


def test_rst_directives_with_phrases_and_object_descriptions():
    text = "\n".join([
        ".. versionadded:: 4.1",
        "",
        "    The ``fast`` option.",
        "",
        ".. function:: get(key, default=None)",
        "   :noindex:",
        "",
        "   Return the value for key.",
        "",
        ".. toctree::",
        "   :maxdepth: 2",
        "",
        "   intro",
        "",
        "+-------+-------+",
        "| cell  | other |",
        "+=======+=======+",
        ":param key: the key to look up",
    ])
    prose = bc.rst_to_prose(text)
    assert "New in version 4.1." in prose
    assert "The fast option." in prose
    assert "Return the value for key." in prose
    assert "default=None" not in prose and "noindex" not in prose
    assert "maxdepth" not in prose and "intro" not in prose
    assert "cell other" in prose and "+---" not in prose
    assert "param key: the key to look up" in prose


def test_plain_text_passes_through():
    text = "A plain paragraph of text.\n\nAnother one, with a colon: here."
    assert bc.rst_to_prose(text) == text


# ------------------------------------------------------------------ documents and split


def test_folder_documents_reads_text_files_only(corpus_dir):
    docs = bc.folder_documents(corpus_dir)
    assert len(docs) == 62  # 60 pages + short.rst + copy_of_page00.txt; image.png is not read
    assert "pkg0/ref/page00.txt" in docs and "short.rst" in docs
    assert all(not name.endswith(".png") for name in docs)


def test_prepare_drops_short_and_duplicate_documents(corpus_dir):
    documents, dropped = bc.prepare_documents(bc.folder_documents(corpus_dir), min_chars=200)
    names = [name for name, _ in documents]
    assert names == sorted(names)
    assert dropped == {"short": 1, "duplicate": 1}
    # the duplicate with the smaller name is kept
    assert "pkg0/copy_of_page00.txt" in names and "pkg0/ref/page00.txt" not in names
    assert len(documents) == 60


def test_split_by_name_hash_is_stable_and_disjoint():
    docs = [(f"doc{i:03d}", f"text {i}") for i in range(300)]
    train, val = bc.split_documents(docs, 0.1)
    assert {n for n, _ in train}.isdisjoint({n for n, _ in val})
    assert len(train) + len(val) == 300
    assert 10 <= len(val) <= 55  # about 30
    # a document's side depends on its name only: shuffling and adding documents moves nothing
    more = docs[::-1] + [(f"extra{i}", "x") for i in range(50)]
    train2, val2 = bc.split_documents(more, 0.1)
    assert {n for n, _ in val} == {n for n, _ in val2 if n.startswith("doc")}
    # each split is ordered by the name hash, not by name
    assert [bc.name_hash(n) for n, _ in train] == sorted(bc.name_hash(n) for n, _ in train)
    assert [n for n, _ in train] != sorted(n for n, _ in train)


def test_split_needs_both_sides():
    with pytest.raises(bc.BuildError, match="both splits"):
        bc.split_documents([("only", "text")], 0.5)
    with pytest.raises(bc.BuildError, match="val-fraction"):
        bc.split_documents([("a", "x"), ("b", "y")], 1.0)


def test_unk_stats():
    stream = np.array([BOS_ID, 5, 3, 7, BOS_ID, 3, 3, 9, 10, 11], dtype=np.int64)
    stats = bc.unk_stats(stream, unk_id=3)
    assert stats == {"tokens": 10, "content_tokens": 8, "unk": 3, "unk_rate": 3 / 8}
    assert bc.unk_stats(np.array([BOS_ID]), 3)["unk_rate"] == 0.0


# ------------------------------------------------------------------ the build


def test_build_counts_and_documents(built, corpus_dir):
    out = built["out_dir"]
    manifest = json.loads((out / bc.MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["train"]["documents"] + manifest["val"]["documents"] == 60
    assert set(manifest["train_documents"]).isdisjoint(manifest["val_documents"])
    assert manifest["tokenizer"]["kind"].startswith("trained")
    sp = spm.SentencePieceProcessor(model_file=manifest["tokenizer"]["path"])
    assert sp.vocab_size() == SMALL_VOCAB
    documents = dict(bc.prepare_documents(bc.folder_documents(corpus_dir))[0])
    for split in ("train", "val"):
        tokens = split_tokens(out, split)
        assert tokens.size == manifest[split]["tokens"]
        assert manifest[split]["content_tokens"] == tokens.size - manifest[split]["documents"]
        assert manifest[split]["unk"] == int(np.count_nonzero(tokens == sp.unk_id()))
        docs = split_at_bos(tokens)
        names = manifest[f"{split}_documents"]
        assert len(docs) == len(names)
        for ids, name in zip(docs, names):  # the shards hold exactly these documents, in this order
            assert list(ids) == sp.encode(documents[name])
    shards = sorted(out.glob("fineweb_train_*.bin"))
    assert [p.name for p in shards] == manifest["train"]["shards"]
    assert len(shards) == -(-manifest["train"]["tokens"] // 20_000)
    assert all(read_shard(p).size == 20_000 for p in shards[:-1])
    assert (out / "fineweb_val_000000.bin").is_file()


def test_build_is_deterministic(built, corpus_dir, tmp_path):
    again = bc.build_corpus(
        tmp_path / "ds", input_dir=corpus_dir, train_new_tokenizer=True, tokenizer_dir=tmp_path / "tok",
        vocab_size=SMALL_VOCAB, val_fraction=0.2, shard_tokens=20_000, min_chars=200, log=lambda _m: None,
    )
    first, second = file_digests(built["out_dir"]), file_digests(again["out_dir"])
    manifest_name = bc.MANIFEST_NAME
    shard_names = [n for n in first if n.endswith(".bin")]
    assert shard_names and {n: first[n] for n in shard_names} == {n: second[n] for n in shard_names}
    one = json.loads((built["out_dir"] / manifest_name).read_text(encoding="utf-8"))
    two = json.loads((again["out_dir"] / manifest_name).read_text(encoding="utf-8"))
    for manifest in (one, two):
        manifest["tokenizer"].pop("path")
        manifest["tokenizer"].pop("sha256")  # a trained .model file records where it was written
        manifest["sources"][0].pop("input_dir")
    assert one == two


def test_existing_output_is_refused_then_replaced_with_force(built, corpus_dir, tmp_path):
    out = tmp_path / "ds"
    kwargs = dict(input_dir=corpus_dir, tokenizer_model=built["tokenizer"]["path"], val_fraction=0.2,
                  shard_tokens=20_000, log=lambda _m: None)
    bc.build_corpus(out, **kwargs)
    before = file_digests(out)
    with pytest.raises(bc.OutputExistsError):
        bc.build_corpus(out, **kwargs)
    assert file_digests(out) == before
    bc.build_corpus(out, force=True, **{**kwargs, "shard_tokens": 1_000_000})
    assert sorted(p.name for p in out.glob("*.bin")) == ["fineweb_train_000000.bin", "fineweb_val_000000.bin"]


def test_published_tokenizer_and_cli(corpus_dir, tmp_path):
    model = real_tokenizer_path()
    if not model.is_file():
        pytest.skip(f"published tokenizer not in this checkout ({model})")
    out = tmp_path / "ds"
    result = subprocess.run(
        [sys.executable, str(REPO / "data" / "build_corpus.py"), "--input-dir", str(corpus_dir), "--out", str(out),
         "--tokenizer", str(model), "--val-fraction", "0.2"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "(existing; vocab 1024;" in result.stdout
    assert "% of non-BOS tokens" in result.stdout
    manifest = json.loads((out / bc.MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["tokenizer"]["kind"] == "existing" and manifest["tokenizer"]["vocab_size"] == 1024
    # this fixture is plain words, so the published tokenizer has (almost) nothing unknown
    assert manifest["train"]["unk_rate"] < 0.01
    again = subprocess.run(
        [sys.executable, str(REPO / "data" / "build_corpus.py"), "--input-dir", str(corpus_dir), "--out", str(out),
         "--tokenizer", str(model)], capture_output=True, text=True, cwd=tmp_path,
    )
    assert again.returncode == 2 and "--force" in again.stderr


def test_cli_reports_bad_input(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "data" / "build_corpus.py"), "--input-dir", str(tmp_path / "missing"),
         "--out", str(tmp_path / "ds"), "--train-tokenizer", "--tokenizer-dir", str(tmp_path / "tok")],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "not a directory" in result.stderr


def test_cli_refuses_a_bad_tokenizer_before_any_download(tmp_path):
    absent = tmp_path / "absent.model"
    result = subprocess.run(
        [sys.executable, str(REPO / "data" / "build_corpus.py"), "--tokenizer", str(absent),
         "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "ds")],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"build_corpus: error: --tokenizer {absent} does not exist; download it")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "ds").exists()


# ------------------------------------------------------------------ sources and fetching


def test_sources_are_pinned():
    names = [s.name.lower() for s in bc.SOURCES]
    assert len(set(names)) == len(names)
    for s in bc.SOURCES:
        assert len(s.sha256) == 64 and int(s.sha256, 16) >= 0
        assert s.filename.lower().startswith(f"{s.name.lower()}-{s.version}") and s.filename.endswith(".tar.gz")
        assert s.doc_dir in ("doc", "docs")


def make_sdist(path: Path, top: str, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_archive_documents_and_collect(tmp_path, monkeypatch):
    prose = make_prose(random.Random(5), 20)
    archive = make_sdist(tmp_path / "demo-1.0.tar.gz", "demo-1.0", {
        "docs/index.rst": prose,
        "docs/guide/usage.txt": prose + " More.",
        "docs/requirements.txt": "sphinx\n",
        "docs/conf.py": "project = 'demo'\n",
        "src/demo/README.txt": "not documentation",
    })
    docs = bc.archive_documents(archive, "docs")
    assert sorted(docs) == ["demo-1.0/docs/guide/usage.txt", "demo-1.0/docs/index.rst"]

    source = bc.Source("demo", "1.0", archive.name, bc.sha256_file(archive), "docs")
    raw, records = bc.collect_documents([source], cache=tmp_path, log=lambda _m: None)
    assert sorted(raw) == ["demo-1.0/docs/guide/usage.txt", "demo-1.0/docs/index.rst"]
    assert records == [{"requirement": "demo==1.0", "file": archive.name, "sha256": source.sha256,
                        "doc_dir": "docs", "files": 2}]


def test_fetch_checks_hash_offline_and_uses_pip(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    archive = make_sdist(tmp_path / "src" / "demo-1.0.tar.gz", "demo-1.0", {"docs/index.rst": "text"})
    good = bc.Source("demo", "1.0", "demo-1.0.tar.gz", bc.sha256_file(archive), "docs")
    cache = tmp_path / "cache"

    with pytest.raises(bc.BuildError, match="--offline"):
        bc.fetch_source(good, cache, offline=True, log=lambda _m: None)

    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        (dest / "demo-1.0.tar.gz").write_bytes(archive.read_bytes())
        return subprocess.CompletedProcess(command, 0, "Saved demo-1.0.tar.gz\n", "")

    monkeypatch.setattr(bc.subprocess, "run", fake_pip)
    assert bc.fetch_source(good, cache, log=lambda _m: None) == cache / "demo-1.0.tar.gz"
    assert calls and calls[0][1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--no-binary", ":all:", "demo==1.0"} <= set(calls[0])
    assert bc.fetch_source(good, cache, log=lambda _m: None)  # cached: pip is not asked again
    assert len(calls) == 1

    bad = bc.Source("demo", "1.0", "demo-1.0.tar.gz", "0" * 64, "docs")
    with pytest.raises(bc.BuildError, match="SHA-256"):
        bc.fetch_source(bad, cache, log=lambda _m: None)

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for other==2.0")

    monkeypatch.setattr(bc.subprocess, "run", failing_pip)
    other = bc.Source("other", "2.0", "other-2.0.tar.gz", "0" * 64, "docs")
    with pytest.raises(bc.BuildError, match="No matching distribution"):
        bc.fetch_source(other, cache, log=lambda _m: None)
