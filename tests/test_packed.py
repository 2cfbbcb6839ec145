"""The packed train_gpt.py (lzma + base85, self-extracting) that tools/package.py submits: it runs as the source does
(EVAL_ONLY to the last digit, the Triton kernels, errors, signals), its log keeps the readable source, and its bytes are
what every total counts."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, TINY_ENV

sys.path.insert(0, str(REPO / "tools"))
import package  # noqa: E402
import runlog  # noqa: E402

FINAL_LINES = re.compile(r"^final_int6_(roundtrip|sliding_window)(_exact)? .*?(?= eval_time|$)", re.M)
SOURCE = (REPO / "train_gpt.py").read_bytes()


def final_lines(text: str) -> list[str]:
    return [m.group(0) for m in FINAL_LINES.finditer(text)]


def run(script: Path, cwd: Path, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, **TINY_ENV, "OMP_NUM_THREADS": "1", **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=full, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def packaged(sample_data, tmp_path_factory):
    """A tiny run of the readable train_gpt.py, packaged with its artifact: (records folder, training log)."""
    work = tmp_path_factory.mktemp("trained")
    proc = run(REPO / "train_gpt.py", work, DATA_PATH=sample_data["data_path"], TOKENIZER_PATH=sample_data["tokenizer"],
               RUN_ID="trained")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = work / "records"
    assert package.main(["--name", "packed", "--author", "a", "--github-id", "a", "--blurb", "b", "--date",
                         "2026-12-04", "--track", "non_record_16mb", "--records-dir", str(records), "--with-artifact",
                         str(work / "runs/trained/final_model.int6.ptz"), str(work / "logs/trained.txt")]) == 0
    return records / "track_non_record_16mb" / "2026-12-04_packed", runlog.parse_log(work / "logs/trained.txt")


def test_packing_is_deterministic_and_decompresses_to_the_source():
    tg = runlog.import_trainer()
    packed = tg.packed_source(SOURCE.decode("utf-8"))
    assert packed == tg.packed_source(SOURCE.decode("utf-8")) and package.unpacked(packed) == SOURCE
    assert len(packed) < 0.4 * len(SOURCE)
    assert package.unpacked(SOURCE) == SOURCE  # a readable file is its own source


def test_the_totals_count_the_packed_file(packaged):
    folder, trained = packaged
    packed = (folder / "train_gpt.py").read_bytes()
    assert (folder / "train_gpt_human.py").read_bytes() == SOURCE and package.unpacked(packed) == SOURCE
    assert trained.code_bytes == len(SOURCE) and trained.packed_code_bytes == len(packed)
    assert trained.submission_bytes == trained.serialized_bytes + len(packed)
    record = json.loads((folder / "submission.json").read_text())
    assert record["bytes_code"] == len(packed) and record["bytes_total"] == trained.submission_bytes
    assert (folder / "final_model.int6.ptz").stat().st_size == trained.serialized_bytes


def test_packed_eval_only_repeats_the_training_run_and_logs_the_source(packaged, sample_data, tmp_path):
    folder, trained = packaged
    val_only = tmp_path / "val"
    val_only.mkdir()
    shutil.copy(Path(sample_data["data_path"]) / "fineweb_val_000000.bin", val_only)
    proc = run(folder / "train_gpt.py", tmp_path, EVAL_ONLY=folder / "final_model.int6.ptz", DATA_PATH=val_only,
               TOKENIZER_PATH=sample_data["tokenizer"], RUN_ID="scored")
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = final_lines(trained.path.read_text())
    assert len(expected) == 4 and final_lines(proc.stdout) == expected
    scored = runlog.parse_log(next((tmp_path / "logs").glob("scored_eval_only_*.txt")))  # EVAL_ONLY names its own log
    assert scored.source_dump == SOURCE.decode("utf-8")  # the log of the packed file keeps the readable source


def test_audit_rescores_the_packaged_artifact(packaged, sample_data, capsys):
    folder, _ = packaged
    assert package.main(["--audit", str(folder), "--data", sample_data["data_path"],
                         "--tokenizer", sample_data["tokenizer"]]) == 0
    out = capsys.readouterr().out
    assert "re-scored final_model.int6.ptz" in out and "PASS" in out


def test_errors_and_signals_of_the_packed_file_are_the_sources(packaged, sample_data, tmp_path):
    folder, _ = packaged
    results = []
    for script in (REPO / "train_gpt.py", folder / "train_gpt.py"):
        bad = run(script, tmp_path, NUM_LAYERS="x", DATA_PATH=sample_data["data_path"])
        results.append((bad.returncode, bad.stderr))
    assert results[0] == results[1] and results[0][0] == 2 and results[0][1].startswith("error: NUM_LAYERS")
    env = {**os.environ, **TINY_ENV, "DATA_PATH": sample_data["data_path"], "TOKENIZER_PATH": sample_data["tokenizer"],
           "ITERATIONS": "100000", "RUN_ID": "stopped", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(folder / "train_gpt.py")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "logs/stopped.txt"
    deadline = time.time() + 300
    while not re.search(r"^step:1/", log.read_text() if log.exists() else "", re.M) and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert re.search(r"^interrupted: SIGTERM step:\d+/100000$", log.read_text(), re.M)


def test_triton_kernels_run_from_the_packed_file(packaged, sample_data, tmp_path):
    """MLP_KERNEL=triton (Triton's interpreter on CPU): @triton.jit reads the kernels' source through inspect, which
    finds it where the packed file put it; the score equals the readable file's to the last digit."""
    folder, _ = packaged
    val = tmp_path / "val"
    val.mkdir()
    from shard_io import read_shard, write_shard

    tokens = read_shard(Path(sample_data["data_path"]) / "fineweb_val_000000.bin")[:513]
    write_shard(val / "fineweb_val_000000.bin", tokens.astype(np.uint16))
    outputs = []
    for script in (REPO / "train_gpt.py", folder / "train_gpt.py"):
        cwd = tmp_path / script.parent.name
        cwd.mkdir()
        proc = run(script, cwd, EVAL_ONLY=folder / "final_model.int6.ptz", DATA_PATH=val, MLP_KERNEL="triton",
                   TRITON_INTERPRET="1", TOKENIZER_PATH=sample_data["tokenizer"])
        assert proc.returncode == 0 and "mlp_kernel:triton" in proc.stdout, proc.stderr[-2000:]
        outputs.append(final_lines(proc.stdout))
    assert len(outputs[0]) == 4 and outputs[0] == outputs[1]
