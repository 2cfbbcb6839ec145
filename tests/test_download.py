"""Tests of data/cached_challenge_fineweb.py against a local stand-in for the Hugging Face Hub.

The stand-in (``FakeHub``) serves a folder laid out like the published export
(``<root>/manifest.json``, ``<root>/datasets/<name>/fineweb_*.bin``,
``<root>/tokenizers/...``) through a function with ``hf_hub_download``'s keyword
interface, and keeps a cache the way the real one does (a snapshot symlink to a
blob), so the downloader's linking, resume and retry paths run for real. Nothing
here touches the network: the one test that runs the real ``hf_hub_download``
sets ``HF_HUB_OFFLINE=1``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
if str(DATA) not in sys.path:
    sys.path.insert(0, str(DATA))

import cached_challenge_fineweb as ccf  # noqa: E402
from shard_io import BOS_ID, read_header, write_shard  # noqa: E402

DATASET = "fineweb10B_sp1024"
ROOT = "datasets"
N_TRAIN = 85  # more than the default 80, so the default prefix is observable
TINY_VOCAB = 256


# --------------------------------------------------------------------------- the stand-in hub


class FakeHub:
    """A download function serving ``repo_root`` like ``hf_hub_download`` serves a dataset repo."""

    def __init__(self, repo_root: Path, cache: Path, repo_id: str = ccf.DEFAULT_REPO_ID):
        self.repo_root = repo_root
        self.cache = cache
        self.repo_id = repo_id
        self.calls: list[tuple[str, bool]] = []
        self.raise_on: dict[str, BaseException] = {}  # filename -> exception
        self.truncate: set[str] = set()  # filenames served cut short (a damaged transfer)

    def __call__(self, repo_id, filename, *, repo_type=None, revision=None, cache_dir=None,
                 force_download=False, **kwargs):
        assert repo_id == self.repo_id, repo_id
        assert repo_type == "dataset"
        self.calls.append((filename, force_download))
        if filename in self.raise_on:
            raise self.raise_on[filename]
        source = self.repo_root / filename
        if not source.is_file():
            from huggingface_hub.errors import EntryNotFoundError

            raise EntryNotFoundError(f"404 Client Error: Entry Not Found for url: .../{filename}")
        data = source.read_bytes()
        if filename in self.truncate:
            data = data[: len(data) - 7]
        snapshot = self.cache / "snapshots" / "main" / filename
        if force_download or not snapshot.exists():
            blob = self.cache / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = blob.with_suffix(".incomplete")
            tmp.write_bytes(data)
            tmp.replace(blob)  # a new inode, as huggingface_hub does
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            if snapshot.is_symlink():
                snapshot.unlink()
            snapshot.symlink_to(blob)
        return str(snapshot)

    def shard_calls(self) -> list[str]:
        return [Path(f).name for f, _ in self.calls if f.endswith(".bin")]


def train_tiny_tokenizer(path: Path) -> None:
    """A small SentencePiece BPE model with the published model's settings (ids 0..3 reserved)."""
    import sentencepiece as spm
    from pydoc_data.topics import topics

    texts = [text for _, text in sorted(topics.items())][:30]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=buf, model_type="bpe", vocab_size=TINY_VOCAB,
        character_coverage=1.0, byte_fallback=False, normalization_rule_name="nmt_nfkc",
        add_dummy_prefix=False, split_digits=True, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        hard_vocab_limit=False, minloglevel=2,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def shard_tokens(seed: int, n_docs: int) -> np.ndarray:
    """BOS-prefixed random documents (ids 4..TINY_VOCAB-1), distinct per seed."""
    rng = np.random.default_rng(seed)
    docs = [np.concatenate([[BOS_ID], rng.integers(4, TINY_VOCAB, size=int(rng.integers(3, 12)))])
            for _ in range(n_docs)]
    return np.concatenate(docs).astype(np.uint16)


def build_export(repo_root: Path, *, root: str = ROOT, n_train: int = N_TRAIN, manifest: dict | None = None) -> dict:
    """Lay out a small export under ``repo_root/root`` the way the published one is laid out."""
    base = repo_root / root if root else repo_root
    ddir = base / "datasets" / DATASET
    ddir.mkdir(parents=True)
    val = shard_tokens(10_000, 20)
    write_shard(ddir / "fineweb_val_000000.bin", val)
    for i in range(n_train):
        write_shard(ddir / f"fineweb_train_{i:06d}.bin", shard_tokens(i, 4))
    train_tiny_tokenizer(base / "tokenizers" / "fineweb_1024_bpe.model")
    (base / "tokenizers" / "fineweb_1024_bpe.vocab").write_text("<pad>\t0\n<s>\t0\n", encoding="utf-8")
    if manifest is None:
        manifest = {
            "version": "10B",
            "shard_size": 100_000_000,
            "datasets": [
                {
                    "name": DATASET, "tokenizer_name": "sp_bpe_1024", "path": f"datasets/{DATASET}",
                    "vocab_size": TINY_VOCAB,
                    "stats": {"files_train": n_train, "files_val": 1, "tokens_val": int(val.size),
                              "docs_val": 20},
                },
                {"name": "fineweb10B_sp4096", "tokenizer_name": "sp_bpe_4096",
                 "stats": {"files_train": 100, "files_val": 1}},
            ],
            "tokenizers": [
                {"name": "sp_bpe_1024", "kind": "sentencepiece_bpe", "vocab_size": TINY_VOCAB,
                 "model_path": "tokenizers/fineweb_1024_bpe.model", "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"},
                {"name": "sp_bpe_4096", "kind": "sentencepiece_bpe", "vocab_size": 4096,
                 "model_path": "tokenizers/fineweb_4096_bpe.model"},
            ],
        }
    (base / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    repo_root = tmp_path_factory.mktemp("hub_repo")
    build_export(repo_root)
    return repo_root


@pytest.fixture
def hub(export_dir, tmp_path) -> FakeHub:
    return FakeHub(export_dir, tmp_path / "hf_cache")


def run(data_dir: Path, fake, *args: str) -> int:
    return ccf.main(["--data-dir", str(data_dir), *args], download_fn=fake)


def remote_shard(export_dir: Path, name: str) -> Path:
    return export_dir / ROOT / "datasets" / DATASET / name


def local_files(data_dir: Path) -> list[str]:
    return sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file() or p.is_symlink())


def no_partials(data_dir: Path) -> bool:
    return not [p for p in data_dir.rglob("*") if p.name.endswith(ccf.PARTIAL_SUFFIX)]


# --------------------------------------------------------------------------- prefix and layout


def test_train_shard_prefix_is_exactly_the_first_n(hub, export_dir, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, hub, "--variant", "sp1024", "--train-shards", "3") == 0
    ddir = data / "datasets" / DATASET
    assert sorted(p.name for p in ddir.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin", "fineweb_val_000000.bin"]
    for name in ("fineweb_val_000000.bin", "fineweb_train_000000.bin", "fineweb_train_000002.bin"):
        assert (ddir / name).read_bytes() == remote_shard(export_dir, name).read_bytes()
    assert hub.shard_calls() == ["fineweb_val_000000.bin", "fineweb_train_000000.bin",
                                 "fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    assert (data / "tokenizers" / "fineweb_1024_bpe.model").read_bytes() == (
        export_dir / ROOT / "tokenizers" / "fineweb_1024_bpe.model").read_bytes()
    assert (data / "tokenizers" / "fineweb_1024_bpe.vocab").is_file()
    assert json.loads((data / "datasets" / "manifest.json").read_text())["datasets"][0]["name"] == DATASET
    assert [f for f, _ in hub.calls][0] == "datasets/manifest.json"
    out = capsys.readouterr().out
    assert "[1/6] datasets/fineweb10B_sp1024/fineweb_val_000000.bin: ok (" in out
    assert "[4/6] datasets/fineweb10B_sp1024/fineweb_train_000002.bin: ok (" in out
    assert f"[5/6] tokenizers/fineweb_1024_bpe.model: ok (SentencePiece model, vocab {TINY_VOCAB}, " in out
    assert "done: 6 downloaded, 0 already present" in out
    assert no_partials(data)


def test_default_downloads_80_train_shards(hub, tmp_path):
    data = tmp_path / "data"
    assert run(data, hub) == 0
    names = sorted(p.name for p in (data / "datasets" / DATASET).glob("fineweb_train_*.bin"))
    assert names == [f"fineweb_train_{i:06d}.bin" for i in range(80)]
    assert "fineweb_train_000080.bin" not in hub.shard_calls()


def test_more_shards_than_published_is_refused(hub, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, hub, "--train-shards", str(N_TRAIN + 1)) == 1
    err = capsys.readouterr().err
    assert f"--train-shards {N_TRAIN + 1}: {DATASET} has only {N_TRAIN} train shards" in err
    assert not (data / "datasets" / DATASET).exists()
    assert hub.shard_calls() == []


def test_positional_count_and_zero_train_shards(hub, tmp_path):
    data = tmp_path / "data"
    assert run(data, hub, "0") == 0
    assert sorted(p.name for p in (data / "datasets" / DATASET).iterdir()) == ["fineweb_val_000000.bin"]


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("link, expected_calls", [
    ("copy", [False]),  # the cache is intact: one ordinary fetch
    ("hardlink", [False, True]),  # truncating the hard link damaged the cached blob too: refetch past the cache
])
def test_resume_skips_complete_files_and_refetches_a_truncated_shard(hub, export_dir, tmp_path, capsys, link,
                                                                     expected_calls):
    data = tmp_path / "data"
    assert run(data, hub, "--train-shards", "4", "--link", link) == 0
    target = data / "datasets" / DATASET / "fineweb_train_000001.bin"
    if link == "hardlink":
        assert target.stat().st_nlink == 2
    capsys.readouterr()

    hub.calls.clear()
    assert run(data, hub, "--train-shards", "4", "--link", link) == 0
    assert hub.calls == []  # nothing downloaded, not even the manifest
    out = capsys.readouterr().out
    assert out.count(": already present (") == 1 + 1 + 4 + 2  # manifest, val, train, tokenizer files
    assert "done: 0 downloaded, 7 already present" in out

    size = target.stat().st_size
    with open(target, "r+b") as f:
        f.truncate(size - 10)
    hub.calls.clear()
    assert run(data, hub, "--train-shards", "4", "--link", link) == 0
    assert hub.calls == [(f"{ROOT}/datasets/{DATASET}/fineweb_train_000001.bin", force) for force in expected_calls]
    assert target.read_bytes() == remote_shard(export_dir, target.name).read_bytes()
    out = capsys.readouterr().out
    assert "fineweb_train_000001.bin: present but incomplete or damaged (header says" in out
    assert no_partials(data)


def test_more_shards_later_fetches_only_the_new_ones(hub, tmp_path):
    data = tmp_path / "data"
    assert run(data, hub, "--train-shards", "2") == 0
    hub.calls.clear()
    assert run(data, hub, "--train-shards", "5") == 0
    assert hub.shard_calls() == ["fineweb_train_000002.bin", "fineweb_train_000003.bin", "fineweb_train_000004.bin"]


# --------------------------------------------------------------------------- failures


def test_damaged_transfer_installs_nothing_and_rerun_completes(hub, export_dir, tmp_path, capsys):
    data = tmp_path / "data"
    bad = f"{ROOT}/datasets/{DATASET}/fineweb_train_000002.bin"
    hub.truncate.add(bad)
    assert run(data, hub, "--train-shards", "4") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad} from {ccf.DEFAULT_REPO_ID} arrived damaged twice (header says")
    assert err.count("\n") == 1
    ddir = data / "datasets" / DATASET
    assert not (ddir / "fineweb_train_000002.bin").exists()
    assert sorted(p.name for p in ddir.iterdir()) == [
        "fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    assert [c for c in hub.calls if c[0] == bad] == [(bad, False), (bad, True)]

    hub.truncate.clear()  # the hub serves it whole again; its cache still holds the damaged copy
    hub.calls.clear()
    assert run(data, hub, "--train-shards", "4") == 0
    assert [(Path(f).name, force) for f, force in hub.calls if f.endswith(".bin")] == [
        ("fineweb_train_000002.bin", False), ("fineweb_train_000002.bin", True), ("fineweb_train_000003.bin", False)]
    for i in range(4):
        read_header(ddir / f"fineweb_train_{i:06d}.bin")
    assert no_partials(data)


def http_transport():
    """The HTTP library huggingface_hub uses: httpx2 (2.x), httpx (1.x); None for requests-based versions."""
    for name in ("httpx2", "httpx"):
        try:
            return __import__(name)
        except ImportError:
            pass
    return None


def test_connection_lost_mid_download_leaves_nothing_partial(hub, tmp_path, capsys):
    transport = http_transport()
    if transport is None:
        pytest.skip("neither httpx2 nor httpx is installed")
    data = tmp_path / "data"
    lost = f"{ROOT}/datasets/{DATASET}/fineweb_train_000001.bin"
    hub.raise_on[lost] = transport.ReadError("peer closed connection without sending complete message body")
    assert run(data, hub, "--train-shards", "3") == ccf.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert f"could not download {lost} from the Hugging Face Hub (ReadError: peer closed" in err
    ddir = data / "datasets" / DATASET
    assert sorted(p.name for p in ddir.iterdir()) == ["fineweb_train_000000.bin", "fineweb_val_000000.bin"]
    assert no_partials(data)

    del hub.raise_on[lost]
    hub.calls.clear()
    assert run(data, hub, "--train-shards", "3") == 0
    assert hub.shard_calls() == ["fineweb_train_000001.bin", "fineweb_train_000002.bin"]


def test_failed_copy_leaves_no_partial_file(hub, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    real_copyfile = shutil.copyfile

    def disk_full_on_train_shards(src, dst, *args, **kwargs):
        if "fineweb_train_" not in Path(dst).name:
            return real_copyfile(src, dst, *args, **kwargs)
        with open(dst, "wb") as f:  # half a file, then the disk is full
            f.write(Path(src).read_bytes()[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ccf.shutil, "copyfile", disk_full_on_train_shards)
    assert run(data, hub, "--train-shards", "1", "--link", "copy") == 1
    err = capsys.readouterr().err
    assert "fineweb_train_000000.bin.partial ([Errno 28] No space left on device); check the free space" in err
    assert no_partials(data)
    ddir = data / "datasets" / DATASET
    assert sorted(p.name for p in ddir.iterdir()) == ["fineweb_val_000000.bin"]


def _offline_errors():
    """The errors hf_hub_download raises without network, for the libraries installed here."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    params = [pytest.param(OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled."),
                           "OfflineModeIsEnabled: Cannot reach", id="offline-mode")]
    transport = http_transport()
    if transport is not None:
        # Observed with huggingface_hub 2.x and no DNS: LocalEntryNotFoundError caused by a ConnectError.
        local = LocalEntryNotFoundError(
            "An error happened while trying to locate the file on the Hub and we cannot find the requested "
            "files in the local cache. Please check your connection and try again or make sure your Internet "
            "connection is on.")
        local.__cause__ = transport.ConnectError("[Errno -2] Name or service not known")
        params += [
            pytest.param(local, "ConnectError: [Errno -2] Name or service not known", id="local-entry-from-connect"),
            pytest.param(transport.ConnectTimeout("timed out"), "ConnectTimeout: timed out", id="connect-timeout"),
        ]
    try:
        import requests  # what huggingface_hub < 1.0 raised

        params.append(pytest.param(
            requests.exceptions.ConnectionError("HTTPSConnectionPool(host='huggingface.co', port=443): Max retries"),
            "ConnectionError: HTTPSConnectionPool(host='huggingface.co'", id="requests-connection-error"))
    except ImportError:
        pass
    return params


@pytest.mark.parametrize("error, reason", _offline_errors())
def test_offline_gives_one_clear_message_and_exit_3(hub, tmp_path, capsys, error, reason):
    data = tmp_path / "data"
    hub.raise_on[f"{ROOT}/manifest.json"] = error
    assert run(data, hub) == ccf.EXIT_UNREACHABLE
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1
    line = err_lines[0]
    assert line.startswith(f"error: could not download {ROOT}/manifest.json from the Hugging Face Hub ({reason}")
    assert "needs network access to huggingface.co" in line
    assert "python3 data/build_sample.py" in line
    assert not data.exists() or local_files(data) == []


def test_real_hf_hub_download_offline(tmp_path):
    """The real hf_hub_download with HF_HUB_OFFLINE=1 (no network is touched) gives our message."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run(
        [sys.executable, str(DATA / "cached_challenge_fineweb.py"), "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == ccf.EXIT_UNREACHABLE, proc.stderr
    assert proc.stderr.startswith("error: could not download datasets/manifest.json from the Hugging Face Hub (")
    assert proc.stderr.count("\n") == 1
    assert "HF_HUB_OFFLINE is set" in proc.stderr and "python3 data/build_sample.py" in proc.stderr
    assert not (tmp_path / "data").exists() or local_files(tmp_path / "data") == []


def test_missing_file_in_the_export_names_it(hub, export_dir, tmp_path, capsys):
    data = tmp_path / "data"
    assert run(data, hub, "--remote-root", "wrong_root") == 1
    err = capsys.readouterr().err
    assert "wrong_root/datasets/fineweb10B_sp1024/fineweb_val_000000.bin does not exist in" in err
    assert "check --remote-root" in err


def test_unknown_variant_lists_the_published_ones(hub, tmp_path, capsys):
    assert run(tmp_path / "data", hub, "--variant", "sp9999") == 1
    err = capsys.readouterr().err
    assert "variant 'sp9999' is not in the manifest (published variants: sp1024, sp4096)" in err


def test_val_token_count_must_match_the_manifest(tmp_path, capsys):
    repo_root = tmp_path / "repo"
    manifest = build_export(repo_root, n_train=2)
    manifest["datasets"][0]["stats"]["tokens_val"] += 1
    (repo_root / ROOT / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert run(tmp_path / "data", FakeHub(repo_root, tmp_path / "cache"), "--train-shards", "1") == 1
    assert "the export and its manifest disagree" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (b"not a sentencepiece model", "not a loadable SentencePiece model"),
    (None, f"vocabulary of {TINY_VOCAB} pieces, the manifest says 1024"),
])
def test_a_bad_tokenizer_is_not_installed(tmp_path, capsys, damage, message):
    repo_root = tmp_path / "repo"
    manifest = build_export(repo_root, n_train=1)
    model = repo_root / ROOT / "tokenizers" / "fineweb_1024_bpe.model"
    if damage is not None:
        model.write_bytes(damage)
    else:
        manifest["tokenizers"][0]["vocab_size"] = 1024
        del manifest["datasets"][0]["vocab_size"]
        (repo_root / ROOT / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert run(tmp_path / "data", FakeHub(repo_root, tmp_path / "cache"), "--train-shards", "1") == 1
    err = capsys.readouterr().err
    assert "tokenizers/fineweb_1024_bpe.model from" in err and message in err
    assert not (tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model").exists()
    assert no_partials(tmp_path / "data")


def test_downloaded_data_passes_shard_tool_validate(tmp_path):
    import shard_tool

    repo_root = tmp_path / "repo"
    manifest = build_export(repo_root, n_train=5)
    del manifest["shard_size"]  # the stand-in's shards are tiny, not 100M tokens
    (repo_root / ROOT / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    data = tmp_path / "data"
    assert run(data, FakeHub(repo_root, tmp_path / "cache"), "--train-shards", "3") == 0
    report = shard_tool.validate(data / "datasets" / DATASET)
    assert report.problems == []
    assert f"vocabulary: {TINY_VOCAB} (from {data / 'datasets' / 'manifest.json'})" in report.lines
    assert f"train shards present: 3 of 5 in {data / 'datasets' / 'manifest.json'}" in report.lines


# --------------------------------------------------------------------------- manifest, list, env, help


def test_list_prints_the_published_variants(hub, export_dir, tmp_path, capsys):
    assert run(tmp_path / "data", hub, "--list") == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [line[:2] for line in lines] == [["sp1024", DATASET], ["sp4096", "fineweb10B_sp4096"]]
    val_tokens = read_header(remote_shard(export_dir, "fineweb_val_000000.bin"))
    assert f"train shards   {N_TRAIN}  val shards 1, {val_tokens:,} tokens" in out
    assert "tokenizers/fineweb_1024_bpe.model, tokenizers/fineweb_1024_bpe.vocab" in out
    assert hub.shard_calls() == []


def test_env_vars_choose_repository_and_root(tmp_path, monkeypatch):
    repo_root = tmp_path / "mirror"
    build_export(repo_root, root="export", n_train=3)
    fake = FakeHub(repo_root, tmp_path / "cache", repo_id="someone/mirror")
    monkeypatch.setenv("MATCHED_FINEWEB_REPO_ID", "someone/mirror")
    monkeypatch.setenv("MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", "export")
    assert run(tmp_path / "data", fake, "--train-shards", "2") == 0
    assert {f.split("/")[0] for f, _ in fake.calls} == {"export"}
    assert (tmp_path / "data" / "datasets" / DATASET / "fineweb_train_000001.bin").is_file()


@pytest.mark.parametrize("shape", ["relative", "absolute-paths", "name-keyed", "silent"])
def test_manifest_reader_is_tolerant(shape):
    entry = {"name": DATASET, "tokenizer_name": "tok", "stats": {"files_train": 195, "files_val": 1,
                                                                 "tokens_val": 62_021_846}}
    tok = {"name": "tok", "vocab_size": 1024, "model_path": "tokenizers/fineweb_1024_bpe.model",
           "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"}
    if shape == "relative":
        manifest = {"datasets": [dict(entry, path=f"datasets/{DATASET}")], "tokenizers": [tok]}
    elif shape == "absolute-paths":  # an export whose paths were never relativised
        manifest = {"datasets": [dict(entry, path=f"/export/out/datasets/{DATASET}")],
                    "tokenizers": [dict(tok, model_path="/export/out/tokenizers/fineweb_1024_bpe.model",
                                        vocab_path="/export/out/tokenizers/fineweb_1024_bpe.vocab")]}
    elif shape == "name-keyed":
        manifest = {"datasets": {DATASET: {k: v for k, v in entry.items() if k != "name"}},
                    "tokenizers": {"tok": {k: v for k, v in tok.items() if k != "name"}}}
    else:
        manifest = {"version": "10B"}
    plan = ccf.plan_variant(manifest, "sp1024")
    assert plan.dataset_name == DATASET
    assert plan.dataset_dir == f"datasets/{DATASET}"
    assert plan.val_total == 1 and plan.val_file(0) == "fineweb_val_000000.bin"
    assert plan.train_file(194) == "fineweb_train_000194.bin"
    if shape == "silent":
        assert plan.train_total is None and plan.tokens_val is None
        assert plan.tokenizer_files == ["tokenizers/fineweb_1024_bpe.model"]
    else:
        assert plan.train_total == 195 and plan.tokens_val == 62_021_846 and plan.vocab_size == 1024
        assert plan.tokenizer_files == ["tokenizers/fineweb_1024_bpe.model", "tokenizers/fineweb_1024_bpe.vocab"]


def test_help_documents_every_option():
    proc = subprocess.run([sys.executable, str(DATA / "cached_challenge_fineweb.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for word in ("--variant", "--train-shards", "--list", "--repo-id", "MATCHED_FINEWEB_REPO_ID", "--remote-root",
                 "MATCHED_FINEWEB_REMOTE_ROOT_PREFIX", "--revision", "--data-dir", "--cache-dir", "--link",
                 "--refresh-manifest", "--force", "build_sample.py", "Exit status"):
        assert word in proc.stdout, word


def test_negative_train_shards_is_a_usage_error(hub, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        run(tmp_path / "data", hub, "--train-shards", "-1")
    assert exc.value.code == 2
    assert "--train-shards must be 0 or more" in capsys.readouterr().err
