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
import runlog  # noqa: E402
from synth_log import FAKE_SOURCE, make_log, sliding_pair  # noqa: E402

LOSSES = {1337: 1.89576235, 42: 1.89711111, 2024: 1.89650000}
CODE_BYTES = len(FAKE_SOURCE.encode("utf-8"))
PACKED = runlog.import_trainer().packed_source(FAKE_SOURCE)  # the folder's train_gpt.py unless --no-pack


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
    """A record-track log of the current train_gpt.py (config, fingerprint and device lines)."""
    options = dict(source=FAKE_SOURCE, torchrun_noise=True, steps=7096, last_train_time_ms=600036,
                   code_bytes=CODE_BYTES, train_every=1000, val_every=4000, config={})
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
        "README.md", "requirements.txt", "submission.json", "train_gpt.py", "train_gpt_human.py", "train_seed1337.log",
        "train_seed2024.log", "train_seed42.log",
    ]
    # train_gpt.py packed by the trainer's own function, the source beside it; the totals count the packed bytes
    assert (target / "train_gpt.py").read_bytes() == PACKED and len(PACKED) < CODE_BYTES
    assert (target / "train_gpt_human.py").read_bytes() == (workspace / "train_gpt.py").read_bytes()
    assert (target / "train_seed42.log").read_bytes() == (workspace / "runs" / "asqu_seed42.txt").read_bytes()
    record = json.loads((target / "submission.json").read_text())
    assert set(record) == {"author", "github_id", "name", "blurb", "date", "val_loss", "val_bpb",
                           "bytes_total", "bytes_code"}
    losses = [float(f"{v:.8f}") for v in LOSSES.values()]
    bpbs = [float(f"{sliding_pair(v)[1]:.8f}") for v in LOSSES.values()]
    assert record["val_loss"] == pytest.approx(np.mean(losses), abs=1e-8)
    assert record["val_bpb"] == pytest.approx(np.mean(bpbs), abs=1e-8)
    assert record["bytes_code"] == len(PACKED)
    assert record["bytes_total"] == 15487414 + len(PACKED)  # this log counted the source: counted again, packed
    assert record["date"] == "2026-04-02" and record["name"] == "ASQU 11L" and record["github_id"] == "jdoe"
    readme = (target / "README.md").read_text()
    assert readme.startswith("# ASQU 11L\n")
    for seed in LOSSES:
        assert f"| {seed} | 7096 |" in readme
    assert "| **mean** |" in readme and f"{record['val_bpb']:.8f}" in readme
    assert "MLP_ACTIVATION: `asqu`" in readme.replace("MLP activation", "MLP_ACTIVATION")
    # Reproduce: the data command of the logs' dataset, then per seed the log's own config variables
    block = readme.split("## Reproduce")[1].split("```bash\n")[1].split("```")[0].splitlines()
    assert block == [
        "python3 data/cached_challenge_fineweb.py --variant sp1024",
        "SEED=42 torchrun --standalone --nproc_per_node=8 train_gpt.py",
        "torchrun --standalone --nproc_per_node=8 train_gpt.py",  # seed 1337: every setting default
        "SEED=2024 torchrun --standalone --nproc_per_node=8 train_gpt.py",
    ]
    assert "Not checked: tools/package.py was run without --against" in readme
    checks = readme.split("## Checks (tools/package.py)")[1]  # the record track's own rules were applied: said
    assert "- CUDA, world_size 8, dataset fineweb10B_sp1024 with 62,021,632 val tokens, at least 3 seeds" in checks
    assert "- training within 600 s (+" in checks
    assert (target / "requirements.txt").read_text().splitlines()[1:] == [
        "torch==2.13.0  # the logs show PyTorch 2.13.0+cu128", "numpy", "sentencepiece", "zstandard",
        "flash_attn_3  # FlashAttention 3 (Hopper build, imported as flash_attn_interface)"]
    # nothing else was left in records/ (no staging folder)
    assert [p.name for p in (workspace / "records" / "track_10min_16mb").iterdir()] == ["2026-04-02_ASQU_11L"]


def test_non_record_track_accepts_one_long_run(workspace):
    only = write_log(workspace / "solo.txt", seed=5, last_train_time_ms=900000, stopped_early=False,
                     attention="sdpa", eval_ms=(2000, 9000, 700000), compressor="brotli")
    assert package.main(args_for(workspace, "--track", "non_record_16mb", logs=[str(only)])) == 0
    target = workspace / "records" / "track_non_record_16mb" / "2026-04-02_ASQU_11L"
    assert (target / "train_seed5.log").is_file()
    requirements = (target / "requirements.txt").read_text()
    assert "flash" not in requirements  # the log says attention:sdpa
    assert "brotli>=1.2" in requirements.splitlines() and "zstandard" not in requirements  # int6+brotli


def test_run_folders_from_a_sweep_are_accepted(workspace):
    for seed in LOSSES:
        run_dir = workspace / "sweep" / f"asqu_seed{seed}"
        (run_dir / "logs").mkdir(parents=True)
        write_log(run_dir / "logs" / f"asqu_seed{seed}.txt", seed=seed)
        write_log(run_dir / f"train_seed{seed}.log", seed=seed)
    dirs = [str(workspace / "sweep" / f"asqu_seed{s}") for s in LOSSES]
    assert package.main(args_for(workspace, logs=dirs)) == 0


def refusal(ws: Path, capsys, argv: list[str], message: str, lines: int = 1) -> str:
    before = records_content(ws)
    assert package.main(argv) == 1
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == lines, err  # one clear message per problem
    assert all(line.startswith("package: refused: ") for line in err.splitlines())
    assert records_content(ws) == before  # nothing written
    return err


def test_refuses_truncated_log(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, crash_at_step=3000)
    refusal(workspace, capsys, args_for(workspace), f"{bad} is truncated or from a crashed run")


def test_refuses_log_without_sliding_line(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, sliding=None)
    refusal(workspace, capsys, args_for(workspace), "lacks final_int6_sliding_window_exact")


def test_refuses_oversize_run(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed2024.txt", seed=2024, serialized_bytes=16_000_001 - len(PACKED))
    refusal(workspace, capsys, args_for(workspace), f"{bad}: total submission size 16,000,001 bytes")


def test_size_limit_is_inclusive(workspace):
    write_log(workspace / "runs" / "asqu_seed2024.txt", seed=2024, serialized_bytes=16_000_000 - len(PACKED))
    assert package.main(args_for(workspace)) == 0


def test_total_counts_the_train_gpt_py_the_folder_holds(workspace, capsys):
    """Packed (the default) the total counts the packed bytes; --no-pack the readable source's, 1 byte over here."""
    bad = write_log(workspace / "runs" / "asqu_seed2024.txt", seed=2024, serialized_bytes=16_000_001 - CODE_BYTES)
    refusal(workspace, capsys, args_for(workspace, "--no-pack"), f"{bad}: total submission size 16,000,001 bytes")
    assert package.main(args_for(workspace)) == 0
    target = workspace / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L"
    record = json.loads((target / "submission.json").read_text())
    assert record["bytes_total"] == 16_000_001 - CODE_BYTES + len(PACKED) and record["bytes_code"] == len(PACKED)
    assert package.main(["--audit", str(target)]) == 0, capsys.readouterr().out  # the audit counts the same way


def test_no_pack_writes_the_source_as_it_is(workspace):
    assert package.main(args_for(workspace, "--no-pack")) == 0
    target = workspace / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L"
    assert (target / "train_gpt.py").read_bytes() == (workspace / "train_gpt.py").read_bytes()
    assert not (target / "train_gpt_human.py").exists()
    assert json.loads((target / "submission.json").read_text())["bytes_total"] == 15487414 + CODE_BYTES


def test_refuses_an_artifact_of_no_log(workspace, capsys):
    other = workspace / "other.ptz"
    other.write_bytes(b"x" * 1000)
    refusal(workspace, capsys, args_for(workspace, "--with-artifact", str(other)),
            f"--with-artifact {other}: no such file, or no log here has a Serialized model of its size")


def test_refuses_overtime_run_on_record_track(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed1337.txt", seed=1337,
                    last_train_time_ms=600_000 + package.TRAIN_TIME_TOLERANCE_MS + 1)
    refusal(workspace, capsys, args_for(workspace), f"{bad}: train_time 601,001 ms is over the 600,000 ms cap")


def test_overtime_without_stopping_early_line_is_refused(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed1337.txt", seed=1337, stopped_early=False,
              last_train_time_ms=650_000)
    refusal(workspace, capsys, args_for(workspace), "train_time 650,000 ms is over")


def test_within_tolerance_is_accepted(workspace):
    write_log(workspace / "runs" / "asqu_seed1337.txt", seed=1337, last_train_time_ms=600_999)
    assert package.main(args_for(workspace)) == 0


def test_refuses_source_that_differs_from_the_dump(workspace, capsys):
    (workspace / "train_gpt.py").write_text(FAKE_SOURCE.replace("import os", "import os  # edited"))
    err = refusal(workspace, capsys, args_for(workspace), "not byte-identical to the script to package "
                  "(first difference at line 7)", lines=3)
    for seed in LOSSES:  # one line per log
        assert f"asqu_seed{seed}.txt: the train_gpt.py source dumped in the log" in err


def test_refuses_trailing_newline_difference(workspace, capsys):
    (workspace / "train_gpt.py").write_text(FAKE_SOURCE + "\n")
    refusal(workspace, capsys, args_for(workspace), "not byte-identical", lines=3)


def test_log_without_dump_is_checked_by_code_size(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, source=None, code_bytes=CODE_BYTES + 3)
    refusal(workspace, capsys, args_for(workspace), "Code size (879 bytes) differs")
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, source=None, code_bytes=CODE_BYTES)
    assert package.main(args_for(workspace)) == 0
    assert "matched by code size only" in capsys.readouterr().err


def test_refuses_fewer_than_three_seeds_on_record_track(workspace, capsys):
    (workspace / "runs" / "asqu_seed2024.txt").unlink()
    refusal(workspace, capsys, args_for(workspace), "needs at least 3 distinct seeds")


def test_refuses_mixed_activations(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, activation="relu2")
    refusal(workspace, capsys, args_for(workspace), "the runs mix mlp_activation values")


def test_mixed_activations_with_the_same_seeds_are_not_called_duplicate_seeds(workspace, capsys):
    for seed in LOSSES:
        write_log(workspace / "runs" / f"relu2_seed{seed}.txt", seed=seed, activation="relu2")
    refusal(workspace, capsys, args_for(workspace), "the runs mix mlp_activation values")


def test_refuses_different_fingerprints(workspace, capsys):
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, config={"NUM_LAYERS": "10"})
    refusal(workspace, capsys, args_for(workspace), "the runs have different config fingerprints")


def test_refuses_duplicate_seed(workspace, capsys):
    write_log(workspace / "runs" / "again.txt", seed=42, sliding=sliding_pair(1.8))  # another run, seed 42
    refusal(workspace, capsys, args_for(workspace), "seed 42 appears twice")


def test_the_same_run_given_twice_counts_once(workspace, capsys):
    copy = workspace / "copy.txt"
    copy.write_bytes((workspace / "runs" / "asqu_seed42.txt").read_bytes())
    assert package.main(args_for(workspace, logs=[*sorted(str(p) for p in (workspace / "runs").iterdir()),
                                                  str(copy)])) == 0
    assert "the same run as" in capsys.readouterr().err


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


def sample_run_logs(ws: Path) -> list[str]:
    """Three quickstart runs of issue 13: sample data, 4 layers, 10 steps, CPU, 2 processes."""
    paths = []
    for seed in (1, 2, 3):
        config = {"DATA_PATH": "./data/datasets/sample_sp1024", "TOKENIZER_PATH": "./data/tokenizers/sample_1024_bpe.model",
                  "MLP_ACTIVATION": "asqu", "ITERATIONS": "10", "NUM_LAYERS": "4"}
        paths.append(str(write_log(ws / "sample" / f"train_seed{seed}.log", seed=seed, config=config, device="cpu",
                                   attention="sdpa", world_size=2, dataset="sample_sp1024", val_tokens=47360,
                                   model_params=835476, steps=10, iterations=10, stopped_early=False,
                                   last_train_time_ms=None, step_avg_ms=900.0, train_every=1, val_every=0,
                                   sliding=sliding_pair(5.9 + seed / 100))))
    return paths


def test_sample_data_runs_are_refused_for_the_record_track_with_every_reason(workspace, capsys):
    (workspace / "sample").mkdir()
    logs = sample_run_logs(workspace)
    err = refusal(workspace, capsys, args_for(workspace, logs=logs), "device is cpu", lines=12)
    for log in logs:
        assert f"{log}: device is cpu; the record track runs on CUDA" in err
        assert f"{log}: world_size is 2; the record track needs world_size 8" in err
        assert f"{log}: dataset is sample_sp1024; the record track needs dataset fineweb10B_sp1024" in err
        assert f"{log}: val_tokens is 47,360; the record track needs val_tokens 62,021,632" in err


def test_sample_data_runs_are_accepted_for_the_non_record_track(workspace, capsys):
    (workspace / "sample").mkdir()
    logs = sample_run_logs(workspace)
    assert package.main(args_for(workspace, "--track", "non_record_16mb", logs=logs)) == 0
    readme = (workspace / "records" / "track_non_record_16mb" / "2026-04-02_ASQU_11L" / "README.md").read_text()
    setup = readme.split("## Setup (from the logs)")[1].split("## Results")[0]
    assert "| seed | device | world size | dataset | val tokens | steps |" in setup
    assert "world_size 8" not in readme.split("## Checks (tools/package.py)")[1]  # not checked on this track
    for seed in (1, 2, 3):
        assert f"| {seed} | cpu | 2 | sample_sp1024 | 47,360 | 10 | sdpa | 2.13.0+cu128 |" in setup
    block = readme.split("```bash\n")[1].split("```")[0].splitlines()
    assert block == ["python3 data/build_sample.py"] + [
        f"DATA_PATH=./data/datasets/sample_sp1024 TOKENIZER_PATH=./data/tokenizers/sample_1024_bpe.model SEED={seed} "
        "MLP_ACTIVATION=asqu ITERATIONS=10 NUM_LAYERS=4 torchrun --standalone --nproc_per_node=2 train_gpt.py"
        for seed in (1, 2, 3)]


def test_published_logs_miss_fields_the_record_track_needs(workspace, capsys):
    for seed in LOSSES:  # the record's own format: no config, fingerprint or device lines
        write_log(workspace / "runs" / f"asqu_seed{seed}.txt", seed=seed, config=None)
    err = refusal(workspace, capsys, args_for(workspace), "the log does not show device", lines=6)
    assert err.count("the log does not show config_fingerprint") == 3


def test_record_track_refuses_a_run_whose_final_evaluations_exceed_600_s(workspace, capsys):
    bad = write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, eval_ms=(2_000, 10_000, 588_001))
    err = refusal(workspace, capsys, args_for(workspace), f"{bad}: eval_time of the final evaluations is 600.0 s")
    assert "DIAGNOSTIC post_ema 2.0 s + final_int6_roundtrip 10.0 s + final_int6_sliding_window 588.0 s" in err
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, eval_ms=(2_000, 10_000, 588_000))  # exactly 600 s
    assert package.main(args_for(workspace)) == 0


def test_check_validates_and_writes_nothing(workspace, capsys):
    assert package.main(args_for(workspace, "--check")) == 0
    out = capsys.readouterr().out
    assert "check passed; would write" in out and "record criterion: Not checked" in out
    assert records_content(workspace) == []
    write_log(workspace / "runs" / "asqu_seed42.txt", seed=42, world_size=4)
    refusal(workspace, capsys, args_for(workspace, "--check"), "world_size is 4")


@pytest.mark.parametrize("sota_losses, verdict", [
    ([1.9060, 1.9055, 1.9066], "**MET**"),      # ours are ~0.0097 nats lower
    ([1.8990, 1.8985, 1.8996], "**NOT MET**"),  # ~0.0027 nats: below the 0.005 margin
])
def test_against_puts_the_record_criterion_in_the_readme(workspace, capsys, sota_losses, verdict):
    sota = workspace / "sota"
    sota.mkdir()
    for seed, loss in zip(LOSSES, sota_losses):
        write_log(sota / f"train_seed{seed}.log", seed=seed, activation="relu2", sliding=sliding_pair(loss), config=None)
    argv = args_for(workspace) + ["--against", *sorted(str(p) for p in sota.iterdir())]
    assert package.main(argv) == 0
    readme = (workspace / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L" / "README.md").read_text()
    section = readme.split("## Record criterion")[1].split("## Reproduce")[0]
    assert "Against 3 SOTA run(s)" in section and verdict in section
    assert "Not checked" not in readme


def test_reproduce_block_never_invents_a_command(workspace, capsys):
    (workspace / "old").mkdir()
    logs = [str(write_log(workspace / "old" / f"train_seed{seed}.log", seed=seed, config=None)) for seed in (1, 2)]
    logs.append(str(write_log(workspace / "old" / "train_seed3.log", seed=3, dataset="my_corpus",
                              config={"DATA_PATH": "/home/me/data/my_corpus"})))
    assert package.main(args_for(workspace, "--track", "non_record_16mb", logs=logs)) == 0
    readme = (workspace / "records" / "track_non_record_16mb" / "2026-04-02_ASQU_11L" / "README.md").read_text()
    block = readme.split("```bash\n")[1].split("```")[0].splitlines()
    assert block == [
        "python3 data/cached_challenge_fineweb.py --variant sp1024",
        "# no known command builds the dataset my_corpus; provide it yourself",
        "# DATA_PATH / TOKENIZER_PATH below are paths on the machine that ran the logs: point them at the data built above",
        "# seed 1 (train_seed1.log): the log has no config line, so the run's settings are unknown; no command given",
        "# seed 2 (train_seed2.log): the log has no config line, so the run's settings are unknown; no command given",
        "DATA_PATH=/home/me/data/my_corpus SEED=3 torchrun --standalone --nproc_per_node=8 train_gpt.py",
    ]


def test_track_accepts_the_folder_name(workspace, capsys):
    argv = args_for(workspace, "--check", "--track", "track_non_record_16mb")
    assert package.main(argv) == 0
    assert "track_non_record_16mb" in capsys.readouterr().out
