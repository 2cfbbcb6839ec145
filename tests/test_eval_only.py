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


def test_the_readme_recipe_leaves_the_training_run_as_it_was(trained_run, tmp_path):
    """The recipe pastes the training log's config: line, RUN_ID included: the scoring run wrote logs/<RUN_ID>.txt and
    the training log became .txt.1, lost to every tool. Now the scoring run names itself
    <RUN_ID>_eval_only_<time>_<pid>."""
    import os
    import subprocess
    import sys

    from conftest import REPO, TINY_ENV

    folder, log, _ = trained_run
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
    assert line.startswith(f"error: EVAL_ONLY: artifact {raw} is damaged or not an artifact of this script: ")
    cut = tmp_path / "cut.ptz"
    cut.write_bytes(trained_run[2].read_bytes()[:1000])
    assert bad_eval(run_train, tmp_path, val_only, cut).startswith(f"error: EVAL_ONLY: artifact {cut} is damaged: ")


def test_an_artifact_of_another_configuration_is_one_line(trained_run, run_train, val_only, tmp_path):
    _, _, artifact = trained_run
    line = bad_eval(run_train, tmp_path, val_only, artifact, LOGIT_SOFTCAP=20)
    assert line == (f"error: EVAL_ONLY={artifact} was built for another configuration: LOGIT_SOFTCAP=30.0 (here 20.0); "
                    "set the settings of the run that wrote it (its log's config: line)")
    line = bad_eval(run_train, tmp_path, val_only, artifact, MLP_ACTIVATION="leaky2")
    assert "MLP_ACTIVATION=asqu (here leaky2)" in line
    line = bad_eval(run_train, tmp_path, val_only, artifact, MODEL_DIM=128)
    assert "MODEL_DIM=64 (here 128)" in line


def payload_of(artifact: Path) -> dict:
    """The payload in an artifact file, as train_gpt.py stored it."""
    import io

    import torch

    import train_gpt as tg

    head, _, body = artifact.read_bytes().partition(b"\n")
    return torch.load(io.BytesIO(tg.CODECS[head.split()[1].decode()][2](body, tg.RAW_LIMIT)), weights_only=True)


def old_format(payload: dict, path: Path) -> Path:
    """The payload written as train_gpt.py wrote artifacts before the header and digest: bare zstd, unshuffled."""
    import io

    import torch
    import zstandard

    import train_gpt as tg

    payload = dict(payload, tensors={k: tg.shuffle_bytes(t, back=True) for k, t in payload["tensors"].items()})
    del payload["shuffled"]
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(zstandard.ZstdCompressor(level=22).compress(buf.getvalue()))
    return path


def test_an_old_format_artifact_scores_the_same_with_a_note(trained_run, run_train, val_only, tmp_path):
    _, log, artifact = trained_run
    old = old_format(payload_of(artifact), tmp_path / "old.ptz")
    proc = run_train(cwd=tmp_path, EVAL_ONLY=old, DATA_PATH=val_only, RUN_ID="old")
    assert final_lines(proc.stdout) == final_lines(log)
    assert "note: the artifact was written before artifacts carried a digest: damage to it cannot be detected" in (
        proc.stdout)


def test_an_older_artifact_of_another_shape_is_one_line(trained_run, run_train, val_only, tmp_path):
    """Artifacts written before model_settings were stored: a tensor that does not fit is one error line."""
    payload = payload_of(trained_run[2])
    del payload["model_settings"]
    old = old_format(payload, tmp_path / "old.ptz")
    proc = run_train(cwd=tmp_path, check=False, EVAL_ONLY=old, DATA_PATH=val_only, MODEL_DIM=128)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: the artifact does not fit this configuration's model (size mismatch for ")


def test_a_damaged_artifact_is_refused_not_scored(trained_run, run_train, val_only, tmp_path):
    """One byte flipped at 30%: scored 9.62 instead of 3.54 before artifacts carried a digest."""
    data = bytearray(trained_run[2].read_bytes())
    data[len(data) * 3 // 10] ^= 0x01
    damaged = tmp_path / "damaged.ptz"
    damaged.write_bytes(bytes(data))
    assert bad_eval(run_train, tmp_path, val_only, damaged) == (
        f"error: EVAL_ONLY: artifact {damaged} is damaged: its bytes are not those written (the sha256 digest in "
        "its header does not match); copy it again from the run's folder")


def test_a_file_larger_than_any_submission_is_refused(trained_run, run_train, val_only, tmp_path):
    big = tmp_path / "big.ptz"
    with big.open("wb") as f:
        f.truncate(16_000_001)
    assert bad_eval(run_train, tmp_path, val_only, big) == (
        f"error: EVAL_ONLY={big} is 16,000,001 bytes, more than any submission can be (16,000,000); it is not an "
        "artifact of this script")


@pytest.mark.parametrize("field", ["dtype", "settings", "tensors", "unstored", "pickle", "bomb"])
def test_a_well_formed_artifact_with_a_bad_field_is_one_line(trained_run, run_train, val_only, tmp_path, field):
    import io
    import struct

    import torch
    import zstandard

    import train_gpt as tg
    from test_artifact import BAD_FIELDS

    path = tmp_path / f"{field}.ptz"
    if field == "bomb":  # an old-format zstd frame that declares 40 GiB
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"x" * 1000)
        path.write_bytes(frame[:4] + bytes([0xC0]) + frame[5:6] + struct.pack("<Q", 40 * 2**30) + frame[6:])
        reason = "zstd decompress error: Data corruption detected"
    else:
        payload = payload_of(trained_run[2])
        if field == "pickle":
            payload["model_settings"] = Path("settings")  # an object weights_only refuses
            reason = "it holds Python objects besides tensors and tables (refused by torch.load(weights_only=True))"
        else:
            change, reason = BAD_FIELDS[field]
            change(payload)
        buf = io.BytesIO()
        torch.save(payload, buf)
        path.write_bytes(tg.compress(buf.getvalue(), "zstd"))
    line = bad_eval(run_train, tmp_path, val_only, path)
    assert line.startswith(f"error: EVAL_ONLY: artifact {path} is damaged, truncated or not an artifact of this script: ")
    assert line.endswith(reason)
