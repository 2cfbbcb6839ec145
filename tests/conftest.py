"""Shared fixtures: the offline sample dataset and a runner for tiny train_gpt.py runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Triton kernels run on CPU tensors only in Triton's interpreter, which is chosen when a kernel is defined
# (train_gpt.py's import): set it before any test imports train_gpt, and for the runs the tests start.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "data"))

from configs import named_config  # noqa: E402  (the repository root is on sys.path above)

TINY_ENV = named_config("tiny")  # every feature on, seconds per run on CPU


def real_tokenizer_path() -> Path:
    env = os.environ.get("ASQU_GOLF_REAL_TOKENIZER")
    return Path(env) if env else REPO.parent / "shared" / "data" / "fineweb_1024_bpe.model"


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> dict:
    """The offline sample (vocab 1024) built once per test session."""
    from build_sample import build_sample

    root = tmp_path_factory.mktemp("sample")
    info = build_sample(root / "ds", root / "tok", vocab_size=1024)
    return {"data_path": str(info["out_dir"]), "tokenizer": str(info["tokenizer"])}


SMALL_VAL_TOKENS = 4097  # 32 evaluation sequences of 128 tokens and the last one's target


@pytest.fixture(scope="session")
def small_data(sample_data, tmp_path_factory) -> dict:
    """The sample with its validation shard cut to SMALL_VAL_TOKENS (of ~47,000): the same train shards (links),
    the same tokenizer, and every evaluation of a tiny run scores 11x fewer tokens. The runs of run_train read it;
    a test of the whole sample names sample_data."""
    from shard_io import read_shard, write_shard

    root = tmp_path_factory.mktemp("small") / "ds"  # named as the sample is: logs show the dataset "ds"
    root.mkdir()
    src = Path(sample_data["data_path"])
    for shard in sorted(src.glob("fineweb_train_*.bin")):
        (root / shard.name).symlink_to(shard)
    write_shard(root / "fineweb_val_000000.bin", read_shard(src / "fineweb_val_000000.bin")[:SMALL_VAL_TOKENS])
    return {"data_path": str(root), "tokenizer": sample_data["tokenizer"]}


def run_trainer(data: dict, cwd: Path, nproc: int = 1, check: bool = True, timeout: int = 300,
                script: list[str] | None = None, **overrides) -> subprocess.CompletedProcess:
    """Run train_gpt.py in cwd on data with TINY_ENV plus overrides; nproc > 1 uses torchrun.
    script: the command after python (or torchrun) instead of train_gpt.py, e.g. a wrapper and its arguments."""
    env = {k: v for k, v in os.environ.items() if k not in TINY_ENV}
    env.update(TINY_ENV, DATA_PATH=data["data_path"], TOKENIZER_PATH=data["tokenizer"], OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in overrides.items()})
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    cmd += script or [str(REPO / "train_gpt.py")]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"train_gpt.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def run_train(small_data, tmp_path):
    """run_trainer on small_data, in tmp_path unless cwd=... is given."""

    def run(nproc: int = 1, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
        return run_trainer(small_data, cwd or tmp_path, nproc, **kwargs)

    return run


# The runs below are shared by the tests that read them (session-scoped): read their files, copy what a test changes.

@pytest.fixture(scope="session")
def trained_run(small_data, tmp_path_factory) -> tuple[Path, str, Path]:
    """One finished tiny run (1 process, RUN_ID=trained): its folder, its log's text and its artifact."""
    folder = tmp_path_factory.mktemp("trained")
    run_trainer(small_data, folder, timeout=600, RUN_ID="trained")
    return folder, (folder / "logs/trained.txt").read_text(), folder / "runs/trained/final_model.int6.ptz"


# Runs the trainer as __main__ after registering an atexit handler that reports, on stderr, the gloo threads still
# alive (tests/test_clean_exit.py). atexit handlers run last registered first, so this one runs after every handler
# the trainer and torch register, just before the interpreter starts finalizing.
THREAD_CHECK = '''import atexit, os, runpy, sys
def _report():
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{tid}/comm").read().strip())
        except OSError:
            pass
    gloo = sorted(n for n in names if "gloo" in n)
    print(f"thread_check rank:{os.environ.get('RANK', '0')} gloo_threads_at_exit:{len(gloo)} {gloo}",
          file=sys.stderr, flush=True)
atexit.register(_report)
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


@pytest.fixture(scope="session")
def two_process_run(small_data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One tiny torchrun run of 2 processes with late QAT (LATE_QAT_THRESHOLD=0.4), its default RUN_ID, under
    THREAD_CHECK: its folder and its process (not checked: the tests assert its exit). Read by the end-to-end test,
    the 1-vs-2-process comparison and the clean-exit test."""
    folder = tmp_path_factory.mktemp("two_process")
    wrapper = folder.parent / "thread_check.py"  # beside the run's folder, not in it
    wrapper.write_text(THREAD_CHECK)
    proc = run_trainer(small_data, folder, nproc=2, check=False, timeout=900,
                       script=[str(wrapper), str(REPO / "train_gpt.py")], LATE_QAT_THRESHOLD=0.4)
    return folder, proc
