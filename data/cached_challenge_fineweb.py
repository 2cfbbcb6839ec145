"""Download the published Parameter Golf FineWeb export: token shards, tokenizer and, on request, the documents.

    python3 data/cached_challenge_fineweb.py --variant sp1024                    # val + first 80 train shards
    python3 data/cached_challenge_fineweb.py --variant sp1024 --train-shards 195
    python3 data/cached_challenge_fineweb.py --variant byte260 --with-docs
    python3 data/cached_challenge_fineweb.py --list                              # the published variants

The export is the Hugging Face dataset repository MATCHED_FINEWEB_REPO_ID (default willdepueoai/parameter-golf),
folder MATCHED_FINEWEB_REMOTE_ROOT_PREFIX (default ``datasets``), described by its manifest::

    <root>/manifest.json
    <root>/datasets/fineweb10B_<variant>/fineweb_val_NNNNNN.bin, fineweb_train_NNNNNN.bin
    <root>/<the tokenizer's model_path / vocab_path / path>          e.g. tokenizers/fineweb_1024_bpe.model
    <root>/docs_selected.jsonl, docs_selected.source_manifest.json   (--with-docs)

The manifest is read in the one layout the challenge publishes (see SCHEMA); any other layout is one error
saying what was expected. Files land under ``--data-dir`` (default: this folder), in the folders git ignores:
``datasets/manifest.json``, ``datasets/docs_selected*``, ``datasets/<name>/``, ``tokenizers/``.

Each file goes through the Hugging Face cache, is hard-linked (else copied) to ``<name>.partial``, verified
(shards: header and size; .model: loadable, vocabulary as the manifest says; JSON: parseable; .jsonl: its last
line parses) and only then renamed into place. A rerun skips complete files and fetches damaged
ones again, past the cache when the cached copy is the damaged one. Before the first download one quick
request checks that the Hub answers; when it does not, files come from the Hugging Face cache alone and a
missing one is one message within seconds, not after huggingface_hub's retries.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DATA_DIR = Path(__file__).resolve().parent
if str(DATA_DIR) not in sys.path:  # shard_io lives beside this script
    sys.path.insert(0, str(DATA_DIR))

from shard_io import ShardError, read_header  # noqa: E402

DEFAULT_REPO_ID = "willdepueoai/parameter-golf"
DEFAULT_REMOTE_ROOT = "datasets"
DEFAULT_TRAIN_SHARDS = 80
MANIFEST_NAME = "manifest.json"
DOCS_FILES = ("docs_selected.jsonl", "docs_selected.source_manifest.json")
PARTIAL_SUFFIX = ".partial"
PROBE_TIMEOUT_S = 5.0
JSONL_TAIL_BYTES = 1 << 24  # read to check the last line of docs_selected.jsonl (one document)
EXIT_FAILED, EXIT_UNREACHABLE = 1, 3
SCHEMA = ('{"datasets": [{"name": "fineweb10B_sp1024", "tokenizer_name": "sp_bpe_1024", '
          '"stats": {"files_train": 195, "files_val": 1, ...}}, ...], "tokenizers": [{"name": "sp_bpe_1024", '
          '"model_path" / "vocab_path" / "path": "tokenizers/..." (relative to the root)}, ...]}')
OFFLINE_HINT = (
    "Already have the files? Point the trainer at them: DATA_PATH=<folder of fineweb_*.bin shards> "
    "TOKENIZER_PATH=<its .model file>. No data at all: python3 data/build_sample.py builds an offline sample "
    "(DATA_PATH=./data/datasets/sample_sp1024 TOKENIZER_PATH=./data/tokenizers/sample_1024_bpe.model)"
)


class DownloadError(Exception):
    """A failure with a one-line message for the user; ``exit_code`` says which kind."""

    exit_code = EXIT_FAILED


class Unreachable(DownloadError):
    exit_code = EXIT_UNREACHABLE

    def __init__(self, reason: str):
        super().__init__(f"the Hugging Face Hub cannot be reached ({reason}). {OFFLINE_HINT}")


# --------------------------------------------------------------------------- manifest


def dataset_name(variant: str) -> str:
    """The published variants: sp<VOCAB_SIZE> -> fineweb10B_sp<VOCAB_SIZE>, byte260 -> fineweb10B_byte260."""
    if variant == "byte260" or (variant.startswith("sp") and variant[2:].isdigit()):
        return f"fineweb10B_{variant}"
    raise argparse.ArgumentTypeError(f"unsupported variant {variant!r}; expected sp<VOCAB_SIZE> (e.g. sp1024) or byte260")


@dataclass
class Dataset:
    """One ``datasets[]`` entry of the manifest with its tokenizer entry resolved."""

    name: str
    files_train: int
    files_val: int
    stats: dict  # the whole stats object: tokens_val, docs_val, ... when the export gives them
    tokenizer_files: list[str]  # relative to the remote root
    vocab_size: int | None


def dataset_names(manifest: object, where: str) -> list[str]:
    try:
        return [str(d["name"]) for d in manifest["datasets"]]
    except (KeyError, TypeError) as exc:
        raise _schema_error(where, exc) from None


def dataset_entry(manifest: object, name: str, where: str) -> Dataset | None:
    """The manifest's entry for dataset ``name`` (None when it lists none); DownloadError if off the schema."""
    try:
        entry = next((d for d in manifest["datasets"] if d["name"] == name), None)
        if entry is None:
            return None
        tokenizer = next(t for t in manifest["tokenizers"] if t["name"] == entry["tokenizer_name"])
        files = [str(tokenizer[k]) for k in ("model_path", "vocab_path", "path") if tokenizer.get(k)]
        if not files or any(PurePosixPath(f).is_absolute() or ".." in PurePosixPath(f).parts for f in files):
            raise ValueError(f"tokenizer {tokenizer['name']!r} needs relative model_path / vocab_path / path")
        stats = entry["stats"]
        vocab = entry.get("vocab_size", tokenizer.get("vocab_size"))
        return Dataset(name, int(stats["files_train"]), int(stats["files_val"]), stats, files,
                       None if vocab is None else int(vocab))
    except StopIteration:
        raise DownloadError(f"{where}: dataset {name} names tokenizer {entry['tokenizer_name']!r}, which the "
                            f"manifest's tokenizers[] does not list; expected {SCHEMA}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise _schema_error(where, exc) from None


def _schema_error(where: str, exc: Exception) -> DownloadError:
    detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
    return DownloadError(f"{where} does not follow the published manifest layout ({detail}); expected {SCHEMA}")


# --------------------------------------------------------------------------- the Hub


NETWORK_ERRORS = {"httpx.TransportError", "httpx2.TransportError", "requests.ConnectionError", "requests.Timeout",
                  "huggingface_hub.LocalEntryNotFoundError"}  # the last: what hf_hub_download raises when offline


def _is_network_error(exc: BaseException) -> bool:
    """No answer from the Hub (OfflineModeIsEnabled is a ConnectionError); judged by name, importing nothing."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or any(
        f"{cls.__module__.split('.')[0]}.{cls.__name__}" in NETWORK_ERRORS for cls in type(exc).__mro__)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def explain(exc: Exception, what: str, repo_id: str) -> DownloadError:
    """One user-facing DownloadError for an exception raised while downloading ``what``."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    network = [e for e in chain if _is_network_error(e)]
    if network:  # the innermost cause says most (e.g. the DNS failure under LocalEntryNotFoundError)
        return Unreachable(f"{what}: {_first_line(network[-1])}")
    reason, kind = _first_line(chain[0]), type(chain[0]).__name__
    if kind in ("RepositoryNotFoundError", "GatedRepoError", "DisabledRepoError"):
        return DownloadError(f"dataset repository {repo_id!r} is not available ({reason}); check "
                             "MATCHED_FINEWEB_REPO_ID, and HF_TOKEN if the repository is gated or private")
    if kind in ("RemoteEntryNotFoundError", "EntryNotFoundError"):
        return DownloadError(f"{what} does not exist in {repo_id} ({reason}); check MATCHED_FINEWEB_REMOTE_ROOT_PREFIX")
    return DownloadError(f"downloading {what} from {repo_id} failed ({reason}); rerun to resume")


def connect():
    """huggingface_hub's HfApi, and why the Hub gets no answer (None when one quick request gets one)."""
    try:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.utils import get_session
    except ImportError:
        raise DownloadError("huggingface_hub is not installed: pip install huggingface_hub") from None
    if constants.HF_HUB_OFFLINE:
        return HfApi(), "HF_HUB_OFFLINE is set"
    try:  # any HTTP status is an answer; only a transport failure raises
        get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:
        return HfApi(), f"{constants.ENDPOINT}: {_first_line(exc)}"
    return HfApi(), None


class Hub:
    """The export: files under the remote root of the dataset repository, fetched through the HF cache.
    Offline, files come from that cache alone, at once (huggingface_hub alone would retry each for many seconds)."""

    def __init__(self, api=None):
        self.repo_id = os.environ.get("MATCHED_FINEWEB_REPO_ID", DEFAULT_REPO_ID)
        self.root = os.environ.get("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", DEFAULT_REMOTE_ROOT).strip("/")
        self.api = api  # anything with HfApi's hf_hub_download and get_paths_info; None: connect() when needed
        self.offline: str | None = None  # why the Hub gets no answer

    def remote(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.root else rel

    def _connect(self) -> None:
        if self.api is None:
            self.api, self.offline = connect()

    def download(self, rel: str, force: bool = False) -> Path:
        """Fetch ``<root>/<rel>`` into the cache (past it with ``force``); return the cached file."""
        self._connect()
        offline = {"local_files_only": True} if self.offline else {}
        try:
            return Path(self.api.hf_hub_download(repo_id=self.repo_id, filename=self.remote(rel),
                                                 repo_type="dataset", force_download=force, **offline))
        except Exception as exc:
            if self.offline:
                raise Unreachable(f"{self.offline}; {self.remote(rel)} is not in the Hugging Face cache") from exc
            raise explain(exc, self.remote(rel), self.repo_id) from exc

    def sizes(self, rels: list[str]) -> dict[str, int]:
        """Bytes of each file, as far as the Hub says (one request for all of them)."""
        self._connect()
        try:
            infos = [] if self.offline else self.api.get_paths_info(
                self.repo_id, [self.remote(r) for r in rels], repo_type="dataset")
        except Exception:
            return {}  # progress then shows no total; the download itself reports any real problem
        size = {info.path: getattr(info, "size", None) for info in infos}
        return {r: size[self.remote(r)] for r in rels if size.get(self.remote(r)) is not None}


# --------------------------------------------------------------------------- verified files


def verify(path: Path, vocab_size: int | None = None) -> str:
    """Describe a complete file ('100,000,000 tokens'), judged by its final name, or raise ShardError."""
    name = path.name.removesuffix(PARTIAL_SUFFIX)
    if name.endswith(".bin"):
        return f"{read_header(path):,} tokens"
    size = path.stat().st_size
    if size == 0:
        raise ShardError(f"{path}: empty file")
    if name.endswith(".json"):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ShardError(f"{path}: not valid JSON ({exc})") from None
        return "valid JSON"
    if name.endswith(".jsonl"):  # one JSON document per line: a file cut short ends in a broken line
        with open(path, "rb") as f:
            f.seek(max(0, size - JSONL_TAIL_BYTES))
            last_line = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        try:
            json.loads(last_line)
        except ValueError:
            raise ShardError(f"{path}: the last line is not complete JSON (cut short?)") from None
        return "complete last line"
    if name.endswith(".model"):
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as exc:
            raise ShardError(f"{path}: not a loadable SentencePiece model ({exc})") from None
        if vocab_size is not None and sp.vocab_size() != vocab_size:
            raise ShardError(f"{path}: vocabulary of {sp.vocab_size()} pieces, the manifest says {vocab_size}")
        return f"SentencePiece model, vocab {sp.vocab_size()}"
    return "non-empty"


def is_complete(dest: Path, vocab_size: int | None, label: str, log) -> bool:
    if not dest.exists():
        return False
    try:
        log(f"{label}: already present ({verify(dest, vocab_size)}), skipped")
        return True
    except (OSError, ShardError) as exc:
        log(f"{label}: present but incomplete or damaged ({str(exc).replace(f'{dest}: ', '')}); fetching again")
        return False


def fetch(hub: Hub, rel: str, dest: Path, vocab_size: int | None, label: str, log) -> None:
    """Install ``<root>/<rel>`` at ``dest``: through ``dest.partial``, renamed only once verified."""
    tmp = dest.with_name(dest.name + PARTIAL_SUFFIX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"{label}: downloading from {hub.repo_id}")
    problem = ""
    for force in (False, True):  # a damaged blob in the cache would be served again: the retry goes past it
        if force:
            log(f"{label}: the file served is damaged ({problem}); downloading again past the Hugging Face cache")
        source = hub.download(rel, force=force).resolve()
        try:
            tmp.unlink(missing_ok=True)
            try:
                os.link(source, tmp)
            except OSError:  # another file system, or no hard links: copy
                shutil.copyfile(source, tmp)
            try:
                info = verify(tmp, vocab_size)
            except ShardError as exc:
                problem = str(exc).replace(f"{tmp}: ", "")
                continue
            os.replace(tmp, dest)
        except OSError as exc:
            raise DownloadError(f"could not place {source} at {tmp} ({exc}); check the free space and "
                                f"permissions of {dest.parent}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        log(f"{label}: ok ({info}, {dest.stat().st_size:,} bytes, to {dest})")
        return
    raise DownloadError(f"{hub.remote(rel)} from {hub.repo_id} arrived damaged twice ({problem}); nothing was "
                        f"installed at {dest}. Rerun to retry; if it persists, the published file is damaged: "
                        "report it to the export's maintainers")


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """One overall line on stderr after each file: files and bytes done of the total, rate, ETA."""

    def __init__(self, files: int, total_bytes: int | None):
        self.files, self.total = files, total_bytes
        self.done_files = self.done_bytes = 0
        self.start = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done_files += 1
        self.done_bytes += nbytes
        rate = self.done_bytes / max(time.monotonic() - self.start, 1e-6)
        line = f"progress: {self.done_files}/{self.files} files, {_size(self.done_bytes)}"
        if self.total:
            eta = max(self.total - self.done_bytes, 0) / rate if rate else 0.0
            line += (f" of {_size(self.total)} ({100 * self.done_bytes / self.total:.0f}%), "
                     f"{_size(rate)}/s, ETA {_duration(eta)}")
        else:
            line += f", {_size(rate)}/s"
        print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the commands


def load_manifest(hub: Hub, data_dir: Path, *, skip_download: bool = False, refresh: bool = False,
                  log=print) -> tuple[dict, Path, bool]:
    """The manifest (local copy first), its path, and whether it was just downloaded."""
    dest = data_dir / "datasets" / MANIFEST_NAME
    fetched = False
    if refresh or not is_complete(dest, None, MANIFEST_NAME, log):
        if skip_download:
            raise DownloadError(f"--skip-manifest: no valid manifest at {dest}; run once without --skip-manifest")
        fetch(hub, MANIFEST_NAME, dest, None, MANIFEST_NAME, log)
        fetched = True
    return json.loads(dest.read_text(encoding="utf-8")), dest, fetched


def download(hub: Hub, variant: str, train_shards: int | None, data_dir: Path, *, with_docs: bool = False,
             skip_manifest: bool = False, log=print) -> dict:
    """Fetch a variant's val shards, first ``train_shards`` train shards (default 80, or all if fewer) and
    tokenizer files (and the documents with ``with_docs``). Returns what is where; raises DownloadError."""
    name = dataset_name(variant)
    manifest, where, fetched = load_manifest(hub, data_dir, skip_download=skip_manifest, log=log)
    if name not in dataset_names(manifest, where) and not (fetched or skip_manifest):
        log(f"{name} is not in the local {where}; fetching the manifest again")
        manifest, where, _ = load_manifest(hub, data_dir, refresh=True, log=log)
    ds = dataset_entry(manifest, name, where)
    if ds is None:
        listed = ", ".join(sorted(n.removeprefix("fineweb10B_") for n in dataset_names(manifest, where)))
        raise DownloadError(f"variant {variant!r} is not in the manifest (published variants: {listed or 'none'}); "
                            "pick one of them with --variant, or see them with --list")
    if train_shards is None:
        train_shards = min(DEFAULT_TRAIN_SHARDS, ds.files_train)
    if train_shards > ds.files_train:
        raise DownloadError(f"--train-shards {train_shards}: {name} has only {ds.files_train} train shards in "
                            f"{hub.repo_id}; ask for at most {ds.files_train}")

    dataset_dir, tokenizer_dir = data_dir / "datasets" / name, data_dir / "tokenizers"
    val = [f"fineweb_val_{i:06d}.bin" for i in range(ds.files_val)]
    files = [(doc, data_dir / "datasets" / doc, None) for doc in DOCS_FILES if with_docs]
    files += [(f"datasets/{name}/{f}", dataset_dir / f, None)
              for f in val + [f"fineweb_train_{i:06d}.bin" for i in range(train_shards)]]
    files += [(t, tokenizer_dir / PurePosixPath(t).name, ds.vocab_size) for t in ds.tokenizer_files]
    log(f"{variant}: {ds.files_val} val + {train_shards} of {ds.files_train} train shards of {name}, "
        f"{len(ds.tokenizer_files)} tokenizer file(s){' and the documents' if with_docs else ''} from "
        f"{hub.repo_id}:{hub.remote('')} into {data_dir}")
    labelled = [(f"[{k}/{len(files)}] {rel}", rel, dest, vocab) for k, (rel, dest, vocab) in enumerate(files, 1)]
    todo = [item for item in labelled if not is_complete(item[2], item[3], item[0], log)]
    if todo:
        sizes = hub.sizes([rel for _, rel, _, _ in todo])
        progress = Progress(len(todo), sum(sizes.values()) if len(sizes) == len(todo) else None)
        for label, rel, dest, vocab in todo:
            fetch(hub, rel, dest, vocab, label, log)
            progress.advance(dest.stat().st_size)

    val_tokens = sum(read_header(dataset_dir / f) for f in val)
    if ds.stats.get("tokens_val") is not None and val_tokens != int(ds.stats["tokens_val"]):
        raise DownloadError(f"the val shards in {dataset_dir} hold {val_tokens:,} tokens but {where} says "
                            f"{int(ds.stats['tokens_val']):,}: the export and its manifest disagree")
    tokenizers = [dest for _, dest, _ in files if dest.parent == tokenizer_dir]
    log(f"done: {len(todo)} downloaded, {len(files) - len(todo)} already present. DATA_PATH={dataset_dir} "
        f"({val_tokens:,} val tokens, {train_shards} train shards) TOKENIZER_PATH={tokenizers[0]}")
    return {"dataset_dir": dataset_dir, "tokenizer_paths": tokenizers, "downloaded": len(todo)}


def list_variants(hub: Hub, data_dir: Path, *, skip_manifest: bool = False) -> list[str]:
    manifest, where, _ = load_manifest(hub, data_dir, skip_download=skip_manifest, log=lambda line: None)
    lines = [f"variants in {hub.repo_id}:{hub.remote(MANIFEST_NAME)}:"]
    for name in sorted(dataset_names(manifest, where)):
        ds = dataset_entry(manifest, name, where)
        tokens = f", {int(ds.stats['tokens_val']):,} val tokens" if ds.stats.get("tokens_val") is not None else ""
        vocab = f" (vocab {ds.vocab_size})" if ds.vocab_size else ""
        lines.append(f"  {name.removeprefix('fineweb10B_'):<8} {name:<20} train shards {ds.files_train:>4}, "
                     f"val shards {ds.files_val}{tokens}; tokenizer {', '.join(ds.tokenizer_files)}{vocab}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cached_challenge_fineweb.py",
        description="Download the published Parameter Golf FineWeb export from the Hugging Face Hub: all "
                    "validation shards, the first N training shards and the tokenizer of one variant, into "
                    "<data-dir>/datasets/<name>/ and <data-dir>/tokenizers/. Reruns skip complete files and "
                    "fetch damaged ones again; a file appears under its name only once verified.",
        epilog="Environment: MATCHED_FINEWEB_REPO_ID (dataset repository, default willdepueoai/parameter-golf), "
               "MATCHED_FINEWEB_REMOTE_ROOT_PREFIX (its folder holding manifest.json, default 'datasets'), "
               "HF_TOKEN, HF_HOME (the Hugging Face cache). Exit status: 0 done; 1 failure (the message names "
               "the file); 2 bad usage; 3 Hub unreachable. Offline: python3 data/build_sample.py builds a "
               "sample dataset. Check downloaded data: python3 data/shard_tool.py validate DIR.",
    )
    parser.add_argument("train_shards_positional", nargs="?", type=int, metavar="N",
                        help="same as --train-shards N (the upstream script's positional form)")
    parser.add_argument("--train-shards", type=int, default=None, metavar="N",
                        help=f"download the first N train shards (default {DEFAULT_TRAIN_SHARDS}, or all if the "
                             "export has fewer; 0 = validation and tokenizer only). Validation is always whole")
    parser.add_argument("--variant", default="sp1024", type=lambda v: dataset_name(v) and v, metavar="VARIANT",
                        help="sp<VOCAB_SIZE> (e.g. sp1024, sp4096) or byte260 (default sp1024); see --list")
    parser.add_argument("--with-docs", action="store_true",
                        help="also download docs_selected.jsonl (the text of every selected document) and "
                             "docs_selected.source_manifest.json into <data-dir>/datasets/, for retraining a "
                             "tokenizer or re-exporting shards")
    parser.add_argument("--skip-manifest", action="store_true",
                        help="never download manifest.json; use the local copy (<data-dir>/datasets/manifest.json)")
    parser.add_argument("--list", action="store_true",
                        help="print the variants the manifest lists (shard counts, tokenizer) and exit")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="local folder receiving datasets/ and tokenizers/ (default: the folder of this script)")
    return parser


def main(argv: list[str] | None = None, api=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_shards is not None and args.train_shards_positional is not None:
        parser.error("give the train shard count once: either N or --train-shards N")
    train_shards = args.train_shards if args.train_shards is not None else args.train_shards_positional
    if train_shards is not None and train_shards < 0:
        parser.error(f"--train-shards must be 0 or more, got {train_shards}")
    if not sys.stderr.isatty():  # per-file bars only on a terminal; logs get the one progress line
        try:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        except ImportError:
            pass
    hub = Hub(api)
    try:
        if args.list:
            print("\n".join(list_variants(hub, args.data_dir, skip_manifest=args.skip_manifest)))
        else:
            download(hub, args.variant, train_shards, args.data_dir, with_docs=args.with_docs,
                     skip_manifest=args.skip_manifest, log=lambda line: print(line, flush=True))
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: no partial file was left under a final name; rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
