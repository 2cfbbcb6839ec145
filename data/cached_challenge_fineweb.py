"""Download the published Parameter Golf FineWeb export (shards + tokenizer).

One command before a GPU run::

    python3 data/cached_challenge_fineweb.py --variant sp1024            # val + 80 train shards
    python3 data/cached_challenge_fineweb.py --variant sp1024 --train-shards 195
    python3 data/cached_challenge_fineweb.py --list                      # published variants

Where the files come from. The export is the Hugging Face dataset repository
``willdepueoai/parameter-golf`` (``--repo-id`` / ``MATCHED_FINEWEB_REPO_ID``).
Everything lives under a remote root, ``datasets`` by default
(``--remote-root`` / ``MATCHED_FINEWEB_REMOTE_ROOT_PREFIX``)::

    <root>/manifest.json
    <root>/datasets/fineweb10B_sp1024/fineweb_val_000000.bin      (the single val shard)
    <root>/datasets/fineweb10B_sp1024/fineweb_train_000000.bin ... (195 train shards)
    <root>/tokenizers/fineweb_1024_bpe.model  (+ .vocab)

Each file is fetched with ``huggingface_hub.hf_hub_download`` into the Hugging
Face cache (``--cache-dir``, default ``$HF_HOME``), then hard-linked (or copied,
or symlinked: ``--link``) into the local layout::

    <data-dir>/datasets/manifest.json    (inside datasets/, which git ignores)
    <data-dir>/datasets/<dataset name>/fineweb_{val,train}_NNNNNN.bin
    <data-dir>/tokenizers/<tokenizer files>

``--data-dir`` defaults to the folder holding this script (``data/``).

What the manifest is expected to hold. The reader is tolerant; it looks for

* ``datasets``: a list of objects with a ``name`` (or an object keyed by name).
  The variant ``sp1024`` is the dataset named ``sp1024``, else
  ``fineweb10B_sp1024``, else the one dataset whose name ends in ``_sp1024``.
* the shard counts of that dataset: ``stats.files_train`` / ``stats.files_val``
  (also accepted at the entry's top level, or as ``train_shards``/``val_shards``,
  ``num_train_shards``/``num_val_shards``, or file lists ``train_files``/``val_files``);
  optional ``stats.tokens_val`` (checked against the downloaded val shards) and
  ``vocab_size``.
* the tokenizer: ``tokenizer_name`` naming an entry of ``tokenizers`` whose
  ``model_path``, ``vocab_path`` and/or ``path`` are paths under the remote root
  (``tokenizers/fineweb_1024_bpe.model``); a ``tokenizer`` string or object on the
  dataset entry is accepted too.
* the dataset folder: the entry's ``path`` when it is a relative path, else
  ``datasets/<name>``.

Where the manifest is silent the naming convention above is used: train shards
``fineweb_train_000000.bin`` upward (the maximum is then unknown), one val shard,
tokenizer ``tokenizers/fineweb_<V>_bpe.model`` for ``sp<V>``.

Re-running is cheap and safe: a file already present and complete (shards: a valid
header whose token count matches the file size; tokenizers: loadable; the manifest:
valid JSON) is skipped, a damaged one is fetched again. Every file is written under
a temporary ``.partial`` name, verified, then renamed into place, so the trainer
never sees a partial file. Without network access to huggingface.co the script
says so once and exits with status 3; ``python3 data/build_sample.py`` builds an
offline sample dataset instead.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

DATA_DIR = Path(__file__).resolve().parent
if str(DATA_DIR) not in sys.path:  # shard_io lives beside this script
    sys.path.insert(0, str(DATA_DIR))

from shard_io import ShardError, read_header  # noqa: E402

DEFAULT_REPO_ID = "willdepueoai/parameter-golf"
DEFAULT_REMOTE_ROOT = "datasets"
DEFAULT_VARIANT = "sp1024"
DEFAULT_TRAIN_SHARDS = 80
DATASET_PREFIX = "fineweb10B_"
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
LINK_MODES = ("auto", "hardlink", "symlink", "copy")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 3

OFFLINE_HINT = (
    "Downloading the published data needs network access to huggingface.co "
    "(and, for a gated or private repository, a token in HF_TOKEN). "
    "Without it, build the offline sample instead: python3 data/build_sample.py "
    "(writes data/datasets/sample_sp1024/ and data/tokenizers/sample_1024_bpe.model)."
)

DownloadFn = Callable[..., str]


class DownloadError(Exception):
    """A failure with a message fit for the user; ``exit_code`` says which kind."""

    exit_code = EXIT_FAILED


class HubUnreachable(DownloadError):
    """The Hugging Face Hub could not be reached (offline, DNS, timeout, proxy)."""

    exit_code = EXIT_UNREACHABLE


# --------------------------------------------------------------------------- manifest


def manifest_datasets(manifest: dict) -> dict[str, dict]:
    """The manifest's datasets by name (``datasets`` as a list of objects or a name-keyed object)."""
    return _named_entries(manifest.get("datasets"))


def manifest_tokenizers(manifest: dict) -> dict[str, dict]:
    """The manifest's tokenizers by name (same shapes as ``datasets``)."""
    return _named_entries(manifest.get("tokenizers"))


def _named_entries(value: Any) -> dict[str, dict]:
    if isinstance(value, dict):
        return {str(k): dict(v, name=v.get("name", k)) for k, v in value.items() if isinstance(v, dict)}
    if isinstance(value, list):
        return {str(e["name"]): e for e in value if isinstance(e, dict) and e.get("name")}
    return {}


def variant_of(dataset_name: str) -> str:
    """``fineweb10B_sp1024`` -> ``sp1024`` (the part after the last underscore)."""
    return dataset_name.rsplit("_", 1)[-1]


def dataset_name_for_variant(variant: str, manifest: dict | None) -> str | None:
    """The dataset name the manifest uses for ``variant``; the convention when it lists none."""
    names = list(manifest_datasets(manifest or {}))
    if not names:
        return variant if variant.startswith(DATASET_PREFIX) else DATASET_PREFIX + variant
    for candidate in (variant, DATASET_PREFIX + variant):
        if candidate in names:
            return candidate
    suffixed = [n for n in names if n.endswith("_" + variant)]
    return suffixed[0] if len(suffixed) == 1 else None


def entry_value(entry: dict, keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` found in the entry's ``stats`` object or, failing that, in the entry."""
    stats = entry.get("stats") if isinstance(entry.get("stats"), dict) else {}
    for source in (stats, entry):
        for key in keys:
            if source.get(key) is not None:
                return source[key]
    return None


def _count_and_files(entry: dict, split: str) -> tuple[int | None, list[str] | None]:
    files = entry_value(entry, (f"{split}_files", f"files_{split}_list"))
    if isinstance(files, list):
        names = [PurePosixPath(str(f)).name for f in files]
        return len(names), names
    count = entry_value(entry, (f"files_{split}", f"{split}_shards", f"num_{split}_shards", f"num_{split}_files"))
    if isinstance(count, list):
        names = [PurePosixPath(str(f)).name for f in count]
        return len(names), names
    return (int(count), None) if count is not None else (None, None)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _under_root(path: str, anchor: str) -> str | None:
    """A manifest path as a path under the remote root ('tokenizers/x.model'), or None."""
    p = PurePosixPath(str(path).replace("\\", "/"))
    if ".." in p.parts:
        return None
    if not p.is_absolute():
        return p.as_posix()
    parts = p.parts
    if anchor in parts:  # an absolute path the exporter failed to relativise
        i = len(parts) - 1 - parts[::-1].index(anchor)
        return PurePosixPath(*parts[i:]).as_posix()
    return f"{anchor}/{p.name}"


@dataclass
class VariantPlan:
    """What to fetch for one variant, read from the manifest (or the naming convention)."""

    variant: str
    dataset_name: str
    dataset_dir: str  # under the remote root, e.g. datasets/fineweb10B_sp1024
    train_total: int | None  # None: the manifest does not say
    val_total: int
    train_names: list[str] | None = None
    val_names: list[str] | None = None
    tokenizer_files: list[str] = field(default_factory=list)  # under the remote root
    vocab_size: int | None = None
    tokens_val: int | None = None
    notes: list[str] = field(default_factory=list)

    def train_file(self, i: int) -> str:
        return self.train_names[i] if self.train_names else f"fineweb_train_{i:06d}.bin"

    def val_file(self, i: int) -> str:
        return self.val_names[i] if self.val_names else f"fineweb_val_{i:06d}.bin"


def conventional_tokenizer_files(variant: str) -> list[str]:
    m = re.fullmatch(r"sp(\d+)", variant)
    if m:
        return [f"tokenizers/fineweb_{m.group(1)}_bpe.model"]
    if variant == "byte260":
        return ["tokenizers/fineweb_pure_byte_260.json"]
    return []


def plan_variant(manifest: dict | None, variant: str) -> VariantPlan:
    """Read what the manifest says about ``variant``; raise DownloadError if it does not list it."""
    manifest = manifest or {}
    datasets = manifest_datasets(manifest)
    name = dataset_name_for_variant(variant, manifest)
    if name is None:
        listed = ", ".join(sorted(variant_of(n) for n in datasets)) or "none"
        raise DownloadError(
            f"variant {variant!r} is not in the manifest (published variants: {listed}); "
            "pick one of them with --variant, or see them with --list"
        )
    entry = datasets.get(name, {})
    notes = [] if entry else [f"the manifest does not list {name}; using the naming convention"]

    train_total, train_names = _count_and_files(entry, "train")
    val_total, val_names = _count_and_files(entry, "val")
    if val_total is None:
        val_total = 1
        if entry:
            notes.append("the manifest gives no val shard count; fetching fineweb_val_000000.bin")

    dataset_dir = f"datasets/{name}"
    entry_path = entry.get("path")
    if isinstance(entry_path, str):
        rel = _under_root(entry_path, "datasets")
        if rel and PurePosixPath(rel).name == name:
            dataset_dir = rel

    tokenizer_files: list[str] = []
    tokenizer_entry: dict = {}
    tok_ref = entry.get("tokenizer_name") or entry.get("tokenizer")
    if isinstance(tok_ref, dict):
        tokenizer_entry = tok_ref
    elif isinstance(tok_ref, str):
        tokenizer_entry = manifest_tokenizers(manifest).get(tok_ref, {})
        if not tokenizer_entry and ("/" in tok_ref or "." in tok_ref):
            tokenizer_entry = {"path": tok_ref}
    for key in ("model_path", "vocab_path", "path"):
        value = tokenizer_entry.get(key)
        if isinstance(value, str) and value:
            rel = _under_root(value, "tokenizers")
            if rel and rel not in tokenizer_files:
                tokenizer_files.append(rel)
    if not tokenizer_files:
        tokenizer_files = conventional_tokenizer_files(variant_of(name))
        if entry:
            notes.append(f"the manifest names no tokenizer file for {name}; using {tokenizer_files or 'none'}")

    vocab = _int_or_none(entry.get("vocab_size")) or _int_or_none(tokenizer_entry.get("vocab_size"))
    return VariantPlan(
        variant=variant_of(name),
        dataset_name=name,
        dataset_dir=dataset_dir,
        train_total=train_total,
        val_total=val_total,
        train_names=train_names,
        val_names=val_names,
        tokenizer_files=tokenizer_files,
        vocab_size=vocab,
        tokens_val=_int_or_none(entry_value(entry, ("tokens_val",))),
        notes=notes,
    )


# --------------------------------------------------------------------------- errors


def _network_error_types() -> tuple[type, ...]:
    """Exception types that mean 'the Hub could not be reached' (whatever is importable)."""
    types: list[type] = [ConnectionError, TimeoutError]  # includes OfflineModeIsEnabled
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

        types += [LocalEntryNotFoundError, OfflineModeIsEnabled]
    except ImportError:
        pass
    try:
        import requests

        types += [requests.exceptions.ConnectionError, requests.exceptions.Timeout]
    except ImportError:
        pass
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
            types.append(module.TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        chain.append(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return chain


def explain_hub_error(exc: Exception, what: str, repo_id: str) -> DownloadError:
    """Turn an exception from the download function into one user-facing DownloadError."""
    network = _network_error_types()
    network_chain = [e for e in _exception_chain(exc) if isinstance(e, network)]
    shown = network_chain[-1] if network_chain else exc  # the root cause says most (e.g. DNS failure)
    first_line = (str(shown).strip().splitlines() or [type(shown).__name__])[0]
    reason = f"{type(shown).__name__}: {first_line}"
    if network_chain:
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            reason += "; HF_HUB_OFFLINE is set"
        return HubUnreachable(f"could not download {what} from the Hugging Face Hub ({reason}). {OFFLINE_HINT}")
    kind = type(exc).__name__
    if kind in ("RepositoryNotFoundError", "GatedRepoError", "DisabledRepoError"):
        return DownloadError(
            f"dataset repository {repo_id!r} is not reachable ({reason}); check --repo-id / "
            "MATCHED_FINEWEB_REPO_ID, and HF_TOKEN if the repository is gated or private"
        )
    if kind in ("RemoteEntryNotFoundError", "EntryNotFoundError", "RevisionNotFoundError"):
        return DownloadError(
            f"{what} does not exist in {repo_id} ({reason}); check --remote-root / "
            "MATCHED_FINEWEB_REMOTE_ROOT_PREFIX, --revision and --train-shards (see --list)"
        )
    return DownloadError(f"downloading {what} from {repo_id} failed ({reason}); rerun to resume")


# --------------------------------------------------------------------------- verification


def verify_shard(path: Path) -> str:
    """Describe a complete shard ('100,000,000 tokens') or raise ShardError."""
    return f"{read_header(path):,} tokens"


def verify_json(path: Path) -> str:
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{path}: not valid JSON ({exc})") from None
    return "valid JSON"


def make_tokenizer_verifier(vocab_size: int | None) -> Callable[[Path], str]:
    def verify(path: Path) -> str:
        path = Path(path)
        suffix = Path(path.name.removesuffix(PARTIAL_SUFFIX)).suffix  # judge a temp file by its final name
        if path.stat().st_size == 0:
            raise ShardError(f"{path}: empty file")
        if suffix == ".json":
            return verify_json(path)
        if suffix != ".model":
            return "non-empty"
        try:
            import sentencepiece as spm
        except ImportError:
            return "sentencepiece not installed: not loaded"
        try:
            sp = spm.SentencePieceProcessor(model_file=str(path))
        except (OSError, RuntimeError) as exc:
            raise ShardError(f"{path}: not a loadable SentencePiece model ({exc})") from None
        if vocab_size is not None and sp.vocab_size() != vocab_size:
            raise ShardError(f"{path}: vocabulary of {sp.vocab_size()} pieces, the manifest says {vocab_size}")
        return f"SentencePiece model, vocab {sp.vocab_size()}"

    return verify


# --------------------------------------------------------------------------- fetching


@dataclass
class Hub:
    """Where files come from: a dataset repo, a root folder in it, and the download function."""

    repo_id: str = DEFAULT_REPO_ID
    remote_root: str = DEFAULT_REMOTE_ROOT
    revision: str | None = None
    cache_dir: str | None = None
    download_fn: DownloadFn | None = None

    def remote_path(self, rel: str) -> str:
        root = self.remote_root.strip("/")
        return f"{root}/{rel}" if root else rel

    def download(self, rel: str, force: bool = False) -> Path:
        """Fetch ``<root>/<rel>`` into the cache; return the cached file. Raises DownloadError."""
        fn = self.download_fn
        if fn is None:
            try:
                from huggingface_hub import hf_hub_download as fn
            except ImportError:
                raise DownloadError(
                    "huggingface_hub is not installed: pip install huggingface_hub (see requirements.txt)"
                ) from None
        remote = self.remote_path(rel)
        try:
            cached = fn(
                repo_id=self.repo_id,
                filename=remote,
                repo_type="dataset",
                revision=self.revision,
                cache_dir=self.cache_dir,
                force_download=force,
            )
        except Exception as exc:  # every failure becomes one clear message
            raise explain_hub_error(exc, remote, self.repo_id) from exc
        return Path(cached)


@dataclass
class Counter:
    done: int = 0
    total: int = 0
    downloaded: int = 0
    present: int = 0

    def tag(self) -> str:
        width = len(str(self.total))
        return f"[{self.done:>{width}}/{self.total}]"


def install(source: Path, dest: Path, link: str) -> tuple[Path, str]:
    """Place ``source`` at ``dest.partial`` (hardlink/symlink/copy); return the temp path and how."""
    tmp = dest.with_name(dest.name + PARTIAL_SUFFIX)
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link in ("auto", "hardlink"):
        try:
            os.link(source, tmp)
            return tmp, "hardlinked"
        except OSError:
            if link == "hardlink":
                raise
    if link == "symlink":
        os.symlink(source, tmp)
        return tmp, "symlinked"
    shutil.copyfile(source, tmp)
    return tmp, "copied"


def fetch(
    hub: Hub,
    rel: str,
    dest: Path,
    verify: Callable[[Path], str],
    *,
    link: str = "auto",
    counter: Counter | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> bool:
    """Make ``dest`` a complete copy of ``<root>/<rel>``; return True if it had to be downloaded.

    A present file that passes ``verify`` is kept. Otherwise the file is fetched through
    the Hugging Face cache, placed at ``dest.partial``, verified, and renamed onto
    ``dest``. A download that fails verification is retried once past the cache
    (``force_download``), since a damaged cached blob would otherwise be served again.
    """
    counter = counter or Counter()
    counter.done += 1
    label = f"{counter.tag()} {rel}"
    if not force and (dest.exists() or dest.is_symlink()):
        try:
            info = verify(dest)
            counter.present += 1
            log(f"{label}: already present ({info}), skipped")
            return False
        except (OSError, ShardError) as exc:
            log(f"{label}: present but incomplete or damaged ({_short(exc, dest)}); fetching again")
    log(f"{label}: downloading from {hub.repo_id}")
    problem = ""
    attempts = (force,) if force else (False, True)
    for attempt_force in attempts:
        if attempt_force and problem:
            log(f"{label}: the file served is damaged ({problem}); downloading again past the Hugging Face cache")
        source = hub.download(rel, force=attempt_force).resolve()
        tmp = dest.with_name(dest.name + PARTIAL_SUFFIX)
        try:
            try:
                tmp, how = install(source, dest, link)
            except OSError as exc:
                hint = " or try --link copy" if link in ("hardlink", "symlink") else ""
                raise DownloadError(
                    f"could not place {source} at {tmp} ({exc}); check the free space and permissions "
                    f"of {dest.parent}{hint}"
                ) from exc
            try:
                info = verify(tmp)
            except (OSError, ShardError) as exc:
                problem = _short(exc, tmp)
                continue
            try:
                os.replace(tmp, dest)
            except OSError as exc:
                raise DownloadError(f"could not rename {tmp} to {dest} ({exc}); move {dest} out of the way "
                                    "and rerun") from exc
        finally:
            if tmp.exists() or tmp.is_symlink():
                tmp.unlink()
        counter.downloaded += 1
        log(f"{label}: ok ({info}, {dest.stat().st_size:,} bytes, {how} to {dest})")
        return True
    raise DownloadError(
        f"{hub.remote_path(rel)} from {hub.repo_id} arrived damaged{' twice' if len(attempts) == 2 else ''} "
        f"({problem}); nothing was "
        f"installed at {dest}. Rerun to retry; if it persists, the published file itself is damaged: "
        "report it to the export's maintainers"
    )


def _short(exc: BaseException, path: Path | None) -> str:
    text = str(exc)
    if path is not None:
        text = text.replace(f"{path}: ", "")
    return text


# --------------------------------------------------------------------------- manifest + run


def load_manifest(hub: Hub, data_dir: Path, *, refresh: bool, log: Callable[[str], None] = print) -> dict | None:
    """The export's manifest, from ``<data-dir>/datasets/manifest.json`` or downloaded there.

    Returns None (with a warning) when the repository has no manifest at the remote root.
    """
    dest = data_dir / "datasets" / MANIFEST_NAME
    try:
        fetch(hub, MANIFEST_NAME, dest, verify_json, link="copy", force=refresh, log=log,
              counter=Counter(total=1))
    except DownloadError as exc:
        cause = exc.__cause__
        if type(cause).__name__ in ("RemoteEntryNotFoundError", "EntryNotFoundError") and not isinstance(
            exc, HubUnreachable
        ):
            log(f"warning: {hub.remote_path(MANIFEST_NAME)} not found in {hub.repo_id}; using the naming convention")
            return None
        raise
    manifest = json.loads(dest.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict):
        raise DownloadError(f"{dest}: the manifest is not a JSON object; delete it and rerun")
    return manifest


def format_variants(manifest: dict | None) -> list[str]:
    """One line per published variant, for --list."""
    datasets = manifest_datasets(manifest or {})
    if not datasets:
        return ["(the manifest lists no datasets)"]
    lines = []
    for name in sorted(datasets):
        plan = plan_variant(manifest, name)
        train = "?" if plan.train_total is None else f"{plan.train_total}"
        val_tokens = f", {plan.tokens_val:,} tokens" if plan.tokens_val is not None else ""
        vocab = f" (vocab {plan.vocab_size})" if plan.vocab_size else ""
        tok = ", ".join(plan.tokenizer_files) or "none"
        lines.append(
            f"{plan.variant:<10} {name:<24} train shards {train:>4}  val shards {plan.val_total}{val_tokens}  "
            f"tokenizer {tok}{vocab}"
        )
    return lines


def download_variant(
    hub: Hub,
    variant: str,
    train_shards: int | None,
    data_dir: Path,
    *,
    link: str = "auto",
    refresh_manifest: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Download one variant: val shards, the first ``train_shards`` train shards, its tokenizer.

    ``train_shards=None`` means the default, 80 (or every train shard if the export has fewer).

    Returns a summary dict (dataset folder, tokenizer paths, counts). Raises DownloadError.
    """
    data_dir = Path(data_dir)
    manifest = load_manifest(hub, data_dir, refresh=refresh_manifest or force, log=log)
    try:
        plan = plan_variant(manifest, variant)
    except DownloadError:
        if refresh_manifest or force or manifest is None:
            raise
        log(f"variant {variant!r} is not in the local manifest; fetching the manifest again")
        manifest = load_manifest(hub, data_dir, refresh=True, log=log)
        plan = plan_variant(manifest, variant)
    for note in plan.notes:
        log(f"note: {note}")
    if train_shards is None:  # the default: 80, or all the export has if it has fewer
        train_shards = DEFAULT_TRAIN_SHARDS
        if plan.train_total is not None and plan.train_total < train_shards:
            log(f"note: {plan.dataset_name} has {plan.train_total} train shards; fetching all of them")
            train_shards = plan.train_total
    if train_shards < 0:
        raise DownloadError(f"--train-shards must be 0 or more, got {train_shards}")
    if plan.train_total is not None and train_shards > plan.train_total:
        raise DownloadError(
            f"--train-shards {train_shards}: {plan.dataset_name} has only {plan.train_total} train shards "
            f"in {hub.repo_id}; ask for at most {plan.train_total}"
        )

    dataset_dest = data_dir / "datasets" / plan.dataset_name
    tokenizer_dest = data_dir / "tokenizers"
    counter = Counter(total=plan.val_total + train_shards + len(plan.tokenizer_files))
    of_total = f" of {plan.train_total}" if plan.train_total is not None else ""
    log(
        f"{plan.variant}: {plan.val_total} val + {train_shards}{of_total} train shards of {plan.dataset_name} "
        f"and {len(plan.tokenizer_files)} tokenizer file(s) from {hub.repo_id}:{hub.remote_path('')} "
        f"into {dataset_dest} and {tokenizer_dest}"
    )

    val_tokens = 0
    for i in range(plan.val_total):
        name = plan.val_file(i)
        fetch(hub, f"{plan.dataset_dir}/{name}", dataset_dest / name, verify_shard, link=link,
              counter=counter, force=force, log=log)
        val_tokens += read_header(dataset_dest / name)
    for i in range(train_shards):
        name = plan.train_file(i)
        fetch(hub, f"{plan.dataset_dir}/{name}", dataset_dest / name, verify_shard, link=link,
              counter=counter, force=force, log=log)
    verify_tok = make_tokenizer_verifier(plan.vocab_size)
    tokenizer_paths = []
    for rel in plan.tokenizer_files:
        dest = tokenizer_dest / PurePosixPath(rel).name
        fetch(hub, rel, dest, verify_tok, link=link, counter=counter, force=force, log=log)
        tokenizer_paths.append(dest)

    if plan.tokens_val is not None and val_tokens != plan.tokens_val:
        raise DownloadError(
            f"the val shards in {dataset_dest} hold {val_tokens:,} tokens but the manifest says "
            f"{plan.tokens_val:,}: the export and its manifest disagree (rerun with --force to refetch)"
        )
    log(
        f"done: {counter.downloaded} downloaded, {counter.present} already present. "
        f"Dataset: {dataset_dest} ({plan.val_total} val shard(s), {val_tokens:,} val tokens; "
        f"{train_shards}{of_total} train shards). Tokenizer: "
        + (", ".join(str(p) for p in tokenizer_paths) or "none")
    )
    return {
        "dataset_dir": dataset_dest,
        "tokenizer_paths": tokenizer_paths,
        "downloaded": counter.downloaded,
        "present": counter.present,
        "val_tokens": val_tokens,
        "plan": plan,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cached_challenge_fineweb.py",
        description=(
            "Download the published Parameter Golf FineWeb export from the Hugging Face Hub: the "
            "validation shard(s), the first N training shards and the tokenizer of one variant, into "
            "<data-dir>/datasets/<name>/ and <data-dir>/tokenizers/. Re-running skips complete files and "
            "re-fetches damaged ones; files appear only once verified."
        ),
        epilog=(
            "Exit status: 0 done; 1 failure (message names the file or option); 2 bad usage; "
            "3 the Hub is unreachable. Offline? python3 data/build_sample.py builds a small sample "
            "dataset (data/datasets/sample_sp1024/) without network. Check downloaded data with "
            "python3 data/shard_tool.py validate data/datasets/fineweb10B_sp1024."
        ),
    )
    parser.add_argument(
        "train_shards_positional", nargs="?", type=int, metavar="N",
        help="same as --train-shards N (the upstream script's positional form)",
    )
    parser.add_argument("--variant", default=DEFAULT_VARIANT,
                        help=f"published variant to fetch, e.g. sp1024 (default {DEFAULT_VARIANT}); see --list")
    parser.add_argument("--train-shards", type=int, default=None, metavar="N",
                        help=f"download the first N train shards (default {DEFAULT_TRAIN_SHARDS}, or all if the "
                             "export has fewer; 0 = val and tokenizer only; sp1024 has 195). Validation is "
                             "always downloaded whole")
    parser.add_argument("--list", action="store_true",
                        help="print the variants the manifest lists (shard counts, tokenizer) and exit")
    parser.add_argument("--repo-id", default=os.environ.get("MATCHED_FINEWEB_REPO_ID", DEFAULT_REPO_ID),
                        help="Hugging Face dataset repository (env MATCHED_FINEWEB_REPO_ID; "
                             f"default {DEFAULT_REPO_ID})")
    parser.add_argument("--remote-root",
                        default=os.environ.get("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", DEFAULT_REMOTE_ROOT),
                        help="folder inside the repository holding manifest.json, datasets/ and tokenizers/ "
                             f"(env MATCHED_FINEWEB_REMOTE_ROOT_PREFIX; default {DEFAULT_REMOTE_ROOT!r})")
    parser.add_argument("--revision", default=None,
                        help="branch, tag or commit of the repository to download (default: main)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="local data folder receiving datasets/ (with manifest.json) and tokenizers/ "
                             "(default: the folder of this script)")
    parser.add_argument("--cache-dir", default=None,
                        help="Hugging Face cache folder (default: $HF_HUB_CACHE or $HF_HOME/hub)")
    parser.add_argument("--link", choices=LINK_MODES, default="auto",
                        help="how files go from the cache to --data-dir: auto = hardlink, else copy "
                             "(default); hardlink; symlink (into the cache: breaks if the cache is "
                             "cleaned); copy (uses twice the disk)")
    parser.add_argument("--refresh-manifest", action="store_true",
                        help="download manifest.json again even if a valid local copy exists")
    parser.add_argument("--force", action="store_true",
                        help="download every file again, bypassing the Hugging Face cache")
    return parser


def main(argv: list[str] | None = None, download_fn: DownloadFn | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_shards is not None and args.train_shards_positional is not None:
        parser.error("give the train shard count once: either N or --train-shards N")
    train_shards = args.train_shards if args.train_shards is not None else args.train_shards_positional
    if train_shards is not None and train_shards < 0:
        parser.error(f"--train-shards must be 0 or more, got {train_shards}")
    hub = Hub(repo_id=args.repo_id, remote_root=args.remote_root, revision=args.revision,
              cache_dir=args.cache_dir, download_fn=download_fn)

    def log(line: str) -> None:
        print(line, flush=True)

    try:
        if args.list:
            manifest = load_manifest(hub, args.data_dir, refresh=args.refresh_manifest, log=log)
            print(f"variants in {hub.repo_id}:{hub.remote_path(MANIFEST_NAME)}:")
            for line in format_variants(manifest):
                print("  " + line)
            return EXIT_OK
        download_variant(hub, args.variant, train_shards, args.data_dir, link=args.link,
                         refresh_manifest=args.refresh_manifest, force=args.force, log=log)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: no partial file was left under a shard name; rerun to resume", file=sys.stderr)
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
