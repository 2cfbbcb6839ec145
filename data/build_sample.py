"""Build a small real-text sample dataset offline, in the published shard format.

The published sp1024 data has to be downloaded; this script makes a stand-in that
a fresh CPU machine (or the test suite) can build in a few seconds with nothing
but Python, numpy and sentencepiece:

* Text. By default, text that every Python install ships: each documentation
  topic in ``pydoc_data.topics`` (sorted by topic name) is one document, followed
  by one document per standard-library module in ``STDLIB_MODULES`` (in that
  order) holding the docstrings of the module and of its public classes,
  functions and methods. The text depends only on the Python version.
  ``--input`` replaces it with your own UTF-8 text files, one document per
  paragraph block (blocks are separated by blank lines).
* Tokenizer. A SentencePiece BPE model trained on the training documents with
  the settings of the published ``fineweb_1024_bpe.model`` (nmt_nfkc
  normalisation, no dummy prefix, no byte fallback, split digits, character
  coverage 0.999, ids pad 0 / bos 1 / eos 2 / unk 3), written to
  ``<tokenizer-dir>/sample_<V>_bpe.model`` and ``.vocab``. ``--tokenizer`` uses
  an existing model (for instance the published one) instead.
* Shards. Every document is encoded and prefixed with BOS (id 1), no EOS, and
  the documents are concatenated. The last ``--val-fraction`` of the documents
  form the validation split, written as ``fineweb_val_000000.bin``; the others
  are written as ``fineweb_train_000000.bin``, ``fineweb_train_000001.bin``, ...
  of at most ``--shard-tokens`` tokens each (a document may continue into the
  next shard, as in the published export). The names match the published export,
  so the trainer's default file patterns find them.

Usage: ``python data/build_sample.py`` (see ``--help``). From Python, with
``data/`` on ``sys.path``::

    from build_sample import build_sample, existing_shards
    if not existing_shards(out_dir):
        build_sample(out_dir, tokenizer_dir)
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sentencepiece as spm

from shard_io import BOS_ID, DataError, load_tokenizer, write_shard

DATA_DIR = Path(__file__).resolve().parent
DEFAULT_TOKENIZER_DIR = DATA_DIR / "tokenizers"
DEFAULT_DATASETS_DIR = DATA_DIR / "datasets"
DEFAULT_VOCAB_SIZE = 1024
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SHARD_TOKENS = 100_000

TRAIN_SHARD_NAME = "fineweb_train_{:06d}.bin"
VAL_SHARD_NAME = "fineweb_val_{:06d}.bin"
SHARD_GLOB = "fineweb_*.bin"

# Standard-library modules whose docstrings extend the default text (pure Python
# or always built in; a module missing from an unusual build is skipped).
STDLIB_MODULES = (
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "cmd", "codecs",
    "collections", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "doctest", "email.message", "enum", "fractions",
    "ftplib", "functools", "getopt", "gettext", "glob", "heapq", "hmac",
    "html.parser", "http.client", "http.cookiejar", "imaplib", "inspect",
    "ipaddress", "itertools", "json", "locale", "logging", "mailbox", "math",
    "operator", "optparse", "os", "pathlib", "pickle", "pprint", "queue",
    "random", "re", "sched", "secrets", "shelve", "shlex", "shutil", "smtplib",
    "socket", "statistics", "string", "struct", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback",
    "types", "typing", "unittest.case", "unittest.mock", "urllib.parse",
    "urllib.request", "uuid", "warnings", "weakref", "zipfile",
)

# The training settings recorded in the published fineweb_1024_bpe.model.
# (It also records hard_vocab_limit=false; the default, true, learns the same
# pieces whenever the vocabulary is reachable and otherwise fails instead of
# silently returning a smaller vocabulary, which is what we want here.)
SENTENCEPIECE_OPTIONS = dict(
    model_type="bpe",
    normalization_rule_name="nmt_nfkc",
    add_dummy_prefix=False,
    byte_fallback=False,
    split_digits=True,
    character_coverage=0.999,
    pad_id=0,
    bos_id=1,
    eos_id=2,
    unk_id=3,
    num_threads=1,  # BPE training is deterministic anyway; one thread makes it obvious
    minloglevel=2,  # errors only; failures still raise RuntimeError
)


class BuildError(DataError):
    """A problem with the inputs or options; the message says what to change."""


class OutputExistsError(BuildError):
    """The output already holds shards (or a different tokenizer) and force is off."""

    exit_code = 2


# --------------------------------------------------------------------------- text


def _own_docstring(obj) -> str | None:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    return inspect.cleandoc(doc).strip()


def module_docstrings(name: str) -> str:
    """One document: the docstrings of a module and of its public classes,
    functions and methods, each under its qualified name, in name order."""
    module = importlib.import_module(name)
    sections = []
    doc = _own_docstring(module)
    if doc:
        sections.append(f"{name}\n\n{doc}")
    for attr, obj in sorted(vars(module).items(), key=lambda item: item[0]):
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        doc = _own_docstring(obj)
        if doc:
            sections.append(f"{name}.{attr}\n\n{doc}")
        if inspect.isclass(obj):
            for member, value in sorted(vars(obj).items(), key=lambda item: item[0]):
                if member.startswith("_"):
                    continue
                if not (inspect.isroutine(value) or isinstance(value, (property, staticmethod, classmethod))):
                    continue
                doc = _own_docstring(value)
                if doc:
                    sections.append(f"{name}.{attr}.{member}\n\n{doc}")
    return "\n\n".join(sections)


def default_documents() -> list[str]:
    """The default text: pydoc topics (sorted by name), then STDLIB_MODULES docstrings."""
    from pydoc_data.topics import topics

    documents = [topics[key].strip() for key in sorted(topics)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. typing.io's deprecation warning
        for name in STDLIB_MODULES:
            try:
                documents.append(module_docstrings(name))
            except ImportError:
                continue
    return [doc for doc in documents if doc]


def read_documents(paths) -> list[str]:
    """Read UTF-8 text files; every blank-line-separated block is one document."""
    documents = []
    for path in map(Path, paths):
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise BuildError(f"--input {path}: {what}; give one or more UTF-8 text files")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise BuildError(f"--input {path}: not UTF-8 text ({err}); convert it to UTF-8") from None
        documents.extend(block.strip() for block in re.split(r"\n[ \t]*\n", text) if block.strip())
    if not documents:
        names = ", ".join(str(p) for p in paths)
        raise BuildError(f"--input {names}: no text found (the files are empty or only whitespace)")
    return documents


def split_point(n_documents: int, val_fraction: float) -> int:
    """Number of training documents: the last round(n * val_fraction) (at least 1) are validation."""
    n_val = max(1, round(n_documents * val_fraction))
    if n_documents - n_val < 1:
        raise BuildError(
            f"only {n_documents} document(s): a train and a validation split need at least 2; "
            "give more text (with --input, separate documents by blank lines)"
        )
    return n_documents - n_val


# ---------------------------------------------------------------------- tokenizer


def tokenizer_path(tokenizer_dir, vocab_size: int) -> Path:
    return Path(tokenizer_dir) / f"sample_{vocab_size}_bpe.model"


def _training_sentences(documents):
    # SentencePiece learns from "sentences" (it skips ones over 4192 bytes), so
    # feed it lines, as it would read them from a text file.
    for document in documents:
        for line in document.splitlines():
            if line.strip():
                yield line


def _explain_training_error(err: RuntimeError, vocab_size: int) -> BuildError:
    message = str(err)
    too_high = re.search(r"Vocabulary size too high.*<= (\d+)", message)
    if too_high:
        return BuildError(
            f"--vocab-size {vocab_size} is too large for this text: SentencePiece can learn at most "
            f"{too_high.group(1)} pieces from the training documents; use --vocab-size "
            f"{too_high.group(1)} or less, or give more text"
        )
    too_small = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", message)
    if too_small:
        return BuildError(
            f"--vocab-size {vocab_size} is too small: this text needs at least {too_small.group(2)} "
            "(one piece per character it uses, plus the 4 special tokens); use a larger --vocab-size"
        )
    return BuildError(f"SentencePiece could not train a {vocab_size}-piece tokenizer: {message}")


def train_tokenizer(documents, model_file, vocab_size: int) -> Path:
    """Train the sample BPE tokenizer, writing model_file and the matching .vocab."""
    model_file = Path(model_file)
    created = not model_file.parent.exists()
    model_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_training_sentences(documents),
            model_prefix=str(model_file.with_suffix("")),
            vocab_size=vocab_size,
            **SENTENCEPIECE_OPTIONS,
        )
    except RuntimeError as err:
        if created:
            model_file.parent.rmdir()  # SentencePiece fails before writing anything
        raise _explain_training_error(err, vocab_size) from None
    return model_file


def _same_pieces(a: spm.SentencePieceProcessor, b: spm.SentencePieceProcessor) -> bool:
    return a.vocab_size() == b.vocab_size() and all(
        a.id_to_piece(i) == b.id_to_piece(i) and a.get_score(i) == b.get_score(i)
        for i in range(a.vocab_size())
    )


def _prepare_tokenizer(documents, tokenizer_dir, vocab_size: int, force: bool) -> tuple[Path, bool]:
    """Train the tokenizer into tokenizer_dir; return (path, whether it was (re)written).

    An existing model with the same pieces is kept as it is; a different one is
    only replaced with force, since datasets built with it would no longer decode.
    """
    model_file = tokenizer_path(tokenizer_dir, vocab_size)
    if model_file.exists() and not force:
        with tempfile.TemporaryDirectory() as scratch:
            fresh = load_tokenizer(train_tokenizer(documents, Path(scratch) / model_file.name, vocab_size))
            try:
                existing = spm.SentencePieceProcessor(model_file=str(model_file))
            except (OSError, RuntimeError):
                existing = None
            if existing is not None and _same_pieces(fresh, existing):
                return model_file, False
        raise OutputExistsError(
            f"{model_file} already exists and differs from the tokenizer this text gives; "
            "datasets encoded with it would no longer decode. Use --force to replace it, "
            "or another --tokenizer-dir"
        )
    return train_tokenizer(documents, model_file, vocab_size), True


# ------------------------------------------------------------------------- shards


def existing_shards(out_dir) -> list[Path]:
    """The shard files (fineweb_*.bin) already in out_dir, sorted; empty if none."""
    out_dir = Path(out_dir)
    return sorted(out_dir.glob(SHARD_GLOB)) if out_dir.is_dir() else []


def check_build_options(out_dir: Path, val_fraction: float, shard_tokens: int, force: bool,
                        elsewhere: str = "another --out") -> list[Path]:
    """Refuse a bad split or shard size, and an out_dir already holding shards unless force (nothing is written);
    returns those shards, to be replaced."""
    if not 0 < val_fraction < 1:
        raise BuildError(f"--val-fraction {val_fraction}: must be between 0 and 1 (exclusive)")
    if shard_tokens < 1:
        raise BuildError(f"--shard-tokens {shard_tokens}: must be a positive number of tokens")
    old_shards = existing_shards(out_dir)
    if old_shards and not force:
        raise OutputExistsError(
            f"{out_dir} already holds {len(old_shards)} shard file(s) ({old_shards[0].name}, ...); "
            f"nothing was changed. Use --force to rebuild it, or choose {elsewhere}"
        )
    return old_shards


def encode_documents(sp: spm.SentencePieceProcessor, documents) -> np.ndarray:
    """Concatenate the documents' tokens, each document prefixed with BOS."""
    encoded = sp.encode(list(documents))
    pieces = []
    for ids in encoded:
        pieces.append(np.array([BOS_ID], dtype=np.int64))
        pieces.append(np.asarray(ids, dtype=np.int64))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def write_splits(out_dir: Path, train_tokens: np.ndarray, val_tokens: np.ndarray, shard_tokens: int,
                 old_shards: list[Path]) -> tuple[list[Path], Path]:
    """Replace old_shards (check_build_options's list) with the training tokens in shards of at most shard_tokens
    (at least one shard) and the validation tokens in one; return (the training shards, the validation shard)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in old_shards:
        path.unlink()
    train_shards = [write_shard(out_dir / TRAIN_SHARD_NAME.format(i), train_tokens[start:start + shard_tokens])
                    for i, start in enumerate(range(0, max(1, train_tokens.size), shard_tokens))]
    return train_shards, write_shard(out_dir / VAL_SHARD_NAME.format(0), val_tokens)


def build_sample(
    out_dir,
    tokenizer_dir,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    inputs=None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    tokenizer_model=None,
    force: bool = False,
) -> dict:
    """Build the sample dataset into out_dir; return its paths and counts.

    inputs: text files replacing the default text (one document per blank-line
    separated block). tokenizer_model: an existing .model to use instead of
    training one into tokenizer_dir (vocab_size is then ignored). Raises
    OutputExistsError if out_dir already holds shards and force is off, and
    BuildError for bad inputs or options; nothing is written in either case.
    """
    out_dir = Path(out_dir)
    old_shards = check_build_options(out_dir, val_fraction, shard_tokens, force)

    documents = read_documents(inputs) if inputs else default_documents()
    n_train = split_point(len(documents), val_fraction)
    train_documents, val_documents = documents[:n_train], documents[n_train:]

    if tokenizer_model is not None:
        model_file, trained = Path(tokenizer_model), False
        sp = load_tokenizer(model_file)
    else:
        model_file, trained = _prepare_tokenizer(train_documents, tokenizer_dir, vocab_size, force)
        sp = load_tokenizer(model_file)

    train_tokens = encode_documents(sp, train_documents)
    val_tokens = encode_documents(sp, val_documents)
    train_shards, val_shard = write_splits(out_dir, train_tokens, val_tokens, shard_tokens, old_shards)

    return {
        "out_dir": out_dir,
        "tokenizer": model_file,
        "tokenizer_trained": trained,
        "vocab_size": sp.vocab_size(),
        "train_shards": train_shards,
        "val_shard": val_shard,
        "train_documents": len(train_documents),
        "val_documents": len(val_documents),
        "train_tokens": int(train_tokens.size),
        "val_tokens": int(val_tokens.size),
    }


# ---------------------------------------------------------------------------- CLI


def default_out_dir(vocab_size: int) -> Path:
    return DEFAULT_DATASETS_DIR / f"sample_sp{vocab_size}"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Build a small real-text sample dataset offline: train (or load) a SentencePiece BPE "
            "tokenizer like the published sp1024 one and write train/val token shards in the "
            "published format (fineweb_train_NNNNNN.bin, fineweb_val_000000.bin; every document "
            "prefixed with BOS, no EOS)."
        ),
        epilog=(
            "Exit status: 0 built; 1 bad input or option; 2 the output already exists "
            "(nothing changed; see --force)."
        ),
    )
    parser.add_argument(
        "--input", nargs="+", metavar="FILE", type=Path,
        help="UTF-8 text files to use instead of the default text; each block of text separated "
        "by blank lines is one document (default: Python's pydoc topics, one document per topic, "
        "then the docstrings of a fixed list of standard-library modules, one document per module)",
    )
    parser.add_argument(
        "--vocab-size", type=int, metavar="V",
        help=f"vocabulary size of the tokenizer to train (default {DEFAULT_VOCAB_SIZE}); "
        "with --tokenizer, the model's own size is used",
    )
    parser.add_argument(
        "--tokenizer", type=Path, metavar="PATH",
        help="use this existing SentencePiece .model (e.g. the published fineweb_1024_bpe.model) "
        "instead of training one; the dataset vocabulary is then that model's",
    )
    parser.add_argument(
        "--tokenizer-dir", type=Path, default=DEFAULT_TOKENIZER_DIR, metavar="DIR",
        help="where the trained tokenizer goes, as sample_<V>_bpe.model and .vocab "
        f"(default {DEFAULT_TOKENIZER_DIR})",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR",
        help=f"output directory for the shards (default {DEFAULT_DATASETS_DIR}/sample_sp<V>)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, metavar="F",
        help="fraction of the documents, taken from the end, that form the validation split "
        f"(default {DEFAULT_VAL_FRACTION}; at least one document)",
    )
    parser.add_argument(
        "--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, metavar="N",
        help=f"maximum tokens per training shard (default {DEFAULT_SHARD_TOKENS:_})",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="rebuild even if the output directory already holds shards (they are replaced) "
        "and replace a different existing tokenizer of the same name",
    )
    return parser.parse_args(argv)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        if args.tokenizer is not None:
            sp = load_tokenizer(args.tokenizer)
            if args.vocab_size is not None and args.vocab_size != sp.vocab_size():
                raise BuildError(
                    f"--vocab-size {args.vocab_size} contradicts --tokenizer {args.tokenizer}, "
                    f"which has {sp.vocab_size()} pieces; drop --vocab-size"
                )
            vocab_size = sp.vocab_size()
        else:
            vocab_size = DEFAULT_VOCAB_SIZE if args.vocab_size is None else args.vocab_size
        info = build_sample(
            out_dir=args.out if args.out is not None else default_out_dir(vocab_size),
            tokenizer_dir=args.tokenizer_dir,
            vocab_size=vocab_size,
            inputs=args.input,
            val_fraction=args.val_fraction,
            shard_tokens=args.shard_tokens,
            tokenizer_model=args.tokenizer,
            force=args.force,
        )
    except DataError as err:
        print(f"build_sample: error: {err}", file=sys.stderr)
        return err.exit_code
    elapsed = time.perf_counter() - started

    how = "trained" if info["tokenizer_trained"] else "existing"
    n_shards = len(info["train_shards"])
    print(f"sample dataset: {_display(info['out_dir'])}")
    print(f"  tokenizer: {_display(info['tokenizer'])} ({how}, vocab {info['vocab_size']})")
    print(
        f"  train: {info['train_documents']:,} documents, {info['train_tokens']:,} tokens "
        f"in {n_shards} shard{'s' if n_shards != 1 else ''}"
    )
    print(f"  val:   {info['val_documents']:,} documents, {info['val_tokens']:,} tokens in 1 shard")
    print(f"  built in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
