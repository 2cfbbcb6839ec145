"""tools/package.py --audit FOLDER: the packaging rules applied to an existing records/ folder."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "fixtures" / "record_2026-03-22"  # the March 22 record's published folder
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "logs"))

import package  # noqa: E402
from synth_log import make_log, sliding_pair  # noqa: E402
from test_tools_package import LOSSES, args_for, workspace, write_log  # noqa: E402,F401 (workspace: a fixture)


def run_audit(capsys, folder: Path, *extra: str) -> tuple[int, list[str], list[str]]:
    """(exit status, fault lines, note lines) of `package.py --audit FOLDER ...`."""
    status = package.main(["--audit", str(folder), *extra])
    out = capsys.readouterr().out.splitlines()
    faults = [line.removeprefix("package: audit: fault: ") for line in out if line.startswith("package: audit: fault:")]
    notes = [line.removeprefix("package: audit: note: ") for line in out if line.startswith("package: audit: note:")]
    return status, faults, notes


def test_the_march_22_record_folder_passes_on_what_its_logs_show(capsys):
    status, faults, notes = run_audit(capsys, RECORD)
    assert status == 0 and faults == []
    text = "\n".join(notes)
    # its claim is seed 1337's figure, not the mean of the folder's name (1.1233), and the audit says so
    assert ("claims val_bpb 1.12278022: seed 1337's final_int6_sliding_window (train_seed1337.log), not the mean "
            "1.12331641") in text
    assert "claims bytes_total 15555017: seed 1337's" in text
    # what the challenge's own lines do not show is noted, not failed
    assert text.count("does not show device") == 3 and text.count("does not show config_fingerprint") == 3
    assert "no train_gpt.py beside the logs" in text


def previous_row(tmp_path: Path, bpbs: list[float]) -> list[str]:
    """Logs in the challenge's format (no config line) of a 'previous leaderboard row' with these sliding BPBs."""
    paths = []
    for seed, bpb in zip((1337, 42, 2024), bpbs):
        loss = bpb * 1.89576235 / 1.12278022
        path = tmp_path / "previous" / f"train_seed{seed}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make_log(seed=seed, activation=None, sliding=(loss, bpb)), encoding="utf-8")
        paths.append(str(path))
    return paths


def test_significance_under_both_rules(capsys, tmp_path):
    # the March 22 record against its predecessor's three seeds (1.1246 mean): ahead, but not by 0.005 nats
    before = previous_row(tmp_path, [1.12440, 1.12470, 1.12480])
    status, faults, notes = run_audit(capsys, RECORD, "--against", *before)
    assert status == 0 and faults == [], faults
    text = "\n".join(notes)
    assert "README rule against 3 SOTA log(s) scored by final_int6_sliding_window_exact" in text
    assert "(>= 0.005 nats at one-sided p < 0.01): NOT MET" in text
    assert "maintainers' merge practice (one-sided Welch p < 0.25" in text and ": met: mean 1.12331641" in text
    # against a better row the merge practice fails: a fault
    better = previous_row(tmp_path / "b", [1.12200, 1.12250, 1.12300])
    status, faults, _ = run_audit(capsys, RECORD, "--against", *better)
    assert status == 1 and len(faults) == 1 and "maintainers' merge practice" in faults[0] and "not met" in faults[0]


@pytest.fixture
def packaged(workspace):
    """A records/track_10min_16mb/ folder written by package.py from three complete synthetic runs."""
    assert package.main(args_for(workspace)) == 0
    return workspace / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L"


def test_a_folder_made_by_package_passes(packaged, capsys):
    capsys.readouterr()
    status, faults, notes = run_audit(capsys, packaged)
    assert status == 0 and faults == [], faults
    assert any("claims val_bpb" in n and "the mean of 3 logs" in n for n in notes), notes
    assert not any("does not show" in n for n in notes)  # our logs show everything the rules need


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def doctor_size(folder: Path) -> None:
    """A model 1 byte too large: the audit counts it with the folder's train_gpt.py (packed), as package.py does."""
    log = folder / "train_seed42.log"
    model = next(line for line in log.read_text().splitlines() if line.startswith("Serialized model int6"))
    code = (folder / "train_gpt.py").stat().st_size
    replace_in(log, model, f"Serialized model int6+zstd: {16_000_001 - code} bytes")


def doctor_claimed_mean(folder: Path) -> None:
    record = json.loads((folder / "submission.json").read_text())
    record["val_bpb"] = round(record["val_bpb"] + 0.001, 8)
    (folder / "submission.json").write_text(json.dumps(record), encoding="utf-8")


DOCTORED = {
    "size": (doctor_size, "train_seed42.log: total submission size 16,000,001 bytes is over the 16,000,000-byte limit"),
    "time": (lambda f: replace_in(f / "train_seed1337.log", "stopping_early: wallclock_cap train_time:600036ms",
                                  "stopping_early: wallclock_cap train_time:650036ms"),
             "train_seed1337.log: train_time 650,036 ms is over the 600,000 ms cap"),
    "claimed mean": (doctor_claimed_mean, "submission.json: val_bpb "),
    "143 train shards": (lambda f: replace_in(f / "train_seed2024.log", "train_shards:80", "train_shards:143"),
                         "train_seed2024.log: train_shards is 143; the record track trains on the published 80"),
    "duplicate log": (lambda f: shutil.copyfile(f / "train_seed42.log", f / "train_seed42_rerun.log"),
                      "is a duplicate of"),
}


@pytest.mark.parametrize("fault", sorted(DOCTORED))
def test_each_fault_of_a_doctored_copy_is_named(packaged, capsys, fault):
    doctor, message = DOCTORED[fault]
    copy = packaged.parent / f"{packaged.name}_{fault.replace(' ', '_')}"
    shutil.copytree(packaged, copy)
    doctor(copy)
    capsys.readouterr()
    status, faults, _ = run_audit(capsys, copy)
    assert status == 1
    assert len(faults) == 1 and message in faults[0], faults
    if fault == "claimed mean":
        assert "equals no log's figure" in faults[0] and "nor their mean" in faults[0]


FAKE_EVALUATOR = '''"""A stand-in train_gpt.py with EVAL_ONLY: prints what the real one prints scoring an artifact."""
import hashlib
import os

path = os.environ["EVAL_ONLY"]
data = open(path, "rb").read()
print(f"eval_only: artifact:{path} sha256:{hashlib.sha256(data).hexdigest()} bytes:{len(data)}")
print(f"final_int6_roundtrip_exact val_loss:1.93592275 val_bpb:{os.environ.get('FAKE_ROUNDTRIP', '1.14656250')}")
print("final_int6_sliding_window_exact val_loss:1.89576235 val_bpb:1.12278022")
'''


@pytest.fixture
def folder_with_artifact(tmp_path, capsys):
    """A packaged folder whose train_gpt.py knows EVAL_ONLY, with seed 1337's 1,000-byte final_model.int6.ptz."""
    (tmp_path / "train_gpt.py").write_text(FAKE_EVALUATOR, encoding="utf-8")
    (tmp_path / "runs").mkdir()
    for extra, (seed, loss) in enumerate(LOSSES.items()):  # artifact sizes 1000 (seed 1337), 1001, 1002
        sliding = (1.89576235, 1.12278022) if seed == 1337 else sliding_pair(loss)
        write_log(tmp_path / "runs" / f"asqu_seed{seed}.txt", seed=seed, source=FAKE_EVALUATOR,
                  serialized_bytes=1000 + extra, code_bytes=len(FAKE_EVALUATOR.encode()), sliding=sliding)
    assert package.main(args_for(tmp_path)) == 0
    folder = tmp_path / "records" / "track_10min_16mb" / "2026-04-02_ASQU_11L"
    (folder / "final_model.int6.ptz").write_bytes(bytes(1000))
    (tmp_path / "data").mkdir()
    (tmp_path / "tok.model").write_bytes(b"")
    capsys.readouterr()
    return folder


def test_rescore_runs_the_folders_script_with_eval_only(folder_with_artifact, capsys, monkeypatch, tmp_path):
    data = ["--data", str(tmp_path / "data"), "--tokenizer", str(tmp_path / "tok.model")]
    status, faults, notes = run_audit(capsys, folder_with_artifact)
    assert status == 0 and "give --data and --tokenizer to score it again" in "\n".join(notes)
    status, faults, notes = run_audit(capsys, folder_with_artifact, *data)
    assert status == 0, faults
    assert "re-scored final_model.int6.ptz (sha256 541b3e9daa09...): roundtrip 1.1465625, sliding 1.12278022; " \
           "train_seed1337.log logged 1.1465625, 1.12278022" in notes
    assert sorted(p.name for p in folder_with_artifact.iterdir())[0] == "README.md"  # nothing written there
    monkeypatch.setenv("FAKE_ROUNDTRIP", "1.14700000")  # the artifact now scores other than its log says
    status, faults, _ = run_audit(capsys, folder_with_artifact, *data)
    assert status == 1 and len(faults) == 1
    assert "re-scored int6 roundtrip val_bpb 1.147 differs from the log's 1.1465625 by more than 1e-05" in faults[0]
    (folder_with_artifact / "final_model.int6.ptz").write_bytes(bytes(999))  # a stale artifact: no log's size
    status, faults, _ = run_audit(capsys, folder_with_artifact, *data)
    assert status == 1 and len(faults) == 1 and "(999 bytes) is the artifact of no log here" in faults[0]


@pytest.mark.skipif("EVAL_ONLY" not in (REPO / "train_gpt.py").read_text(encoding="utf-8"),
                    reason="train_gpt.py has no EVAL_ONLY yet (issue 21 item 3): the real re-score cannot run")
def test_rescore_with_the_real_train_gpt(trained_run, small_data, tmp_path, capsys):
    run_folder, _, _ = trained_run  # a finished tiny run (seed 7) on small_data
    folder = tmp_path / "records" / "track_non_record_16mb" / "audited"
    folder.mkdir(parents=True)
    source = (REPO / "train_gpt.py").read_text(encoding="utf-8")
    (folder / "train_gpt.py").write_bytes(package.packed_form(REPO / "train_gpt.py", source))  # as package.py writes
    shutil.copyfile(run_folder / "train_seed7.log", folder / "train_seed7.log")
    shutil.copyfile(run_folder / "final_model.int6.ptz", folder / "final_model.int6.ptz")
    run = package.runlog.parse_log(folder / "train_seed7.log")
    claims = {"val_bpb": run.sliding_val_bpb, "val_loss": run.sliding_val_loss, "bytes_total": run.submission_bytes}
    (folder / "submission.json").write_text(json.dumps(claims))
    status, faults, notes = run_audit(capsys, folder, "--data", small_data["data_path"],
                                      "--tokenizer", small_data["tokenizer"], "--rescore-tolerance", "1e-6")
    assert status == 0, faults
    assert any(n.startswith("re-scored final_model.int6.ptz") for n in notes), notes


def test_bad_input_is_one_line_and_no_traceback(tmp_path):
    script = [sys.executable, str(REPO / "tools" / "package.py")]
    missing = subprocess.run([*script, "--audit", str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stdout == ""
    expected = f"package: audit: error: --audit {tmp_path / 'nope'}: no such folder"
    assert missing.stderr.strip().splitlines() == [expected]
    both = subprocess.run([*script, "--audit", str(RECORD), "some.log"], capture_output=True, text=True)
    assert both.returncode == 2 and "give no LOG_OR_DIR with it" in both.stderr and "Traceback" not in both.stderr
    bare = subprocess.run([*script, "some.log"], capture_output=True, text=True)
    assert bare.returncode == 2 and "packaging needs LOG_OR_DIR and --name, --author" in bare.stderr
