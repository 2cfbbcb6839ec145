"""Tests of tools/package.py: each refusal, and a successful records/ folder."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import package  # noqa: E402
from synth_log import FAKE_SOURCE, make_log, sliding_pair  # noqa: E402

LOSSES = {1337: 1.89576235, 42: 1.89711111, 2024: 1.89650000}
CODE_BYTES = len(FAKE_SOURCE.encode("utf-8"))


@pytest.fixture
def workspace(tmp_path):
    """A train_gpt.py, three complete record-track asqu logs dumping it, and a records/ folder."""
    script = tmp_path / "train_gpt.py"
    script.write_text(FAKE_SOURCE, encoding="utf-8")
    logs = tmp_path / "runs"
    logs.mkdir()
    for seed, loss in LOSSES.items():
        write_log(logs / f"asqu_seed{seed}.txt", seed=seed, sliding=sliding_pair(loss))
    return tmp_path


def write_log(path: Path, **overrides) -> Path:
    options = dict(source=FAKE_SOURCE, torchrun_noise=True, steps=7096, last_train_time_ms=600036,
                   code_bytes=CODE_BYTES, train_every=1000, val_every=4000)
    options.update(overrides)
    path.write_text(make_log(**options), encoding="utf-8")
    return path


def args_for(ws: Path, *extra: str, logs=None) -> list[str]:
    logs = logs if logs is not None else sorted(str(p) for p in (ws / "runs").iterdir())
    return ["--name", "ASQU 11L", "--author", "Jane Doe", "--github-id", "jdoe",
            "--blurb", "Learned per-channel negative-branch scale.", "--date", "2026-04-02",
            "--train-script", str(ws / "train_gpt.py"), "--records-dir", str(ws / "records"),
            *extra, *logs]


def records_content(ws: Path) -> list[str]:
    root = ws / "records"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_successful_package(workspace, capsys):
    assert package.main(args_for(workspace)) == 0
    target = workspace / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L"
    assert f"wrote {target}" in capsys.readouterr().out
    assert sorted(p.name for p in target.iterdir()) == [
        "README.md", "submission.json", "train_gpt.py", "train_seed1337.log", "train_seed2024.log",
        "train_seed42.log",
    ]
    assert (target / "train_gpt.py").read_bytes() == (workspace / "train_gpt.py").read_bytes()
    assert (target / "train_seed42.log").read_bytes() == (workspace / "runs" / "asqu_seed42.txt").read_bytes()
    record = json.loads((target / "submission.json").read_text())
    assert set(record) == {"author", "github_id", "name", "blurb", "date", "val_loss", "val_bpb",
                           "bytes_total", "bytes_code"}
    losses = [float(f"{v:.8f}") for v in LOSSES.values()]
    bpbs = [float(f"{sliding_pair(v)[1]:.8f}") for v in LOSSES.values()]
    assert record["val_loss"] == pytest.approx(np.mean(losses), abs=1e-8)
    assert record["val_bpb"] == pytest.approx(np.mean(bpbs), abs=1e-8)
    assert record["bytes_code"] == CODE_BYTES
    assert record["bytes_total"] == 15487414 + CODE_BYTES
    assert record["date"] == "2026-04-02" and record["name"] == "ASQU 11L" and record["github_id"] == "jdoe"
    readme = (target / "README.md").read_text()
    assert readme.startswith("# ASQU 11L\n")
    for seed in LOSSES:
        assert f"| {seed} | 7096 |" in readme
    assert "| **mean** |" in readme and f"{record['val_bpb']:.8f}" in readme
    assert "MLP_ACTIVATION=asqu" in readme
    # nothing else was left in records/ (no staging folder)
    assert [p.name for p in (workspace / "records" / "track_10min_16mb").iterdir()] == ["2026-04-02_ASQU_11L"]


def test_non_record_track_accepts_one_long_run(workspace):
    only = write_log(workspace / "solo.txt", seed=5, last_train_time_ms=900000, stopped_early=False)
    assert package.main(args_for(workspace, "--track", "non_record_16mb", logs=[str(only)])) == 0
    assert (workspace / "records" / "track_non_record_16mb" / "2026-04-02_ASQU_11L" / "train_seed5.log").is_file()


def test_run_folders_from_a_sweep_are_accepted(workspace):
    for seed in LOSSES:
        run_dir = workspace / "sweep" / f"asqu_seed{seed}"
        (run_dir / "logs").mkdir(parents=True)
        write_log(run_dir / "logs" / f"asqu_seed{seed}.txt", seed=seed)
        write_log(run_dir / f"train_seed{seed}.log", seed=seed)
    dirs = [str(workspace / "sweep" / f"asqu_seed{s}") for s in LOSSES]
    assert package.main(args_for(workspace, logs=dirs)) == 0


def refusal(ws: Path, capsys, argv: list[str], message: str) -> None:
    before = records_content(ws)
    assert package.main(argv) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1  # one clear message
    assert records_content(ws) == before  # nothing written


def test_refuses_truncated_log(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, crash_at_step=3000)
    refusal(workspace, capsys, args_for(workspace), f"{bad} is truncated or from a crashed run")


def test_refuses_log_without_sliding_line(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, sliding=None)
    refusal(workspace, capsys, args_for(workspace), "lacks final_int6_sliding_window_exact")


def test_refuses_oversize_run(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed2024.txt", seed=2024, serialized_bytes=16_000_001 - CODE_BYTES)
    refusal(workspace, capsys, args_for(workspace), f"{bad}: total submission size 16,000,001 bytes")


def test_size_limit_is_inclusive(workspace):
    write_log(workspace / "runs" / "asqu_seed2024.txt", seed=2024, serialized_bytes=16_000_000 - CODE_BYTES)
    assert package.main(args_for(workspace)) == 0


def test_refuses_overtime_run_on_record_track(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed1337.txt", seed=1337,
                    last_train_time_ms=600_000 + package.TRAIN_TIME_TOLERANCE_MS + 1)
    refusal(workspace, capsys, args_for(workspace), f"{bad}: training took 601,001 ms")


def test_overtime_without_stopping_early_line_is_refused(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed1337.txt", seed=1337, stopped_early=False,
              last_train_time_ms=650_000)
    refusal(workspace, capsys, args_for(workspace), "training took 650,000 ms")


def test_within_tolerance_is_accepted(workspace):
    write_log(workspace / "runs" / "asqu_seed1337.txt", seed=1337, last_train_time_ms=600_999)
    assert package.main(args_for(workspace)) == 0


def test_refuses_source_that_differs_from_the_dump(workspace, capsys):
    (workspace / "train_gpt.py").write_text(FAKE_SOURCE.replace("import os", "import os  # edited"))
    refusal(workspace, capsys, args_for(workspace), "not byte-identical to the script to package "
            "(first difference at line 7)")


def test_refuses_trailing_newline_difference(workspace, capsys):
    (workspace / "train_gpt.py").write_text(FAKE_SOURCE + "\n")
    refusal(workspace, capsys, args_for(workspace), "not byte-identical")


def test_log_without_dump_is_checked_by_code_size(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, source=None, code_bytes=CODE_BYTES + 3)
    refusal(workspace, capsys, args_for(workspace), "Code size (879 bytes) differs")
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, source=None, code_bytes=CODE_BYTES)
    assert package.main(args_for(workspace)) == 0
    assert "matched by code size only" in capsys.readouterr().err


def test_refuses_fewer_than_three_seeds_on_record_track(workspace, capsys):
    (workspace / "runs" / "asqu_seed2024.txt").unlink()
    refusal(workspace, capsys, args_for(workspace), "needs at least 3 seeds")


def test_refuses_mixed_activations(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, activation="relu2")
    refusal(workspace, capsys, args_for(workspace), "the runs mix mlp_activation values")


def test_refuses_duplicate_seed(workspace, capsys):
    write_log(workspace / "runs" / "again.txt", seed=42)
    refusal(workspace, capsys, args_for(workspace), "seed 42 appears twice")


def test_refuses_existing_target_folder(workspace, capsys):
    target = workspace / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L"
    target.mkdir(parents=True)
    refusal(workspace, capsys, args_for(workspace), f"target folder already exists: {target}")


def test_refuses_bad_date_and_missing_script(workspace, capsys):
    argv = args_for(workspace)
    argv[argv.index("--date") + 1] = "02/04/2026"
    refusal(workspace, capsys, argv, "--date must be YYYY-MM-DD")
    (workspace / "train_gpt.py").unlink()
    refusal(workspace, capsys, args_for(workspace), "cannot read the training script")


def test_folder_name_sanitising():
    assert package.folder_name(" ASQU  on March-22 (v2)! ") == "ASQU_on_March-22_v2"
    with pytest.raises(package.PackageError):
        package.folder_name("!!!")
