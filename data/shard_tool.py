"""Check, measure and read token-shard datasets (the published FineWeb format).

A dataset is a folder of ``fineweb_val_NNNNNN.bin`` and ``fineweb_train_NNNNNN.bin``
shards (256 int32 header: magic 20240520, version 1, token count; then uint16
tokens), each document being its tokens prefixed by BOS (id 1), no EOS. A document
may continue from one shard into the next, as in the published export, so only the
first shard of each split must start with BOS.

    python3 data/shard_tool.py validate data/datasets/fineweb10B_sp1024
    python3 data/shard_tool.py stats data/datasets/fineweb10B_sp1024 --tokenizer data/tokenizers/fineweb_1024_bpe.model
    python3 data/shard_tool.py decode data/datasets/sample_sp1024 --tokenizer data/tokenizers/sample_1024_bpe.model -n 3

``validate`` checks headers and sizes, contiguous numbering, token ids below the
vocabulary, BOS-separated documents (the first shard of each split starts with
BOS; no PAD/EOS ids), and, when a ``manifest.json`` listing the dataset sits in
the folder or one or two levels above it (the downloader puts it in ``data/datasets/``),
the manifest's shard counts, shard size, and val token and document counts. The
vocabulary size comes from ``--vocab-size``, ``--tokenizer``, the manifest, or a
folder name ending in ``sp<V>``, in that order. Each problem is one line naming the
file; the exit status is 1 when there is any.

``stats`` counts shards, tokens and documents exactly (all shards are read) and
measures bytes per token by decoding documents with the tokenizer: all of them
when a split holds at most ``--sample-tokens`` tokens, otherwise a seeded random
sample of whole documents. ``<unk>`` tokens count 0 bytes there, as in the
challenge's byte accounting; the figure from the scorer's byte tables (SPEC
section 5) is printed beside it and differs only in spaces next to ``<unk>``.

``decode`` prints documents of a split back as text (the first ``-n``, or a random
sample with ``--random``).

Everything runs on memory-mapped shards with numpy (chunked histograms, vectorised
BOS search), so 100M-token shards need no per-token Python loop.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

DATA_DIR = Path(__file__).resolve().parent
if str(DATA_DIR) not in sys.path:  # shard_io and the downloader live beside this script
    sys.path.insert(0, str(DATA_DIR))

from cached_challenge_fineweb import entry_value, manifest_datasets, manifest_tokenizers  # noqa: E402
from shard_io import BOS_ID, ShardError, read_header, read_shard  # noqa: E402

SPLITS = ("val", "train")
SHARD_RE = re.compile(r"^fineweb_(train|val)_(\d+)\.bin$")
DEFAULT_PAD_ID = 0
DEFAULT_EOS_ID = 2
HISTOGRAM_CHUNK = 1 << 23  # tokens per bincount call (64 MiB of int64 scratch)
DEFAULT_SAMPLE_TOKENS = 2_000_000
MANIFEST_NAME = "manifest.json"


class ToolError(Exception):
    """A failure with a one-line message naming the file or option and the fix."""


# --------------------------------------------------------------------------- shards


def list_shards(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    """The folder's shards per split as sorted (index, path) pairs."""
    found: dict[str, list[tuple[int, Path]]] = {split: [] for split in SPLITS}
    for path in Path(folder).iterdir():
        m = SHARD_RE.match(path.name)
        if m and path.is_file():
            found[m.group(1)].append((int(m.group(2)), path))
    return {split: sorted(items) for split, items in found.items()}


def token_histogram(tokens: np.ndarray) -> np.ndarray:
    """Count of every id 0..65535 in a uint16 array (chunked, so memory stays bounded)."""
    counts = np.zeros(1 << 16, dtype=np.int64)
    for start in range(0, len(tokens), HISTOGRAM_CHUNK):
        chunk = np.asarray(tokens[start:start + HISTOGRAM_CHUNK])
        counts += np.bincount(chunk, minlength=1 << 16)
    return counts


def first_at_or_above(tokens: np.ndarray, limit: int) -> int:
    """Position of the first token >= limit (chunked scan); -1 if none."""
    for start in range(0, len(tokens), HISTOGRAM_CHUNK):
        hits = np.flatnonzero(np.asarray(tokens[start:start + HISTOGRAM_CHUNK]) >= limit)
        if hits.size:
            return start + int(hits[0])
    return -1


@dataclass
class Document:
    shard: str  # file the document starts in
    offset: int  # token offset of its first token in that file
    tokens: np.ndarray  # BOS first (unless the split's first shard lacks one)
    spans_shards: bool = False


def iter_documents(paths: list[Path]) -> Iterator[Document]:
    """Documents of one split in order, stitched across shard boundaries."""
    carry: list[np.ndarray] = []
    carry_at: tuple[str, int] | None = None
    for path in paths:
        toks = read_shard(path)
        starts = np.flatnonzero(toks == BOS_ID)
        head_end = int(starts[0]) if starts.size else len(toks)
        if head_end:
            carry.append(np.asarray(toks[:head_end]))
            carry_at = carry_at or (path.name, 0)
        if not starts.size:
            continue
        if carry:
            yield Document(*carry_at, np.concatenate(carry), spans_shards=len(carry) > 1)
            carry, carry_at = [], None
        bounds = np.append(starts, len(toks))
        for a, b in zip(bounds[:-2].tolist(), bounds[1:-1].tolist()):
            yield Document(path.name, a, np.asarray(toks[a:b]))
        last = int(bounds[-2])
        carry, carry_at = [np.asarray(toks[last:])], (path.name, last)  # may continue in the next shard
    if carry:
        yield Document(*carry_at, np.concatenate(carry), spans_shards=len(carry) > 1)


def sample_documents(paths: list[Path], budget_tokens: int, rng: np.random.Generator) -> list[Document]:
    """A random sample of whole documents, about ``budget_tokens`` in all, spread over the shards
    in proportion to their sizes (documents cut by a shard boundary are not drawn)."""
    sizes = np.array([read_header(p) for p in paths], dtype=np.int64)
    total = int(sizes.sum())
    picked: list[Document] = []
    for path, size in zip(paths, sizes.tolist()):
        share = max(1, round(budget_tokens * size / max(total, 1)))
        toks = read_shard(path)
        starts = np.flatnonzero(toks == BOS_ID)
        if starts.size < 2:
            continue
        lengths = np.diff(starts)  # whole documents: from one BOS to the next
        order = rng.permutation(lengths.size)
        keep = order[: max(1, int(np.searchsorted(np.cumsum(lengths[order]), share, side="right")))]
        for i in np.sort(keep).tolist():
            a, b = int(starts[i]), int(starts[i + 1])
            picked.append(Document(path.name, a, np.asarray(toks[a:b])))
    return picked


def random_documents(paths: list[Path], n: int, rng: np.random.Generator) -> list[Document]:
    """Up to ``n`` distinct random documents, in stream order; shards drawn in proportion to their
    sizes, and a document running past its shard's end is completed from the following shards.
    Only the shards drawn are scanned, so a few documents of a large dataset come quickly."""
    sizes = np.array([read_header(p) for p in paths], dtype=np.float64)
    starts_of: dict[int, np.ndarray] = {}

    def starts(k: int) -> np.ndarray:  # BOS positions of shard k, plus its length
        if k not in starts_of:
            toks = read_shard(paths[k])
            starts_of[k] = np.append(np.flatnonzero(toks == BOS_ID), len(toks))
        return starts_of[k]

    chosen: set[tuple[int, int]] = set()
    for _ in range(20 * n):
        if len(chosen) == n:
            break
        k = int(rng.choice(len(paths), p=sizes / sizes.sum()))
        whole = starts(k).size - 1
        if whole:
            chosen.add((k, int(rng.integers(whole))))
    picked = []
    for k, i in sorted(chosen):
        a, b = int(starts(k)[i]), int(starts(k)[i + 1])
        pieces = [np.asarray(read_shard(paths[k])[a:b])]
        j = k
        while b == int(sizes[j]) and j + 1 < len(paths):  # reached the shard's end: the document may go on
            j += 1
            b = int(starts(j)[0])  # up to the next shard's first BOS (or through all of it)
            if b == 0:
                break
            pieces.append(np.asarray(read_shard(paths[j])[:b]))
        picked.append(Document(paths[k].name, a, np.concatenate(pieces), spans_shards=len(pieces) > 1))
    return picked


# --------------------------------------------------------------------------- tokenizer


def load_tokenizer(path: Path | str):
    """A SentencePiece processor, or ToolError naming the file and how to get one."""
    path = Path(path)
    if not path.is_file():
        raise ToolError(
            f"--tokenizer {path}: no such file (the published one is data/tokenizers/fineweb_1024_bpe.model: "
            "python3 data/cached_challenge_fineweb.py; the offline sample's is "
            "data/tokenizers/sample_1024_bpe.model: python3 data/build_sample.py)"
        )
    import sentencepiece as spm

    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise ToolError(f"--tokenizer {path}: not a SentencePiece model ({exc})") from None


def byte_tables(sp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scorer's per-id byte tables (SPEC section 5): base bytes, leading-space flag, boundary flag."""
    vocab = sp.vocab_size()
    base = np.zeros(vocab, dtype=np.int64)
    space = np.zeros(vocab, dtype=bool)
    boundary = np.zeros(vocab, dtype=bool)
    for i in range(vocab):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            boundary[i] = True
        elif sp.is_byte(i):
            base[i] = 1
        else:
            piece = sp.id_to_piece(i)
            if piece.startswith("\u2581"):
                space[i] = True
                piece = piece[1:]
            base[i] = len(piece.encode("utf-8"))
    return base, space, boundary


def table_bytes(docs: list[np.ndarray], tables) -> int:
    """Bytes of documents by the byte tables; each document starts after a boundary (its BOS)."""
    if not docs:
        return 0
    base, space, boundary = tables
    toks = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs])
    after_boundary = np.ones(toks.size, dtype=bool)
    after_boundary[1:] = boundary[toks[:-1]]
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    after_boundary[starts] = True  # a document never inherits the previous one's last token
    return int(base[toks].sum() + (space[toks] & ~after_boundary).sum())


def decoded_bytes(sp, docs: list[np.ndarray]) -> tuple[int, list[str]]:
    """UTF-8 bytes of the decoded documents with ``<unk>`` worth 0 bytes, and the texts."""
    if not docs:
        return 0, []
    texts = sp.decode([np.asarray(d).tolist() for d in docs])
    unk = sp.unk_id()
    unk_bytes = len(sp.decode([unk]).encode("utf-8")) if unk >= 0 else 0
    n_unk = sum(int(np.count_nonzero(np.asarray(d) == unk)) for d in docs) if unk >= 0 else 0
    return sum(len(t.encode("utf-8")) for t in texts) - n_unk * unk_bytes, texts


# --------------------------------------------------------------------------- manifest


def find_manifest_entry(folder: Path) -> tuple[Path, dict, dict] | None:
    """(manifest path, manifest, entry) for the dataset named like ``folder``, looking in the
    folder, its parent and its grandparent; None when no manifest there lists it."""
    folder = Path(folder).resolve()
    for place in (folder, folder.parent, folder.parent.parent):
        path = place / MANIFEST_NAME
        if not path.is_file():
            continue
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(manifest, dict):
            entry = manifest_datasets(manifest).get(folder.name)
            if entry is not None:
                return path, manifest, entry
    return None


def manifest_vocab(manifest: dict, entry: dict) -> int | None:
    for source in (entry, manifest_tokenizers(manifest).get(str(entry.get("tokenizer_name")), {})):
        try:
            if source.get("vocab_size") is not None:
                return int(source["vocab_size"])
        except (TypeError, ValueError):
            pass
    return None


def _int(value) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- validate


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def resolve_vocab(folder: Path, vocab_size: int | None, sp, found) -> tuple[int | None, str, list[str]]:
    """(vocabulary size, where it came from, problems)."""
    problems = []
    tok_vocab = sp.vocab_size() if sp is not None else None
    if vocab_size is not None and tok_vocab is not None and vocab_size != tok_vocab:
        problems.append(f"--vocab-size {vocab_size} disagrees with --tokenizer ({tok_vocab} pieces); give one of them")
    man_vocab = manifest_vocab(found[1], found[2]) if found else None
    if man_vocab is not None and (vocab_size or tok_vocab) not in (None, man_vocab):
        problems.append(
            f"{found[0]}: the manifest gives {folder.name} a vocabulary of {man_vocab}, "
            f"not {vocab_size or tok_vocab}: wrong --vocab-size/--tokenizer for this dataset?"
        )
    if vocab_size is not None:
        return vocab_size, "--vocab-size", problems
    if tok_vocab is not None:
        return tok_vocab, "--tokenizer", problems
    if man_vocab is not None:
        return man_vocab, f"{found[0]}", problems
    m = re.search(r"sp(\d+)$", Path(folder).resolve().name)
    if m:
        return int(m.group(1)), "the folder name", problems
    return None, "", problems


def validate(folder: Path | str, vocab_size: int | None = None, tokenizer: Path | str | None = None) -> Report:
    """Check a dataset folder; the report's ``problems`` are one line each, naming the file."""
    folder = Path(folder)
    report = Report()
    problems = report.problems
    if not folder.is_dir():
        problems.append(f"{folder}: no such directory (download with python3 data/cached_challenge_fineweb.py "
                        "or build the sample with python3 data/build_sample.py)")
        return report
    shards = list_shards(folder)
    if not any(shards.values()):
        problems.append(f"{folder}: no fineweb_val_NNNNNN.bin or fineweb_train_NNNNNN.bin shards "
                        "(download with python3 data/cached_challenge_fineweb.py or build python3 data/build_sample.py)")
        return report

    sp = load_tokenizer(tokenizer) if tokenizer is not None else None
    found = find_manifest_entry(folder)
    vocab, vocab_source, vocab_problems = resolve_vocab(folder, vocab_size, sp, found)
    problems += vocab_problems
    pad_id = sp.pad_id() if sp is not None else DEFAULT_PAD_ID
    eos_id = sp.eos_id() if sp is not None else DEFAULT_EOS_ID
    if vocab is None:
        report.lines.append("note: token ids not checked against a vocabulary (give --vocab-size or --tokenizer)")
    else:
        report.lines.append(f"vocabulary: {vocab} (from {vocab_source})")

    entry = found[2] if found else {}
    shard_size = _int(found[1].get("shard_size")) if found else None
    totals = {}
    for split in SPLITS:
        items = shards[split]
        if not items:
            problems.append(f"{folder}: no {split} shard (fineweb_{split}_000000.bin); the trainer needs one")
            continue
        indices = [i for i, _ in items]
        missing = sorted(set(range(max(indices) + 1)) - set(indices))
        if missing:
            names = ", ".join(f"fineweb_{split}_{i:06d}.bin" for i in missing[:3])
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            problems.append(f"{folder}: {split} shards must be numbered from 000000 without gaps; missing {names}{more}")
        listed = _int(entry_value(entry, (f"files_{split}",))) if found else None
        tokens = docs = 0
        for position, (index, path) in enumerate(items):
            try:
                n = read_header(path)
            except ShardError as exc:
                problems.append(str(exc))
                continue
            if n == 0:
                problems.append(f"{path}: holds no tokens")
                continue
            toks = read_shard(path)
            hist = token_histogram(toks)
            tokens += n
            docs += int(hist[BOS_ID])
            if vocab is not None and hist[vocab:].any():
                bad = int(hist[vocab:].sum())
                at = first_at_or_above(toks, vocab)
                largest = int(np.flatnonzero(hist)[-1])
                problems.append(
                    f"{path}: {bad:,} token id(s) >= vocabulary size {vocab} (first at token {at:,}: id {int(toks[at])}; "
                    f"largest {largest}); wrong vocabulary ({vocab_source}) or a damaged shard"
                )
            if position == 0 and int(toks[0]) != BOS_ID:
                problems.append(
                    f"{path}: starts with id {int(toks[0])}, not BOS ({BOS_ID}): every document must be "
                    "prefixed by BOS, so the first shard of a split starts with one"
                )
            specials = [(name, i, int(hist[i])) for name, i in (("PAD", pad_id), ("EOS", eos_id))
                        if 0 <= i < len(hist) and i != BOS_ID and hist[i]]
            for name, i, count in specials:
                problems.append(f"{path}: {count:,} {name} token(s) (id {i}); documents are separated by BOS only")
            if shard_size and n > shard_size:
                problems.append(f"{path}: {n:,} tokens, more than the manifest's shard_size of {shard_size:,}")
            elif shard_size and listed is not None and index < listed - 1 and n != shard_size:
                problems.append(f"{path}: {n:,} tokens; the manifest's shard_size is {shard_size:,} and only the "
                                f"last {split} shard may be shorter")
        totals[split] = (len(items), tokens, docs)
        report.lines.append(f"{split}: {len(items)} shard(s), {tokens:,} tokens, {docs:,} documents")

        if found and listed is not None:
            if split == "val" and len(items) != listed:
                problems.append(f"{folder}: {len(items)} val shard(s) but {found[0]} lists {listed}; "
                                "the val split must be complete (rerun the downloader)")
            if split == "train" and len(items) > listed:
                problems.append(f"{folder}: {len(items)} train shards but {found[0]} lists only {listed}")
            if len(items) == listed and not missing:
                for what, have in (("tokens", tokens), ("docs", docs)):
                    want = _int(entry_value(entry, (f"{what}_{split}",)))
                    if want is not None and want != have:
                        problems.append(f"{folder}: the {split} shards hold {have:,} {'documents' if what == 'docs' else what}; "
                                        f"{found[0]} says {want:,}")
            if split == "train":
                report.lines.append(f"train shards present: {len(items)} of {listed} in {found[0]}")
    if found is None:
        report.lines.append("note: no manifest.json listing this folder next to it; manifest counts not checked")
    return report


# --------------------------------------------------------------------------- stats


def split_stats(paths: list[Path], sp, tables, sample_tokens: int, seed: int) -> dict:
    """Exact counts over all shards of a split plus bytes/token measured on (a sample of) its documents."""
    vocab = sp.vocab_size()
    hist = np.zeros(1 << 16, dtype=np.int64)
    tokens = 0
    for path in paths:
        toks = read_shard(path)
        h = token_histogram(toks)
        if h[vocab:].any():
            raise ToolError(
                f"{path}: token ids up to {int(np.flatnonzero(h)[-1])} but the tokenizer has {vocab} pieces: "
                "wrong --tokenizer for this dataset? (see: shard_tool.py validate)"
            )
        hist += h
        tokens += len(toks)
    exact = tokens <= sample_tokens
    if exact:
        docs = [d.tokens for d in iter_documents(paths)]
    else:
        docs = [d.tokens for d in sample_documents(paths, sample_tokens, np.random.default_rng(seed))]
    sample_toks = int(sum(len(d) for d in docs))
    dec_bytes, _ = decoded_bytes(sp, docs)
    tab_bytes = table_bytes(docs, tables)
    unk = sp.unk_id()
    n_docs = int(hist[BOS_ID])
    return {
        "shards": len(paths),
        "tokens": tokens,
        "documents": n_docs,
        "mean_document_tokens": tokens / n_docs if n_docs else None,
        "unk_tokens": int(hist[unk]) if unk >= 0 else 0,
        "unk_rate": (int(hist[unk]) / tokens if tokens and unk >= 0 else 0.0),
        "sample_exact": exact,
        "sample_documents": len(docs),
        "sample_tokens": sample_toks,
        "sample_decoded_bytes": dec_bytes,
        "sample_table_bytes": tab_bytes,
        "bytes_per_token": dec_bytes / sample_toks if sample_toks else None,
        "bytes_per_token_tables": tab_bytes / sample_toks if sample_toks else None,
    }


def compute_stats(folder: Path | str, tokenizer: Path | str, *, splits=SPLITS,
                  sample_tokens: int = DEFAULT_SAMPLE_TOKENS, seed: int = 0) -> dict:
    """Per-split statistics of a dataset folder (see ``split_stats``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolError(f"{folder}: no such directory")
    sp = load_tokenizer(tokenizer)
    tables = byte_tables(sp)
    shards = list_shards(folder)
    result = {}
    for split in splits:
        paths = [p for _, p in shards[split]]
        if paths:
            try:
                result[split] = split_stats(paths, sp, tables, sample_tokens, seed)
            except ShardError as exc:
                raise ToolError(f"{exc} (see: shard_tool.py validate {folder})") from None
    if not result:
        raise ToolError(f"{folder}: no {' or '.join(splits)} shards (fineweb_<split>_NNNNNN.bin)")
    return result


def format_stats(folder: Path, tokenizer: Path, stats: dict) -> list[str]:
    lines = [f"dataset {folder} (tokenizer {tokenizer})"]
    header = (f"{'split':<6}{'shards':>7}{'tokens':>16}{'documents':>12}{'tokens/doc':>12}"
              f"{'bytes/token':>13}{'(tables)':>10}{'<unk>':>9}  measured on")
    lines.append(header)
    for split, s in stats.items():
        mean = f"{s['mean_document_tokens']:.1f}" if s["mean_document_tokens"] else "-"
        bpt = f"{s['bytes_per_token']:.4f}" if s["bytes_per_token"] is not None else "-"
        tab = f"{s['bytes_per_token_tables']:.4f}" if s["bytes_per_token_tables"] is not None else "-"
        how = "all" if s["sample_exact"] else "a sample of"
        lines.append(
            f"{split:<6}{s['shards']:>7}{s['tokens']:>16,}{s['documents']:>12,}{mean:>12}{bpt:>13}{tab:>10}"
            f"{s['unk_rate']:>9.3%}  {how} {s['sample_documents']:,} docs / {s['sample_tokens']:,} tokens"
        )
    lines.append("bytes/token: UTF-8 bytes of the decoded documents per stored token (BOS included), <unk> = 0 "
                 "bytes; (tables): the scorer's byte tables, which also drop a space next to <unk>.")
    return lines


# --------------------------------------------------------------------------- decode


def pick_documents(folder: Path | str, split: str, n: int, *, randomize: bool = False,
                   seed: int = 0) -> list[Document]:
    """The first ``n`` documents of a split, or ``n`` random whole ones."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolError(f"{folder}: no such directory")
    paths = [p for _, p in list_shards(folder)[split]]
    if not paths:
        raise ToolError(f"{folder}: no {split} shards (fineweb_{split}_NNNNNN.bin); try --split "
                        f"{'train' if split == 'val' else 'val'}")
    try:
        if not randomize:
            picked = []
            for doc in iter_documents(paths):
                picked.append(doc)
                if len(picked) == n:
                    break
            return picked
        return random_documents(paths, n, np.random.default_rng(seed))
    except ShardError as exc:
        raise ToolError(f"{exc} (see: shard_tool.py validate {folder})") from None


def decode_documents(sp, docs: list[Document]) -> list[str]:
    vocab = sp.vocab_size()
    for doc in docs:
        if doc.tokens.size and int(doc.tokens.max()) >= vocab:
            raise ToolError(f"{doc.shard}: token id {int(doc.tokens.max())} at or above the tokenizer's "
                            f"{vocab} pieces: wrong --tokenizer for this dataset?")
    return sp.decode([d.tokens.tolist() for d in docs]) if docs else []


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shard_tool.py",
        description="Check, measure and read token-shard datasets (fineweb_{val,train}_NNNNNN.bin).",
        epilog="Exit status: 0 fine; 1 problems found or a failure (one line each, naming the file); 2 bad usage.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{validate,stats,decode}")

    v = sub.add_parser("validate", help="check headers, sizes, token ids, BOS separation, manifest counts",
                       description="Check every shard of DIR: header and size, numbering, token ids below the "
                                   "vocabulary, BOS-separated documents, and the counts of a manifest.json in DIR "
                                   "or up to two levels above that lists it. One line per problem; exit 1 if any.")
    v.add_argument("dir", type=Path, metavar="DIR", help="dataset folder, e.g. data/datasets/fineweb10B_sp1024")
    v.add_argument("--vocab-size", type=int, default=None,
                   help="vocabulary size the ids must stay below (default: from --tokenizer, the manifest, "
                        "or a folder name ending in sp<V>)")
    v.add_argument("--tokenizer", type=Path, default=None, help="SentencePiece model giving the vocabulary size")

    s = sub.add_parser("stats", help="shards, tokens, documents, mean document length, bytes per token",
                       description="Count shards, tokens and documents per split (exactly) and measure bytes per "
                                   "token by decoding documents with the tokenizer (all of them up to "
                                   "--sample-tokens per split, else a seeded random sample).")
    s.add_argument("dir", type=Path, metavar="DIR", help="dataset folder")
    s.add_argument("--tokenizer", type=Path, required=True, metavar="M", help="SentencePiece model of the dataset")
    s.add_argument("--split", choices=SPLITS, default=None, help="only this split (default: both)")
    s.add_argument("--sample-tokens", type=int, default=DEFAULT_SAMPLE_TOKENS,
                   help=f"decode every document of a split up to this many tokens, else sample about this many "
                        f"(default {DEFAULT_SAMPLE_TOKENS:,})")
    s.add_argument("--seed", type=int, default=0, help="seed of the document sample (default 0)")
    s.add_argument("--json", action="store_true", help="print the statistics as JSON")

    d = sub.add_parser("decode", help="print documents back as text",
                       description="Decode documents of one split with the tokenizer and print them, each under a "
                                   "header line naming its shard, offset and token count.")
    d.add_argument("dir", type=Path, metavar="DIR", help="dataset folder")
    d.add_argument("--tokenizer", type=Path, required=True, metavar="M", help="SentencePiece model of the dataset")
    d.add_argument("-n", type=int, default=3, help="number of documents (default 3)")
    d.add_argument("--split", choices=SPLITS, default="val", help="split to read (default val)")
    d.add_argument("--random", action="store_true", help="a random sample instead of the first documents")
    d.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    d.add_argument("--max-chars", type=int, default=2000,
                   help="cut each printed document after this many characters (0: no limit; default 2000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            if args.vocab_size is not None and args.vocab_size <= 0:
                parser.error("--vocab-size must be positive")
            report = validate(args.dir, args.vocab_size, args.tokenizer)
            for line in report.lines:
                print(line)
            for problem in report.problems:
                print(problem, file=sys.stderr)
            if report.problems:
                print(f"FAILED: {len(report.problems)} problem(s) in {args.dir}", file=sys.stderr)
                return 1
            print(f"OK: {args.dir}")
            return 0
        if args.command == "stats":
            if args.sample_tokens <= 0:
                parser.error("--sample-tokens must be positive")
            splits = (args.split,) if args.split else SPLITS
            stats = compute_stats(args.dir, args.tokenizer, splits=splits, sample_tokens=args.sample_tokens,
                                  seed=args.seed)
            if args.json:
                print(json.dumps(stats, indent=2))
            else:
                print("\n".join(format_stats(args.dir, args.tokenizer, stats)))
            return 0
        if args.n <= 0:
            parser.error("-n must be positive")
        sp = load_tokenizer(args.tokenizer)
        docs = pick_documents(args.dir, args.split, args.n, randomize=args.random, seed=args.seed)
        texts = decode_documents(sp, docs)
        unk = sp.unk_id()
        for i, (doc, text) in enumerate(zip(docs, texts)):
            n_unk = int(np.count_nonzero(doc.tokens == unk)) if unk >= 0 else 0
            spans = ", continues into the next shard" if doc.spans_shards else ""
            cut = ""
            if args.max_chars and len(text) > args.max_chars:
                text, cut = text[: args.max_chars], f" (cut at {args.max_chars} characters)"
            print(f"--- {args.split} document {i}: {doc.shard} token {doc.offset:,}, {doc.tokens.size:,} tokens, "
                  f"{n_unk} <unk>{spans}{cut} ---")
            print(text)
        if len(docs) < args.n:
            print(f"(the {args.split} split holds only {len(docs)} document(s))")
        return 0
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
