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


@pytest.fixture
def run_train(sample_data, tmp_path):
    """Run train_gpt.py in tmp_path (or cwd=...) with TINY_ENV plus overrides; nproc > 1 uses torchrun.
    script: the command after python (or torchrun) instead of train_gpt.py, e.g. a wrapper and its arguments."""

    def run(nproc: int = 1, cwd: Path | None = None, check: bool = True, timeout: int = 300,
            script: list[str] | None = None, **overrides):
        env = {k: v for k, v in os.environ.items() if k not in TINY_ENV}
        env.update(TINY_ENV, DATA_PATH=sample_data["data_path"], TOKENIZER_PATH=sample_data["tokenizer"],
                   OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env.update({k: str(v) for k, v in overrides.items()})
        cmd = [sys.executable]
        if nproc > 1:
            cmd += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        cmd += script or [str(REPO / "train_gpt.py")]
        proc = subprocess.run(cmd, cwd=cwd or tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"train_gpt.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    return run
