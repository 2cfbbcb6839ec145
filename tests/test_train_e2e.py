"""End-to-end runs of train_gpt.py on CPU: torchrun with 2 processes, 1-vs-2-process equivalence,
the wall-clock cap, the warm-up reset, kept files, a diverging run."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import REPO

NUM = r"-?\d+\.\d+"
FINAL_PATTERNS = [
    r"^model_params:\d+$",
    r"^world_size:2 grad_accum_steps:4$",
    r"^mlp_activation:asqu asqu_beta_init:0\.25 asqu_lr:0\.001 asqu_wd:0\.0 asqu_sigmoid_beta:0 asqu_beta_grad_every:1$",
    r"^seed:7$",
    r"^device:cpu dtype:float32 attention:sdpa compile:0 mlp_kernel:torch$",
    rf"^step:0/6 val_loss:{NUM} val_bpb:{NUM} train_time:0ms step_avg:{NUM}ms$",
    rf"^step:6/6 val_loss:{NUM} val_bpb:{NUM} train_time:\d+ms step_avg:{NUM}ms$",
    rf"^step:3/6 train_loss:{NUM} train_time:\d+ms step_avg:{NUM}ms$",
    r"^late_qat:enabled step:\d+ scale:0\.\d{4}$",
    rf"^DIAGNOSTIC post_ema val_loss:{NUM} val_bpb:{NUM} eval_time:\d+ms$",
    r"^Serialized model int6\+(zstd|brotli|lzma): \d+ bytes$",
    r"^Total submission size int6\+(zstd|brotli|lzma): \d+ bytes$",
    r"^final_int6_roundtrip_exact val_loss:\d+\.\d{8} val_bpb:\d+\.\d{8}$",
    r"^final_int6_sliding_window_exact val_loss:\d+\.\d{8} val_bpb:\d+\.\d{8}$",
]


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def value(lines: list[str], prefix: str, key: str) -> float:
    line = [ln for ln in lines if ln.startswith(prefix)][-1]
    return float(re.search(rf"{key}:(\S+)", line).group(1))


def test_torchrun_two_processes_end_to_end(two_process_run):
    folder, proc = two_process_run  # torchrun, 2 processes, LATE_QAT_THRESHOLD=0.4
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log_path = Path(folder, re.search(r"^logs: (\S+)$", proc.stdout, re.M).group(1))
    seed_log = folder / "train_seed7.log"
    assert log_path.exists() and seed_log.exists() and not (folder / "train.log").exists()
    text = log_path.read_text(encoding="utf-8")
    assert text.startswith((REPO / "train_gpt.py").read_text(encoding="utf-8"))  # the source heads the log
    assert "Running PyTorch " + torch.__version__ in text
    lines = text.splitlines()
    for pat in FINAL_PATTERNS:
        assert any(re.match(pat, ln) for ln in lines), pat
    for i in range(4):  # per-layer beta diagnostics at each validation and at the end
        assert sum(bool(re.match(rf"^asqu_diag layer:{i} beta_mean:{NUM} beta_std:{NUM} beta_min:{NUM} beta_max:{NUM}$", ln))
                   for ln in lines) == 4
    assert seed_log.read_text(encoding="utf-8") == text
    assert (folder / "final_model.pt").exists() and (folder / "final_model.int6.ptz").exists()
    console = proc.stdout.splitlines()
    assert "def main() -> None:" not in proc.stdout and any(ln.startswith("final_int6_roundtrip_exact") for ln in console)
    # the sliding window scores the same tokens; with a trained-for-6-steps model it is close to the plain eval
    assert abs(value(lines, "final_int6_sliding_window_exact", "val_loss")
               - value(lines, "final_int6_roundtrip_exact", "val_loss")) < 0.05


def test_one_and_two_processes_agree(run_train, tmp_path, two_process_run):
    two, proc = two_process_run  # the same settings as the 1-process run below, with torchrun's 2 processes
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_train(nproc=1, LATE_QAT_THRESHOLD=0.4, RUN_ID="eq")
    a = lines_of(tmp_path / "logs/eq.txt")
    b = lines_of(two / re.search(r"^logs: (\S+)$", proc.stdout, re.M).group(1))
    assert "world_size:1 grad_accum_steps:8" in a and "world_size:2 grad_accum_steps:4" in b
    for step in (0, 3, 6):
        va, vb = value(a, f"step:{step}/6 val_loss", "val_loss"), value(b, f"step:{step}/6 val_loss", "val_loss")
        assert va == pytest.approx(vb, abs=2e-4)
    for step in (1, 4):  # the logged train loss is the mean over ranks
        assert value(a, f"step:{step}/6 train_loss", "train_loss") == pytest.approx(
            value(b, f"step:{step}/6 train_loss", "train_loss"), abs=2e-4)
    assert value(a, "final_int6_roundtrip_exact", "val_loss") == pytest.approx(
        value(b, "final_int6_roundtrip_exact", "val_loss"), abs=2e-4)
    sa, sb = torch.load(tmp_path / "final_model.pt"), torch.load(two / "final_model.pt")
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=2e-4, rtol=1e-3, msg=k)


def test_wallclock_cap_stops_and_warms_down(run_train, tmp_path):
    run_train(MAX_WALLCLOCK_SECONDS=3, ITERATIONS=100000, WARMDOWN_ITERS=20, VAL_LOSS_EVERY=0,
              TRAIN_LOG_EVERY=0, EVAL_STRIDE=0, RUN_ID="cap")
    lines = lines_of(tmp_path / "logs/cap.txt")
    stop = [ln for ln in lines if ln.startswith("stopping_early:")]
    assert len(stop) == 1
    m = re.match(r"^stopping_early: wallclock_cap train_time:(\d+)ms step:(\d+)/100000$", stop[0])
    assert m and 3000 <= int(m.group(1)) < 6000 and 0 < int(m.group(2)) < 100000
    assert any(ln.startswith("late_qat:enabled") for ln in lines)  # the LR warmed down before the cap
    assert any(ln.startswith(f"step:{m.group(2)}/100000 val_loss:") for ln in lines)


def test_warmup_steps_are_reset(run_train, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    run_train(cwd=a, WARMUP_STEPS=0, EVAL_STRIDE=0, VAL_LOSS_EVERY=0)
    run_train(cwd=b, WARMUP_STEPS=2, EVAL_STRIDE=0, VAL_LOSS_EVERY=0)
    sa, sb = torch.load(a / "final_model.pt"), torch.load(b / "final_model.pt")
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_earlier_files_are_kept(run_train, tmp_path):
    (tmp_path / "train_seed7.log").write_text("an earlier run\n")
    run_train(RUN_ID="same", EVAL_STRIDE=0, ITERATIONS=2)
    first_log = (tmp_path / "logs/same.txt").read_text()
    first_artifact = (tmp_path / "runs/same/final_model.int6.ptz").read_bytes()
    run_train(RUN_ID="same", EVAL_STRIDE=0, ITERATIONS=2)  # the same RUN_ID again, once the first has ended
    assert (tmp_path / "train_seed7.log.1").read_text() == "an earlier run\n"
    assert (tmp_path / "logs/same.txt.1").read_text() == first_log
    assert (tmp_path / "runs/same/final_model.int6.ptz.1").read_bytes() == first_artifact
    assert (tmp_path / "runs/same/final_model.pt.1").exists()
    log = (tmp_path / "logs/same.txt").read_text()
    assert "kept earlier logs/same.txt as logs/same.txt.1" in log
    assert "kept earlier runs/same/final_model.int6.ptz as runs/same/final_model.int6.ptz.1" in log


def test_seed_1337_also_writes_train_log(run_train, tmp_path):
    run_train(SEED=1337, ITERATIONS=1, EVAL_STRIDE=0, VAL_LOSS_EVERY=0)
    assert (tmp_path / "train.log").read_text() == (tmp_path / "train_seed1337.log").read_text()


def test_fixed_step_warmdown_warning(run_train, tmp_path):
    proc = run_train(ITERATIONS=2, WARMDOWN_ITERS=3500, EVAL_STRIDE=0, VAL_LOSS_EVERY=0)
    assert "WARNING: WARMDOWN_ITERS=3500 > ITERATIONS=2: the LR decays from step 0" in proc.stdout


def test_non_finite_loss_stops_with_step_and_keeps_log(run_train, tmp_path):
    proc = run_train(check=False, SCALAR_LR="1e30", ADAM_WD=0, RUN_ID="nan", ITERATIONS=20)
    assert proc.returncode == 1
    assert re.search(r"non-finite train_loss at step \d+", proc.stderr)
    log = (tmp_path / "logs/nan.txt").read_text()
    assert re.search(r"^stopping: non-finite train_loss \(nan\) at step:\d+/20", log, re.M)
    assert not (tmp_path / "final_model.int6.ptz").exists()
