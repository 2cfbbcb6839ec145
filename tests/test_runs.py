"""Runs in real working folders (issues 13, 14, 15): the runs/<RUN_ID>/ layout, concurrent runs in one folder,
two nodes without a shared folder, signals, unwritable output, progress lines, warnings before results."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train_gpt as tg
from conftest import REPO, TINY_ENV


def final_bpb(text: str) -> float:
    return float(re.search(r"^final_int6_roundtrip_exact val_loss:\S+ val_bpb:(\S+)$", text, re.M).group(1))


def test_latest_files_in_the_folder_and_each_run_kept_by_run_id(run_train, tmp_path):
    (tmp_path / "final_model.pt").write_bytes(b"an older version's weights")  # kept nowhere else
    run_train(RUN_ID="first", ITERATIONS=2, EVAL_STRIDE=0, VAL_LOSS_EVERY=0)
    first = (tmp_path / "runs/first/final_model.int6.ptz").read_bytes()
    assert (tmp_path / "final_model.int6.ptz").read_bytes() == first
    assert (tmp_path / "runs/earlier/final_model.pt").read_bytes() == b"an older version's weights"
    run_train(RUN_ID="second", SEED=8, ITERATIONS=2, EVAL_STRIDE=0, VAL_LOSS_EVERY=0)
    assert (tmp_path / "runs/first/final_model.int6.ptz").read_bytes() == first  # untouched
    latest = tmp_path / "final_model.int6.ptz"
    assert latest.samefile(tmp_path / "runs/second/final_model.int6.ptz") and latest.read_bytes() != first
    assert (tmp_path / "final_model.pt").samefile(tmp_path / "runs/second/final_model.pt")
    assert not list(tmp_path.glob("final_model.pt.*")) and not list(tmp_path.glob(".*.tmp"))
    log = (tmp_path / "logs/second.txt").read_text()
    assert "artifact:runs/second/final_model.int6.ptz latest:final_model.int6.ptz" in log


def start(env_over: dict, cwd: Path, data: dict, nproc: int = 1) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in TINY_ENV}
    env.update(TINY_ENV, DATA_PATH=data["data_path"], TOKENIZER_PATH=data["tokenizer"],
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in env_over.items()})
    return subprocess.Popen([sys.executable, str(REPO / "train_gpt.py")], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=deliver_sigint)


def deliver_sigint() -> None:
    """In the child: SIGINT at its default, so Python turns it into KeyboardInterrupt. A test session started in
    the background by a non-interactive shell inherits SIGINT ignored, and so would the run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_concurrent_runs_in_one_folder_each_score_their_own_model(run_train, tmp_path, small_data):
    alone = tmp_path / "alone"
    alone.mkdir()
    run_train(cwd=alone, SEED=1, RUN_ID="a", EVAL_STRIDE=0)
    expected = final_bpb((alone / "logs/a.txt").read_text())
    shared = tmp_path / "shared"
    shared.mkdir()
    procs = [start({"SEED": 1, "RUN_ID": "a", "EVAL_STRIDE": 0}, shared, small_data),
             start({"SEED": 42, "RUN_ID": "b", "EVAL_STRIDE": 0}, shared, small_data)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert final_bpb((shared / "logs/a.txt").read_text()) == expected  # seed 1 scored its own model
    assert final_bpb((shared / "logs/b.txt").read_text()) != expected
    for run in ("a", "b"):
        assert (shared / f"runs/{run}/final_model.int6.ptz").exists()
    assert not list(shared.glob(".*.tmp"))


def test_a_live_run_id_is_refused(tmp_path, small_data):
    # The first run must outlive the second's start-up on any machine: it never ends by itself (killed below).
    first = start({"RUN_ID": "same", "ITERATIONS": 10**9, "VAL_LOSS_EVERY": 0, "EVAL_STRIDE": 0}, tmp_path, small_data)
    try:
        deadline = time.time() + 300
        while not (tmp_path / "logs/same.txt").exists() and time.time() < deadline:
            time.sleep(0.2)
        second = start({"RUN_ID": "same", "SEED": 9}, tmp_path, small_data)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 2
        assert err.strip().splitlines()[-1] == ("error: RUN_ID=same belongs to a run still going in this folder; "
                                                "set another RUN_ID")
        assert not (tmp_path / "logs/same.txt.1").exists()  # the live run's log was not moved
        assert first.poll() is None  # the refusal came from the live lock, not a finished run
    finally:
        first.kill()
        first.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_is_logged_with_the_step(tmp_path, small_data, sig):
    proc = start({"RUN_ID": "sig", "ITERATIONS": 5000, "VAL_LOSS_EVERY": 0, "EVAL_STRIDE": 0}, tmp_path, small_data)
    log = tmp_path / "logs/sig.txt"
    deadline = time.time() + 300
    while time.time() < deadline and not (log.exists() and re.search(r"^step:2/5000 train_loss", log.read_text(), re.M)):
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig
    last = log.read_text().strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted: {sig.name} step:\d+/5000", last), last
    assert "Traceback" not in err


def test_two_nodes_without_a_shared_folder_score_like_one(run_train, tmp_path, small_data):
    one = tmp_path / "one"
    one.mkdir()
    run_train(nproc=2, cwd=one, RUN_ID="n", EVAL_STRIDE=0, ITERATIONS=3)
    expected = final_bpb((one / "logs/n.txt").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in TINY_ENV}
    env.update(TINY_ENV, OMP_NUM_THREADS="1", RUN_ID="n", EVAL_STRIDE="0", ITERATIONS="3",
               DATA_PATH=small_data["data_path"], TOKENIZER_PATH=small_data["tokenizer"])
    procs = []
    for node in ("a", "b"):
        (tmp_path / node).mkdir()
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=twonode", str(REPO / "train_gpt.py")]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path / node, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    written = [n for n in ("a", "b") if (tmp_path / n / "logs/n.txt").exists()]
    assert len(written) == 1  # rank 0's node writes the log and the artifact; the other node scores from memory
    text = (tmp_path / written[0] / "logs/n.txt").read_text()
    assert "world_size:2 grad_accum_steps:4" in text
    assert final_bpb(text) == pytest.approx(expected, abs=1e-6)


def test_unwritable_folder_is_one_error_line(run_train, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    try:
        proc = run_train(check=False, cwd=tmp_path / "ro", ITERATIONS=1)
    finally:
        os.chmod(tmp_path / "ro", 0o755)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: cannot write ")
    assert "Traceback" not in proc.stderr


def test_failed_writes_leave_no_partial_file_and_keep_earlier_ones(tmp_path, monkeypatch):
    target = tmp_path / "final_model.int6.ptz"
    target.write_bytes(b"earlier artifact")

    def disk_full(self, data):
        Path.write_text(self, "partial")  # some bytes reach the disk first
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(tg.RunError, match=r"cannot write .*final_model\.int6\.ptz: No space left on device"):
        tg.write_file(target, b"new artifact")
    assert target.read_bytes() == b"earlier artifact" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_read_only_folder_via_lock_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(tg.ConfigError, match=r"cannot write runs/x: Permission denied; run from a writable folder"):
        tg.lock_run_id("x")


def test_progress_lines_on_console_only_and_warnings_before_results(run_train, tmp_path):
    proc = run_train(RUN_ID="p", ITERATIONS=6, EMA_DECAY=0.997, NUM_LAYER=3, WARMDOWN_ITERS=40,
                     LATE_QAT_THRESHOLD=0.15)
    console = proc.stdout.splitlines()
    sliding = [ln for ln in console if ln.startswith("progress: sliding_eval ")]
    assert sliding and sliding[-1].startswith("progress: sliding_eval 100% tokens:")
    assert all(re.fullmatch(r"progress: sliding_eval \d+% tokens:[\d,]+/[\d,]+ elapsed:\d+s eta:\d+s", ln) for ln in sliding)
    assert any(ln.startswith("progress: export ") for ln in console)
    log = (tmp_path / "logs/p.txt").read_text()
    assert "progress:" not in log.split("=" * 100)[-1]
    before_results = log.split("=" * 100)[-1].split("\nDIAGNOSTIC")[0]
    assert "WARNING: NUM_LAYER is not a setting of train_gpt.py and is ignored; did you mean NUM_LAYERS?" in before_results
    assert "did you mean NUM_LAYERS?" in proc.stderr  # before any work, on stderr
    assert re.search(r"^WARNING: ITERATIONS=6 is short for EMA_DECAY=0\.997", before_results, re.M)
    assert re.search(r"^WARNING: late QAT switched on \d+% into training", before_results, re.M)


def test_header_survives_a_missing_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    lines = []
    rt = tg.Runtime(0, 1, 0, False, torch.device("cuda", 0), True, True)
    args = tg.Hyperparameters(TINY_ENV)
    args.mlp_kernel, args.mlp_kernel_from = tg.pick_mlp_kernel(args, torch.device("cpu"))  # as runtime_from_env does

    def log(msg, console=True):
        lines.append(msg)
    log.kept = []
    val = tg.ValData(torch.zeros(129, dtype=torch.int64), torch.zeros(129, dtype=torch.int16))
    tg.log_header(args, rt, log, tg.Inputs("code", b"code", [], val, 8, []))
    assert any(ln.startswith("nvidia-smi: unavailable") for ln in lines)
    assert any(ln.startswith("config:") for ln in lines) and any(ln.startswith("config_fingerprint:") for ln in lines)
