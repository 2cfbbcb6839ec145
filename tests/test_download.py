"""Tests of data/cached_challenge_fineweb.py against a local stand-in for the Hugging Face Hub.

``FakeApi`` serves a folder laid out like the published export (``<root>/manifest.json``,
``<root>/datasets/<name>/fineweb_*.bin``, ``<root>/tokenizers/...``, ``<root>/docs_selected*``) through
HfApi's ``hf_hub_download`` and ``get_paths_info``, with a cache kept the way the real one is (a snapshot
symlink to a blob), so linking, resume and the retry past the cache run for real. No test touches the
network: the two that run the real huggingface_hub set HF_HUB_OFFLINE=1 or point HF_ENDPOINT at a closed
local port.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import cached_challenge_fineweb as ccf
from conftest import REPO
from shard_io import BOS_ID, read_header, write_shard

SCRIPT = REPO / "data" / "cached_challenge_fineweb.py"
DATASET = "fineweb10B_sp1024"
ROOT = "datasets"
N_TRAIN = 85  # more than the default 80, so the default prefix is observable
TINY_VOCAB = 256


class FakeApi:
    """HfApi's hf_hub_download and get_paths_info, serving ``repo_root`` like a dataset repository."""

    def __init__(self, repo_root: Path, cache: Path, repo_id: str = ccf.DEFAULT_REPO_ID):
        self.repo_root, self.cache, self.repo_id = repo_root, cache, repo_id
        self.calls: list[tuple[str, bool]] = []  # (filename, force_download) per download
        self.raise_on: dict[str, BaseException] = {}
        self.truncate: set[str] = set()  # filenames served cut short (a damaged transfer)

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, force_download=False, local_files_only=False,
                        **kwargs):
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        assert (repo_id, repo_type) == (self.repo_id, "dataset")
        self.calls.append((filename, force_download))
        snapshot = self.cache / "snapshots" / "main" / filename
        if local_files_only:
            if snapshot.exists() and not force_download:
                return str(snapshot)
            raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
        if filename in self.raise_on:
            raise self.raise_on[filename]
        source = self.repo_root / filename
        if not source.is_file():
            raise EntryNotFoundError(f"404 Client Error: Entry Not Found for url: .../{filename}")
        data = source.read_bytes()[: -7 if filename in self.truncate else None]
        if force_download or not snapshot.exists():
            blob = self.cache / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.with_suffix(".incomplete").write_bytes(data)
            blob.with_suffix(".incomplete").replace(blob)  # a new inode, as huggingface_hub does
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            snapshot.unlink(missing_ok=True)
            snapshot.symlink_to(blob)
        return str(snapshot)

    def get_paths_info(self, repo_id, paths, *, repo_type=None, **kwargs):
        return [SimpleNamespace(path=p, size=(self.repo_root / p).stat().st_size)
                for p in paths if (self.repo_root / p).is_file()]

    def shard_calls(self) -> list[str]:
        return [Path(f).name for f, _ in self.calls if f.endswith(".bin")]


def train_tiny_tokenizer(path: Path) -> None:
    """A small SentencePiece BPE model with the published model's settings (ids 0..3 reserved)."""
    import sentencepiece as spm
    from pydoc_data.topics import topics

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([t for _, t in sorted(topics.items())][:30]), model_writer=buf, model_type="bpe",
        vocab_size=TINY_VOCAB, character_coverage=1.0, byte_fallback=False, normalization_rule_name="nmt_nfkc",
        add_dummy_prefix=False, split_digits=True, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        hard_vocab_limit=False, minloglevel=2,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def shard_tokens(seed: int, n_docs: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([np.concatenate([[BOS_ID], rng.integers(4, TINY_VOCAB, size=int(rng.integers(3, 12)))])
                           for _ in range(n_docs)]).astype(np.uint16)


def build_export(repo_root: Path, *, root: str = ROOT, n_train: int = N_TRAIN) -> dict:
    """A small export under ``repo_root/root``, laid out and described like the published one."""
    base = repo_root / root
    ddir = base / "datasets" / DATASET
    ddir.mkdir(parents=True)
    val = shard_tokens(10_000, 20)
    write_shard(ddir / "fineweb_val_000000.bin", val)
    for i in range(n_train):
        write_shard(ddir / f"fineweb_train_{i:06d}.bin", shard_tokens(i, 4))
    train_tiny_tokenizer(base / "tokenizers" / "fineweb_1024_bpe.model")
    (base / "tokenizers" / "fineweb_1024_bpe.vocab").write_text("<pad>\t0\n<s>\t0\n", encoding="utf-8")
    byte_dir = base / "datasets" / "fineweb10B_byte260"
    byte_dir.mkdir()
    write_shard(byte_dir / "fineweb_val_000000.bin", shard_tokens(7, 3))
    (base / "tokenizers" / "fineweb_pure_byte_260.json").write_text('{"tokenizer_type": "pure_byte"}\n')
    (base / "docs_selected.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    (base / "docs_selected.source_manifest.json").write_text('{"num_docs": 2}\n', encoding="utf-8")
    manifest = {
        "version": "10B", "shard_size": 100_000_000,
        "datasets": [
            {"name": DATASET, "tokenizer_name": "sp_bpe_1024", "tokenizer_kind": "sentencepiece_bpe",
             "path": f"datasets/{DATASET}", "vocab_size": TINY_VOCAB,
             "stats": {"files_train": n_train, "files_val": 1, "tokens_val": int(val.size), "docs_val": 20}},
            {"name": "fineweb10B_sp4096", "tokenizer_name": "sp_bpe_4096", "stats": {"files_train": 100, "files_val": 1}},
            {"name": "fineweb10B_byte260", "tokenizer_name": "pure_byte_260", "stats": {"files_train": 0, "files_val": 1}},
        ],
        "tokenizers": [
            {"name": "sp_bpe_1024", "kind": "sentencepiece_bpe", "vocab_size": TINY_VOCAB,
             "model_path": "tokenizers/fineweb_1024_bpe.model", "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"},
            {"name": "sp_bpe_4096", "vocab_size": 4096, "model_path": "tokenizers/fineweb_4096_bpe.model"},
            {"name": "pure_byte_260", "kind": "byte", "vocab_size": 260, "path": "tokenizers/fineweb_pure_byte_260.json"},
        ],
    }
    write_manifest(repo_root, manifest, root)
    return manifest


def write_manifest(repo_root: Path, manifest: dict, root: str = ROOT) -> None:
    (repo_root / root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    repo_root = tmp_path_factory.mktemp("hub_repo")
    build_export(repo_root)
    return repo_root


@pytest.fixture
def api(export_dir, tmp_path) -> FakeApi:
    return FakeApi(export_dir, tmp_path / "hf_cache")


@pytest.fixture
def fresh(tmp_path):
    """An export of our own (to change its manifest or files) and its FakeApi."""
    repo_root = tmp_path / "repo"
    manifest = build_export(repo_root, n_train=5)
    return repo_root, manifest, FakeApi(repo_root, tmp_path / "cache")


def run(data_dir: Path, api, *args: str) -> int:
    return ccf.main(["--data-dir", str(data_dir), *args], api=api)


def remote_shard(export_dir: Path, name: str) -> Path:
    return export_dir / ROOT / "datasets" / DATASET / name


def no_partials(data_dir: Path) -> bool:
    return not [p for p in data_dir.rglob("*") if p.name.endswith(ccf.PARTIAL_SUFFIX)]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("progress: ")]


# --------------------------------------------------------------------------- what is fetched, and where


def test_train_shard_prefix_layout_and_progress(api, export_dir, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, api, "--variant", "sp1024", "--train-shards", "3") == 0
    ddir = data / "datasets" / DATASET
    assert sorted(p.name for p in ddir.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin", "fineweb_val_000000.bin"]
    for name in ("fineweb_val_000000.bin", "fineweb_train_000002.bin"):
        assert (ddir / name).read_bytes() == remote_shard(export_dir, name).read_bytes()
    assert api.shard_calls() == ["fineweb_val_000000.bin", "fineweb_train_000000.bin",
                                 "fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    assert (data / "tokenizers" / "fineweb_1024_bpe.vocab").is_file()
    assert json.loads((data / "datasets" / "manifest.json").read_text())["datasets"][0]["name"] == DATASET
    assert api.calls[0][0] == "datasets/manifest.json"
    out, err = capsys.readouterr()
    assert "[1/6] datasets/fineweb10B_sp1024/fineweb_val_000000.bin: ok (" in out
    assert f"[5/6] tokenizers/fineweb_1024_bpe.model: ok (SentencePiece model, vocab {TINY_VOCAB}, " in out
    assert f"done: 6 downloaded, 0 already present. DATA_PATH={ddir} " in out
    assert f"TOKENIZER_PATH={data / 'tokenizers' / 'fineweb_1024_bpe.model'}" in out
    # one overall progress line per finished file on stderr: files, bytes of the total, rate and ETA
    progress = err.strip().splitlines()
    total = sum(p.stat().st_size for p in ddir.iterdir()) + sum(p.stat().st_size for p in (data / "tokenizers").iterdir())
    assert len(progress) == 6 and all(re.fullmatch(r"progress: \d/6 files, .* of .* \(\d+%\), .*/s, ETA \d+s", line)
                                      for line in progress), progress
    assert progress[-1].startswith(f"progress: 6/6 files, {ccf._size(total)} of {ccf._size(total)} (100%)")
    assert no_partials(data)


def test_hub_progress_bars_are_off_when_stderr_is_not_a_terminal(api, tmp_path):
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    enable_progress_bars()
    try:
        assert run(tmp_path / "data", api, "--train-shards", "0") == 0  # under pytest, stderr is not a terminal
        assert are_progress_bars_disabled()
    finally:
        enable_progress_bars()


def test_default_is_80_train_shards_and_more_than_published_is_refused(api, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, api) == 0
    assert sorted(p.name for p in (data / "datasets" / DATASET).glob("fineweb_train_*.bin")) == [
        f"fineweb_train_{i:06d}.bin" for i in range(80)]
    api.calls.clear()
    assert run(data, api, "--train-shards", str(N_TRAIN + 1)) == 1
    assert f"--train-shards {N_TRAIN + 1}: {DATASET} has only {N_TRAIN} train shards" in capsys.readouterr().err
    assert api.shard_calls() == []


def test_positional_count_zero_and_usage_errors(api, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, api, "0") == 0
    assert sorted(p.name for p in (data / "datasets" / DATASET).iterdir()) == ["fineweb_val_000000.bin"]
    for args, message in ((["--train-shards", "-1"], "--train-shards must be 0 or more"),
                          (["--variant", "gpt2"], "unsupported variant 'gpt2'; expected sp<VOCAB_SIZE>"),
                          (["1", "--train-shards", "2"], "give the train shard count once")):
        with pytest.raises(SystemExit) as exc:
            run(data, api, *args)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_byte260_and_with_docs(api, export_dir, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, api, "--variant", "byte260", "--with-docs") == 0
    assert (data / "datasets" / "fineweb10B_byte260" / "fineweb_val_000000.bin").is_file()
    assert (data / "tokenizers" / "fineweb_pure_byte_260.json").is_file()
    for name in ccf.DOCS_FILES:
        assert (data / "datasets" / name).read_bytes() == (export_dir / ROOT / name).read_bytes()
    out = capsys.readouterr().out
    assert "[1/4] docs_selected.jsonl: ok (" in out and "and the documents" in out
    # an incomplete documents file (cut mid-line) is fetched again (past the cache: it shares the blob's inode)
    docs = data / "datasets" / "docs_selected.jsonl"
    docs.write_bytes(docs.read_bytes()[:-3])
    api.calls.clear()
    assert run(data, api, "--variant", "byte260", "--with-docs") == 0
    assert api.calls == [("datasets/docs_selected.jsonl", False), ("datasets/docs_selected.jsonl", True)]
    assert "docs_selected.jsonl: present but incomplete or damaged (the last line is not complete JSON" in capsys.readouterr().out


# --------------------------------------------------------------------------- resume


def test_resume_skips_complete_files_and_refetches_a_truncated_shard(api, export_dir, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, api, "--train-shards", "4") == 0
    target = data / "datasets" / DATASET / "fineweb_train_000001.bin"
    assert target.stat().st_nlink == 2  # hard-linked to the cache's blob
    capsys.readouterr()

    api.calls.clear()
    assert run(data, api, "--train-shards", "4") == 0
    assert api.calls == []  # nothing downloaded, not even the manifest
    out, err = capsys.readouterr()
    assert out.count(": already present (") == 1 + 1 + 4 + 2 and "done: 0 downloaded, 7 already present" in out
    assert err == ""

    with open(target, "r+b") as f:  # truncating the hard link damages the cached blob too
        f.truncate(target.stat().st_size - 10)
    api.calls.clear()
    assert run(data, api, "--train-shards", "4") == 0
    assert api.calls == [(f"{ROOT}/datasets/{DATASET}/fineweb_train_000001.bin", force) for force in (False, True)]
    assert target.read_bytes() == remote_shard(export_dir, target.name).read_bytes()
    out = capsys.readouterr().out
    assert "fineweb_train_000001.bin: present but incomplete or damaged (header says" in out
    assert "the file served is damaged (header says" in out and "downloading again past the Hugging Face cache" in out
    assert no_partials(data)

    api.calls.clear()  # asking for more shards later fetches only the new ones
    assert run(data, api, "--train-shards", "6") == 0
    assert api.shard_calls() == ["fineweb_train_000004.bin", "fineweb_train_000005.bin"]


# --------------------------------------------------------------------------- failures leave nothing partial


def test_damaged_transfer_installs_nothing_and_rerun_completes(api, tmp_path, capsys):
    data = tmp_path / "data"
    bad = f"{ROOT}/datasets/{DATASET}/fineweb_train_000002.bin"
    api.truncate.add(bad)
    assert run(data, api, "--train-shards", "4") == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {bad} from {ccf.DEFAULT_REPO_ID} arrived damaged twice (header says")
    ddir = data / "datasets" / DATASET
    assert sorted(p.name for p in ddir.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    assert [c for c in api.calls if c[0] == bad] == [(bad, False), (bad, True)]

    api.truncate.clear()  # served whole again; the cache still holds the damaged copy
    api.calls.clear()
    assert run(data, api, "--train-shards", "4") == 0
    assert [(Path(f).name, force) for f, force in api.calls if f.endswith(".bin")] == [
        ("fineweb_train_000002.bin", False), ("fineweb_train_000002.bin", True), ("fineweb_train_000003.bin", False)]
    assert no_partials(data)


def test_connection_lost_mid_download_leaves_nothing_partial(api, tmp_path, capsys):
    data = tmp_path / "data"
    lost = f"{ROOT}/datasets/{DATASET}/fineweb_train_000001.bin"
    api.raise_on[lost] = ConnectionResetError("peer closed connection without sending complete message body")
    assert run(data, api, "--train-shards", "3") == ccf.EXIT_UNREACHABLE
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and f"cannot be reached ({lost}: ConnectionResetError: peer closed" in errors[0]
    assert sorted(p.name for p in (data / "datasets" / DATASET).iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_val_000000.bin"]
    assert no_partials(data)
    del api.raise_on[lost]
    api.calls.clear()
    assert run(data, api, "--train-shards", "3") == 0
    assert api.shard_calls() == ["fineweb_train_000001.bin", "fineweb_train_000002.bin"]


def test_failed_copy_leaves_no_partial_file(api, tmp_path, capsys, monkeypatch):
    def no_hard_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    def disk_full(src, dst):
        with open(dst, "wb") as f:  # half a file, then the disk is full
            f.write(Path(src).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ccf.os, "link", no_hard_links)
    monkeypatch.setattr(ccf.shutil, "copyfile", disk_full)
    data = tmp_path / "data"
    assert run(data, api, "--train-shards", "1") == 1
    assert "manifest.json.partial ([Errno 28] No space left on device); check the free space" in capsys.readouterr().err
    assert no_partials(data) and not (data / "datasets" / "manifest.json").exists()


# --------------------------------------------------------------------------- offline


def _offline_errors():
    """What hf_hub_download raises without network (huggingface_hub 2.x: LocalEntryNotFoundError over ConnectError)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    local = LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub and we cannot "
                                    "find the requested files in the local cache.")
    local.__cause__ = ConnectionError("[Errno -2] Name or service not known")
    return [pytest.param(OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled."),
                         "OfflineModeIsEnabled: Cannot reach", id="offline-mode"),
            pytest.param(local, "ConnectionError: [Errno -2] Name or service not known", id="local-entry"),
            pytest.param(TimeoutError("timed out"), "TimeoutError: timed out", id="timeout")]


@pytest.mark.parametrize("error, reason", _offline_errors())
def test_offline_gives_one_line_naming_data_path_and_exit_3(api, tmp_path, capsys, error, reason):
    data = tmp_path / "data"
    api.raise_on[f"{ROOT}/manifest.json"] = error
    assert run(data, api) == ccf.EXIT_UNREACHABLE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: the Hugging Face Hub cannot be reached ({ROOT}/manifest.json: {reason}")
    assert "DATA_PATH=" in lines[0] and "TOKENIZER_PATH=" in lines[0] and "python3 data/build_sample.py" in lines[0]
    assert not data.exists() or not [p for p in data.rglob("*") if p.is_file()]


def test_offline_files_come_from_the_cache_at_once(api, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    assert run(data, api, "--train-shards", "2") == 0
    shutil.rmtree(data)
    no_answer = "https://huggingface.co: ConnectError: [Errno -2] Name or service not known"
    monkeypatch.setattr(ccf, "connect", lambda: (api, no_answer))  # the quick request got no answer
    capsys.readouterr()
    assert run(data, None, "--train-shards", "2") == 0  # everything it needs is in the Hugging Face cache
    assert (data / "datasets" / DATASET / "fineweb_train_000001.bin").is_file()
    progress = capsys.readouterr().err.splitlines()  # no sizes from the Hub: no total and no ETA
    assert len(progress) == 5 and all(re.fullmatch(r"progress: \d/5 files, [^,]+, .*/s", line) for line in progress)
    assert run(data, None, "--train-shards", "3") == ccf.EXIT_UNREACHABLE
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: the Hugging Face Hub cannot be reached ({no_answer}; {ROOT}/datasets/{DATASET}/"
                     f"fineweb_train_000002.bin is not in the Hugging Face cache). {ccf.OFFLINE_HINT}"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:{port}"}],
                         ids=["HF_HUB_OFFLINE", "no-answer"])
def test_real_hub_unreachable_is_reported_in_seconds(tmp_path, env):
    """The real huggingface_hub, no network used: the reachability check answers before any download is
    tried (without it, a refused connection went through about 23 s of retries, each a stderr line)."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf_home"), **{k: v.format(port=closed_port()) for k, v in env.items()})
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == ccf.EXIT_UNREACHABLE, proc.stderr
    assert proc.stderr.startswith("error: the Hugging Face Hub cannot be reached (") and proc.stderr.count("\n") == 1
    assert "DATA_PATH=" in proc.stderr and "TOKENIZER_PATH=" in proc.stderr
    assert not (tmp_path / "data").exists() or not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


# --------------------------------------------------------------------------- what the export says


def test_missing_file_in_the_export_names_it(api, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", "wrong_root")
    assert run(tmp_path / "data", api) == 1
    err = capsys.readouterr().err
    assert "wrong_root/manifest.json does not exist in" in err and "check MATCHED_FINEWEB_REMOTE_ROOT_PREFIX" in err


def test_unknown_variant_lists_the_published_ones(api, tmp_path, capsys):
    assert run(tmp_path / "data", api, "--variant", "sp9999") == 1
    assert "variant 'sp9999' is not in the manifest (published variants: byte260, sp1024, sp4096)" in \
           capsys.readouterr().err


def test_a_stale_local_manifest_is_fetched_again_once(fresh, tmp_path, capsys):
    repo_root, manifest, api = fresh
    data = tmp_path / "data"
    (data / "datasets").mkdir(parents=True)
    (data / "datasets" / "manifest.json").write_text(json.dumps({"datasets": [], "tokenizers": []}))
    assert run(data, api, "--train-shards", "1") == 0
    assert "is not in the local" in capsys.readouterr().out
    assert json.loads((data / "datasets" / "manifest.json").read_text()) == manifest


def test_skip_manifest_uses_the_local_copy_only(fresh, tmp_path, capsys):
    repo_root, manifest, api = fresh
    data = tmp_path / "data"
    assert run(data, api, "--skip-manifest") == 1
    assert "--skip-manifest: no valid manifest at" in capsys.readouterr().err and api.calls == []
    (data / "datasets").mkdir(parents=True)
    (data / "datasets" / "manifest.json").write_text(json.dumps(manifest))
    assert run(data, api, "--skip-manifest", "0") == 0
    assert "manifest.json" not in {Path(f).name for f, _ in api.calls}


@pytest.mark.parametrize("change, message", [
    (lambda m: m["datasets"][0].pop("stats"), "missing 'stats'"),
    (lambda m: m["datasets"][0]["stats"].pop("files_val"), "missing 'files_val'"),
    (lambda m: m.update(datasets={DATASET: {"stats": {}}}), "published manifest layout"),  # name-keyed
    (lambda m: m["tokenizers"][0].update(model_path="/export/tokenizers/x.model"), "needs relative model_path"),
    (lambda m: m["tokenizers"].pop(0), "names tokenizer 'sp_bpe_1024', which the manifest's tokenizers[] does not"),
])
def test_a_manifest_off_the_published_layout_is_one_clear_error(fresh, tmp_path, capsys, change, message):
    repo_root, manifest, api = fresh
    change(manifest)
    write_manifest(repo_root, manifest)
    assert run(tmp_path / "data", api) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and '"tokenizer_name"' in lines[0], lines
    assert api.shard_calls() == []


def test_val_token_count_must_match_the_manifest(fresh, tmp_path, capsys):
    repo_root, manifest, api = fresh
    manifest["datasets"][0]["stats"]["tokens_val"] += 1
    write_manifest(repo_root, manifest)
    assert run(tmp_path / "data", api, "--train-shards", "1") == 1
    assert "the export and its manifest disagree" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (b"not a sentencepiece model", "not a loadable SentencePiece model"),
    (None, f"vocabulary of {TINY_VOCAB} pieces, the manifest says 1024"),
])
def test_a_bad_tokenizer_is_not_installed(fresh, tmp_path, capsys, damage, message):
    repo_root, manifest, api = fresh
    if damage is not None:
        (repo_root / ROOT / "tokenizers" / "fineweb_1024_bpe.model").write_bytes(damage)
    else:
        del manifest["datasets"][0]["vocab_size"]
        manifest["tokenizers"][0]["vocab_size"] = 1024
        write_manifest(repo_root, manifest)
    assert run(tmp_path / "data", api, "--train-shards", "1") == 1
    err = capsys.readouterr().err
    assert "tokenizers/fineweb_1024_bpe.model from" in err and message in err
    assert not (tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model").exists()
    assert no_partials(tmp_path / "data")


def test_downloaded_data_passes_shard_tool_validate(fresh, tmp_path):
    import shard_tool

    repo_root, manifest, api = fresh
    del manifest["shard_size"]  # the stand-in's shards are tiny, not 100M tokens
    write_manifest(repo_root, manifest)
    data = tmp_path / "data"
    assert run(data, api, "--train-shards", "3") == 0
    report = shard_tool.validate(data / "datasets" / DATASET)
    assert report.problems == []
    assert f"vocabulary: {TINY_VOCAB} (from {data / 'datasets' / 'manifest.json'})" in report.lines
    assert f"train shards present: 3 of 5 in {data / 'datasets' / 'manifest.json'}" in report.lines


def test_list_prints_the_published_variants(api, export_dir, tmp_path, capsys):
    assert run(tmp_path / "data", api, "--list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [
        ["byte260", "fineweb10B_byte260"], ["sp1024", DATASET], ["sp4096", "fineweb10B_sp4096"]]
    val_tokens = read_header(remote_shard(export_dir, "fineweb_val_000000.bin"))
    assert (f"train shards   {N_TRAIN}, val shards 1, {val_tokens:,} val tokens; tokenizer "
            f"tokenizers/fineweb_1024_bpe.model, tokenizers/fineweb_1024_bpe.vocab (vocab {TINY_VOCAB})") in lines[2]
    assert api.shard_calls() == []


def test_env_vars_choose_repository_and_root(tmp_path, monkeypatch):
    repo_root = tmp_path / "mirror"
    build_export(repo_root, root="export", n_train=3)
    api = FakeApi(repo_root, tmp_path / "cache", repo_id="someone/mirror")
    monkeypatch.setenv("MATCHED_FINEWEB_REPO_ID", "someone/mirror")
    monkeypatch.setenv("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", "export")
    assert run(tmp_path / "data", api, "--train-shards", "2") == 0
    assert {f.split("/")[0] for f, _ in api.calls} == {"export"}
    assert (tmp_path / "data" / "datasets" / DATASET / "fineweb_train_000001.bin").is_file()


def test_help_documents_every_option():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("--variant", "byte260", "--train-shards", "--with-docs", "--skip-manifest", "--list", "--data-dir",
                 "MATCHED_FINEWEB_REPO_ID", "MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", "build_sample.py", "Exit status"):
        assert word in proc.stdout, word
