"""EVAL_ONLY=PATH: the final evaluation of a saved artifact, without training, on any world size, with the training
run's final lines to the last printed digit; anything else given as EVAL_ONLY is one error line."""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

FINAL_LINES = re.compile(r"^final_int6_(roundtrip|sliding_window)(_exact)? .*?(?= eval_time|$)", re.M)


@pytest.fixture
def val_only(small_data, tmp_path) -> Path:
    """The validation shard alone: scoring reads no train shard."""
    folder = tmp_path / "val_only"
    folder.mkdir()
    shutil.copy(Path(small_data["data_path"]) / "fineweb_val_000000.bin", folder)
    return folder


def final_lines(text: str) -> list[str]:
    return [m.group(0) for m in FINAL_LINES.finditer(text)]


@pytest.mark.parametrize("nproc", [1, 2])
def test_scores_equal_the_training_run_to_the_last_digit(trained_run, run_train, val_only, tmp_path, nproc):
    folder, log, artifact = trained_run
    work = tmp_path / "work"
    work.mkdir()
    (work / "train_seed7.log").write_text("the training log, kept\n")
    proc = run_train(nproc=nproc, cwd=work, EVAL_ONLY=artifact, DATA_PATH=val_only, RUN_ID="scored")
    expected = final_lines(log)
    assert len(expected) == 4 and final_lines(proc.stdout) == expected
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert f"eval_only: artifact:{artifact.resolve()} sha256:{digest} bytes:{artifact.stat().st_size}" in proc.stdout
    scored_log = next((work / "logs").glob(f"scored_eval_only_*_{proc_pid(proc)}.txt")).read_text()  # its own name
    assert final_lines(scored_log) == expected and not re.search(r"^(train_loader|step):", scored_log, re.M)
    assert (work / "train_seed7.log").read_text() == "the training log, kept\n"  # not rotated, not written
    assert sorted(p.name for p in work.iterdir()) == ["logs", "runs", "train_seed7.log"]


def test_the_readme_recipe_leaves_the_training_run_as_it_was(trained, tmp_path):
    """The recipe pastes the training log's config: line, RUN_ID included: the scoring run wrote logs/<RUN_ID>.txt and
    the training log became .txt.1, lost to every tool. Now the scoring run names itself
    <RUN_ID>_eval_only_<time>_<pid>."""
    import os
    import subprocess
    import sys

    from conftest import REPO, TINY_ENV

    folder, log, _ = trained
    work = tmp_path / "run"
    shutil.copytree(folder, work)
    before = {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file() and p.name != ".lock"}
    recipe = ("eval \"$(grep -m1 '^config:' logs/trained.txt | cut -d: -f2-) "
              f"EVAL_ONLY=runs/trained/final_model.int6.ptz {sys.executable} {REPO / 'train_gpt.py'}\"")
    env = {k: v for k, v in os.environ.items() if k not in TINY_ENV and k not in ("RUN_ID", "DATA_PATH")}
    proc = subprocess.run(["bash", "-c", recipe], cwd=work, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scored = re.search(r"^logs: (logs/trained_eval_only_\d{8}-\d{6}_\d+\.txt)$", proc.stdout, re.M).group(1)
    assert final_lines((work / scored).read_text()) == final_lines(log)
    after = {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file() and p.name != ".lock"}
    assert {k: v for k, v in after.items() if str(k) != scored} == before  # nothing moved or changed


def proc_pid(proc) -> str:
    """The pid a default-named run's log name ends with (logs: logs/<name>_<pid>.txt)."""
    return re.search(r"^logs: logs/\S+_(\d+)\.txt$", proc.stdout, re.M).group(1)


def bad_eval(run_train, tmp_path, val_only, path, **env):
    work = tmp_path / "bad"
    work.mkdir(exist_ok=True)
    proc = run_train(cwd=work, check=False, EVAL_ONLY=path, DATA_PATH=val_only, **env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert list(work.iterdir()) == []  # nothing written
    return proc.stderr.strip().splitlines()[-1]


def test_a_file_that_is_not_an_artifact_is_one_line(trained_run, run_train, val_only, tmp_path):
    folder, _, _ = trained_run
    assert bad_eval(run_train, tmp_path, val_only, tmp_path / "none.ptz") == (
        f"error: EVAL_ONLY={tmp_path / 'none.ptz'} is not a file; give the path of a run's final_model.int6.ptz")
    raw = folder / "runs/trained/final_model.pt"  # the raw state dict, not the artifact
    line = bad_eval(run_train, tmp_path, val_only, raw)
    assert line.startswith(f"error: EVAL_ONLY={raw}: not an artifact of this script (artifact {raw} is corrupt")
    cut = tmp_path / "cut.ptz"
    cut.write_bytes(trained_run[2].read_bytes()[:1000])
    assert "corrupt or truncated" in bad_eval(run_train, tmp_path, val_only, cut)


def test_an_artifact_of_another_configuration_is_one_line(trained_run, run_train, val_only, tmp_path):
    _, _, artifact = trained_run
    line = bad_eval(run_train, tmp_path, val_only, artifact, LOGIT_SOFTCAP=20)
    assert line == (f"error: EVAL_ONLY={artifact} was built for another configuration: LOGIT_SOFTCAP=30.0 (here 20.0); "
                    "set the settings of the run that wrote it (its log's config: line)")
    line = bad_eval(run_train, tmp_path, val_only, artifact, MLP_ACTIVATION="leaky2")
    assert "MLP_ACTIVATION=asqu (here leaky2)" in line
    line = bad_eval(run_train, tmp_path, val_only, artifact, MODEL_DIM=128)
    assert "MODEL_DIM=64 (here 128)" in line


def test_an_older_artifact_of_another_shape_is_one_line(trained_run, run_train, val_only, tmp_path):
    """Artifacts written before model_settings were stored: a tensor that does not fit is one error line."""
    import io

    import torch
    import zstandard

    import train_gpt as tg

    payload = tg.read_artifact(trained_run[2])
    del payload["model_settings"]
    buf = io.BytesIO()
    torch.save(payload, buf)
    old = tmp_path / "old.ptz"
    old.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    proc = run_train(cwd=tmp_path, check=False, EVAL_ONLY=old, DATA_PATH=val_only, MODEL_DIM=128)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: the artifact does not fit this configuration's model (size mismatch for ")
