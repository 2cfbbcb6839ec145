"""Check, measure and read token-shard datasets (the published FineWeb format).

    python3 data/shard_tool.py validate data/datasets/fineweb10B_sp1024
    python3 data/shard_tool.py stats data/datasets/fineweb10B_sp1024 --tokenizer data/tokenizers/fineweb_1024_bpe.model
    python3 data/shard_tool.py decode data/datasets/sample_sp1024 --tokenizer data/tokenizers/sample_1024_bpe.model -n 3

A dataset is a folder of ``fineweb_val_NNNNNN.bin`` and ``fineweb_train_NNNNNN.bin`` shards, each document
its tokens prefixed by BOS (id 1), no EOS; a document may continue from one shard into the next, so only
the first shard of each split must start with BOS.

``validate`` checks headers and sizes, numbering without gaps, token ids below the vocabulary (from
``--vocab-size``, ``--tokenizer``, the manifest, or a folder name ending in ``sp<V>``, in that order),
BOS-separated documents (no PAD/EOS ids), and, when a ``manifest.json`` listing the folder sits in it or
one or two levels above (the downloader's ``data/datasets/manifest.json``), the manifest's shard counts,
``shard_size`` and val token and document counts. One line per problem naming the file; exit 1 if any.

``stats`` counts shards, tokens and documents exactly and measures bytes per token on the documents
(all of them up to ``--sample-tokens`` per split, else a seeded random sample of whole documents) by
the scorer's byte rule, counted by train_gpt.py's own ``build_byte_luts`` and ``stream_bytes``. Beside it, the UTF-8 bytes of the decoded text (<unk> = 0
bytes) as an independent check. ``decode`` prints documents back as text.
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
for folder in (DATA_DIR, DATA_DIR.parent):  # shard_io and the downloader beside this script, train_gpt.py above it
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from cached_challenge_fineweb import DownloadError, dataset_entry  # noqa: E402
from shard_io import BOS_ID, DataError, ShardError, load_tokenizer, read_header, read_shard  # noqa: E402
from train_gpt import ByteTables, build_byte_luts, stream_bytes  # noqa: E402  the scorer's byte rule, one copy

SPLITS = ("val", "train")
SHARD_RE = re.compile(r"^fineweb_(train|val)_(\d+)\.bin$")
CHUNK = 1 << 23  # tokens per bincount call (64 MiB of int64 scratch)
DEFAULT_SAMPLE_TOKENS = 2_000_000


class ToolError(DataError):
    """A failure with a one-line message naming the file or option and the fix."""


# --------------------------------------------------------------------------- shards and documents


def list_shards(folder: Path) -> dict[str, list[tuple[int, Path]]]:
    """The folder's shards per split as sorted (index, path) pairs."""
    found: dict[str, list[tuple[int, Path]]] = {split: [] for split in SPLITS}
    for path in Path(folder).iterdir():
        m = SHARD_RE.match(path.name)
        if m and path.is_file():
            found[m.group(1)].append((int(m.group(2)), path))
    return {split: sorted(items) for split, items in found.items()}


def token_histogram(tokens: np.ndarray) -> np.ndarray:
    """Count of every id 0..65535 (chunked, so memory stays bounded on 100M-token shards)."""
    counts = np.zeros(1 << 16, dtype=np.int64)
    for start in range(0, len(tokens), CHUNK):
        counts += np.bincount(np.asarray(tokens[start:start + CHUNK]), minlength=1 << 16)
    return counts


@dataclass
class Document:
    shard: str  # file the document starts in
    offset: int  # position of its first token in that file
    tokens: np.ndarray  # BOS first
    spans_shards: bool = False


def iter_documents(paths: list[Path]) -> Iterator[Document]:
    """The documents of one split in order, stitched across shard boundaries."""
    carry: list[np.ndarray] = []
    carry_at = ("", 0)
    for path in paths:
        toks = read_shard(path)
        starts = np.flatnonzero(toks == BOS_ID)
        head_end = int(starts[0]) if starts.size else len(toks)
        if head_end:  # the previous document goes on here (or the split lacks its first BOS)
            carry_at = carry_at if carry else (path.name, 0)
            carry.append(np.asarray(toks[:head_end]))
        if not starts.size:
            continue
        if carry:
            yield Document(*carry_at, np.concatenate(carry), spans_shards=len(carry) > 1)
        bounds = starts.tolist() + [len(toks)]
        for a, b in zip(bounds[:-2], bounds[1:-1]):
            yield Document(path.name, a, np.asarray(toks[a:b]))
        carry, carry_at = [np.asarray(toks[bounds[-2]:])], (path.name, bounds[-2])
    if carry:
        yield Document(*carry_at, np.concatenate(carry), spans_shards=len(carry) > 1)


def sample_documents(paths: list[Path], rng: np.random.Generator, *, n: int | None = None,
                     tokens: int | None = None) -> list[Document]:
    """Whole documents (a BOS to the next one in the same shard) drawn at random without replacement, in
    stream order: ``n`` of them (at most; shards drawn in proportion to their sizes, only those read), or
    about ``tokens`` tokens spread over the shards in proportion to their sizes."""
    sizes = np.array([read_header(p) for p in paths], dtype=np.float64)
    if sizes.sum() == 0:
        return []
    weights = sizes / sizes.sum()
    wants = rng.multinomial(n, weights) if n is not None else np.maximum(1, np.round(tokens * weights))
    picked = []
    for path, want in zip(paths, wants.tolist()):
        if not want:
            continue
        toks = read_shard(path)
        starts = np.flatnonzero(toks == BOS_ID)
        lengths = np.diff(starts)
        order = rng.permutation(lengths.size)
        take = want if n is not None else max(1, int(np.searchsorted(np.cumsum(lengths[order]), want, side="right")))
        for i in np.sort(order[:take]).tolist():
            a, b = int(starts[i]), int(starts[i + 1])
            picked.append(Document(path.name, a, np.asarray(toks[a:b])))
    return picked


# --------------------------------------------------------------------------- tokenizer and bytes


def decoded_bytes(sp, docs: list[np.ndarray]) -> int:
    """UTF-8 bytes of the decoded documents, each <unk> worth 0 bytes (as in the challenge's counting)."""
    if not docs:
        return 0
    total = sum(len(t.encode("utf-8")) for t in sp.decode([np.asarray(d).tolist() for d in docs]))
    unk = sp.unk_id()
    if unk < 0:
        return total
    n_unk = sum(int(np.count_nonzero(np.asarray(d) == unk)) for d in docs)
    return total - n_unk * len(sp.decode([unk]).encode("utf-8"))


# --------------------------------------------------------------------------- validate


def find_manifest(folder: Path):
    """(manifest path, manifest, its entry for this folder) from the folder or up to two levels above; None
    when no manifest there lists it. A manifest off the published layout raises DownloadError."""
    folder = Path(folder).resolve()
    for place in (folder, folder.parent, folder.parent.parent):
        path = place / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(manifest, dict) or "datasets" not in manifest:
            continue  # some other file called manifest.json
        entry = dataset_entry(manifest, folder.name, str(path))
        if entry is not None:
            return path, manifest, entry
    return None


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def validate(folder: Path | str, vocab_size: int | None = None, tokenizer: Path | str | None = None) -> Report:
    """Check a dataset folder; the report's ``problems`` are one line each, naming the file."""
    folder, report = Path(folder), Report()
    problems = report.problems
    get_data = "download with python3 data/cached_challenge_fineweb.py or build python3 data/build_sample.py"
    if not folder.is_dir():
        problems.append(f"{folder}: no such directory ({get_data})")
        return report
    shards = list_shards(folder)
    if not any(shards.values()):
        problems.append(f"{folder}: no fineweb_val_NNNNNN.bin or fineweb_train_NNNNNN.bin shards ({get_data})")
        return report
    sp = load_tokenizer(tokenizer) if tokenizer is not None else None
    try:
        found = find_manifest(folder)
    except DownloadError as exc:
        problems.append(str(exc))
        found = None
    where, manifest, entry = found or (None, {}, None)
    named = re.search(r"sp(\d+)$", folder.resolve().name)
    candidates = [(vocab_size, "--vocab-size"), (sp.vocab_size() if sp else None, "--tokenizer"),
                  (entry.vocab_size if entry else None, str(where)), (int(named.group(1)) if named else None, "the folder name")]
    vocab, source = next(((v, s) for v, s in candidates if v), (None, None))
    report.lines.append(f"vocabulary: {vocab} (from {source})" if vocab else
                        "note: token ids not checked against a vocabulary (give --vocab-size or --tokenizer)")
    specials = {"PAD": sp.pad_id() if sp else 0, "EOS": sp.eos_id() if sp else 2}
    shard_size = manifest.get("shard_size")

    for split in SPLITS:
        items = shards[split]
        if not items:
            problems.append(f"{folder}: no {split} shard (fineweb_{split}_000000.bin); the trainer needs one")
            continue
        missing = sorted(set(range(items[-1][0] + 1)) - {i for i, _ in items})
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            problems.append(f"{folder}: {split} shards must be numbered from 000000 without gaps; missing "
                            + ", ".join(f"fineweb_{split}_{i:06d}.bin" for i in missing[:3]) + more)
        listed = getattr(entry, f"files_{split}", None)
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
            tokens, docs = tokens + n, docs + int(hist[BOS_ID])
            if vocab and hist[vocab:].any():
                at = int(np.argmax(np.asarray(toks) >= vocab))
                problems.append(f"{path}: {int(hist[vocab:].sum()):,} token id(s) >= vocabulary size {vocab} (first at "
                                f"token {at:,}: id {int(toks[at])}; largest {int(np.flatnonzero(hist)[-1])}); wrong "
                                f"vocabulary ({source}) or a damaged shard")
            if position == 0 and int(toks[0]) != BOS_ID:
                problems.append(f"{path}: starts with id {int(toks[0])}, not BOS ({BOS_ID}): every document must be "
                                "prefixed by BOS, so the first shard of a split starts with one")
            for name, i in specials.items():
                if 0 <= i < len(hist) and i != BOS_ID and hist[i]:
                    problems.append(f"{path}: {int(hist[i]):,} {name} token(s) (id {i}); documents are separated by BOS only")
            if shard_size and n > shard_size:
                problems.append(f"{path}: {n:,} tokens, more than the manifest's shard_size of {shard_size:,}")
            elif shard_size and listed is not None and index < listed - 1 and n != shard_size:
                problems.append(f"{path}: {n:,} tokens; the manifest's shard_size is {shard_size:,} and only the "
                                f"last {split} shard may be shorter")
        report.lines.append(f"{split}: {len(items)} shard(s), {tokens:,} tokens, {docs:,} documents")
        if entry is None:
            continue
        if split == "val" and len(items) != listed:
            problems.append(f"{folder}: {len(items)} val shard(s) but {where} lists {listed}; "
                            "the val split must be complete (rerun the downloader)")
        if split == "train" and len(items) > listed:
            problems.append(f"{folder}: {len(items)} train shards but {where} lists only {listed}")
        if len(items) == listed and not missing:
            for what, have in (("tokens", tokens), ("documents", docs)):
                want = entry.stats.get(f"{what if what == 'tokens' else 'docs'}_{split}")
                if want is not None and int(want) != have:
                    problems.append(f"{folder}: the {split} shards hold {have:,} {what}; {where} says {int(want):,}")
        if split == "train":
            report.lines.append(f"train shards present: {len(items)} of {listed} in {where}")
    if entry is None:
        report.lines.append("note: no manifest.json listing this folder next to it; manifest counts not checked")
    return report


# --------------------------------------------------------------------------- stats


def split_stats(paths: list[Path], sp, tables: ByteTables, sample_tokens: int, seed: int) -> dict:
    """Exact counts over all shards of a split plus bytes per token on (a sample of) its documents."""
    vocab = sp.vocab_size()
    hist = np.zeros(1 << 16, dtype=np.int64)
    for path in paths:
        hist += token_histogram(read_shard(path))
        if hist[vocab:].any():
            raise ToolError(f"{path}: token ids up to {int(np.flatnonzero(hist)[-1])} but the tokenizer has {vocab} "
                            "pieces: wrong --tokenizer for this dataset? (see: shard_tool.py validate)")
    tokens, n_docs, unk = int(hist.sum()), int(hist[BOS_ID]), sp.unk_id()
    exact = tokens <= sample_tokens
    docs = [d.tokens for d in (iter_documents(paths) if exact else
                               sample_documents(paths, np.random.default_rng(seed), tokens=sample_tokens))]
    sample = int(sum(len(d) for d in docs))
    table = int(sum(stream_bytes(d, tables).sum() for d in docs))  # each document starts after its BOS
    decoded = decoded_bytes(sp, docs)
    return {
        "shards": len(paths), "tokens": tokens, "documents": n_docs,
        "mean_document_tokens": tokens / n_docs if n_docs else None,
        "unk_tokens": int(hist[unk]) if unk >= 0 else 0,
        "unk_rate": int(hist[unk]) / tokens if tokens and unk >= 0 else 0.0,
        "sample_exact": exact, "sample_documents": len(docs), "sample_tokens": sample,
        "sample_table_bytes": table, "sample_decoded_bytes": decoded,
        "bytes_per_token": table / sample if sample else None,
        "bytes_per_token_decoded": decoded / sample if sample else None,
    }


def compute_stats(folder: Path | str, tokenizer: Path | str, *, splits=SPLITS,
                  sample_tokens: int = DEFAULT_SAMPLE_TOKENS, seed: int = 0) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolError(f"{folder}: no such directory")
    sp = load_tokenizer(tokenizer)
    tables, shards, result = build_byte_luts(sp, sp.vocab_size()), list_shards(folder), {}
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
    lines = [f"dataset {folder} (tokenizer {tokenizer})",
             f"{'split':<6}{'shards':>7}{'tokens':>16}{'documents':>12}{'tokens/doc':>12}{'bytes/token':>13}"
             f"{'(decoded)':>11}{'<unk>':>9}  measured on"]
    for split, s in stats.items():
        figures = [f"{v:.4f}" if v is not None else "-" for v in (s["bytes_per_token"], s["bytes_per_token_decoded"])]
        mean = f"{s['mean_document_tokens']:.1f}" if s["mean_document_tokens"] else "-"
        lines.append(f"{split:<6}{s['shards']:>7}{s['tokens']:>16,}{s['documents']:>12,}{mean:>12}{figures[0]:>13}"
                     f"{figures[1]:>11}{s['unk_rate']:>9.3%}  {'all' if s['sample_exact'] else 'a sample of'} "
                     f"{s['sample_documents']:,} docs / {s['sample_tokens']:,} tokens")
    lines.append("bytes/token: the scorer's byte count (train_gpt.py's rule) per stored token, BOS included; "
                 "(decoded): UTF-8 bytes of the decoded text, <unk> = 0 bytes, an independent check that differs "
                 "by the space the scorer drops after an <unk>.")
    return lines


# --------------------------------------------------------------------------- decode


def pick_documents(folder: Path | str, split: str, n: int, *, randomize: bool = False, seed: int = 0) -> list[Document]:
    """The first ``n`` documents of a split, or up to ``n`` random whole ones."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolError(f"{folder}: no such directory")
    paths = [p for _, p in list_shards(folder)[split]]
    if not paths:
        raise ToolError(f"{folder}: no {split} shards (fineweb_{split}_NNNNNN.bin); try --split "
                        f"{'train' if split == 'val' else 'val'}")
    try:
        if randomize:
            return sample_documents(paths, np.random.default_rng(seed), n=n)
        picked = []
        for doc in iter_documents(paths):
            picked.append(doc)
            if len(picked) == n:
                break
        return picked
    except ShardError as exc:
        raise ToolError(f"{exc} (see: shard_tool.py validate {folder})") from None


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shard_tool.py", description="Check, measure and read token-shard datasets (fineweb_{val,train}_NNNNNN.bin).",
        epilog="Exit status: 0 fine; 1 problems found or a failure (one line each, naming the file); 2 bad usage.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{validate,stats,decode}")
    v = sub.add_parser("validate", help="check headers, sizes, token ids, BOS separation, manifest counts",
                       description="Check every shard of DIR: header and size, numbering, token ids below the "
                                   "vocabulary, BOS-separated documents, and the counts of a manifest.json in DIR or "
                                   "up to two levels above that lists it. One line per problem; exit 1 if any.")
    v.add_argument("--vocab-size", type=int, default=None,
                   help="vocabulary size the ids must stay below (default: from --tokenizer, the manifest, or a "
                        "folder name ending in sp<V>)")
    v.add_argument("--tokenizer", type=Path, default=None, help="SentencePiece model giving the vocabulary size")
    s = sub.add_parser("stats", help="shards, tokens, documents, mean document length, bytes per token",
                       description="Count shards, tokens and documents per split (exactly) and measure bytes per token "
                                   "on the documents (all of them up to --sample-tokens per split, else a seeded "
                                   "random sample of whole documents).")
    s.add_argument("--split", choices=SPLITS, default=None, help="only this split (default: both)")
    s.add_argument("--sample-tokens", type=int, default=DEFAULT_SAMPLE_TOKENS,
                   help=f"measure every document of a split up to this many tokens, else a sample of about this many "
                        f"(default {DEFAULT_SAMPLE_TOKENS:,})")
    s.add_argument("--json", action="store_true", help="print the statistics as JSON")
    d = sub.add_parser("decode", help="print documents back as text",
                       description="Decode documents of one split and print them, each under a line naming its shard, "
                                   "offset and token count.")
    d.add_argument("-n", type=int, default=3, help="number of documents (default 3)")
    d.add_argument("--split", choices=SPLITS, default="val", help="split to read (default val)")
    d.add_argument("--random", action="store_true", help="random whole documents instead of the first ones")
    d.add_argument("--max-chars", type=int, default=2000,
                   help="cut each printed document after this many characters (0: no limit; default 2000)")
    for p in (v, s, d):
        p.add_argument("dir", type=Path, metavar="DIR", help="dataset folder, e.g. data/datasets/fineweb10B_sp1024")
    for p in (s, d):
        p.add_argument("--tokenizer", type=Path, required=True, metavar="M", help="SentencePiece model of the dataset")
        p.add_argument("--seed", type=int, default=0, help="seed of the random document choice (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option, value in (("--vocab-size", getattr(args, "vocab_size", None)),
                          ("--sample-tokens", getattr(args, "sample_tokens", None)), ("-n", getattr(args, "n", None))):
        if value is not None and value <= 0:
            parser.error(f"{option} must be positive")
    try:
        if args.command == "validate":
            report = validate(args.dir, args.vocab_size, args.tokenizer)
            print("\n".join(report.lines))
            if report.problems:
                print("\n".join(report.problems + [f"FAILED: {len(report.problems)} problem(s) in {args.dir}"]),
                      file=sys.stderr)
                return 1
            print(f"OK: {args.dir}")
        elif args.command == "stats":
            stats = compute_stats(args.dir, args.tokenizer, splits=(args.split,) if args.split else SPLITS,
                                  sample_tokens=args.sample_tokens, seed=args.seed)
            print(json.dumps(stats, indent=2) if args.json else "\n".join(format_stats(args.dir, args.tokenizer, stats)))
        else:
            sp = load_tokenizer(args.tokenizer)
            docs = pick_documents(args.dir, args.split, args.n, randomize=args.random, seed=args.seed)
            for i, doc in enumerate(docs):
                if int(doc.tokens.max()) >= sp.vocab_size():
                    raise ToolError(f"{doc.shard}: token id {int(doc.tokens.max())} at or above the tokenizer's "
                                    f"{sp.vocab_size()} pieces: wrong --tokenizer for this dataset?")
                text = sp.decode(doc.tokens.tolist())
                cut = ""
                if args.max_chars and len(text) > args.max_chars:
                    text, cut = text[:args.max_chars], f" (cut at {args.max_chars} characters)"
                spans = ", continues into the next shard" if doc.spans_shards else ""
                print(f"--- {args.split} document {i}: {doc.shard} token {doc.offset:,}, {doc.tokens.size:,} tokens, "
                      f"{int(np.count_nonzero(doc.tokens == sp.unk_id()))} <unk>{spans}{cut} ---\n{text}")
            if len(docs) < args.n and not args.random:
                print(f"(the {args.split} split holds only {len(docs)} document(s))")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
