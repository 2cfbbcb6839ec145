"""Tests of tools/summarize.py (table and --json) and the tools' command lines."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import summarize  # noqa: E402
from synth_log import make_log, sliding_pair  # noqa: E402

REQUIRED_KEYS = {"log", "seed", "mlp_activation", "steps", "step_avg_ms", "post_ema_val_bpb",
                 "roundtrip_val_bpb", "sliding_val_bpb", "submission_bytes"}


def run_json(capsys, *paths) -> list[dict]:
    assert summarize.main(["--json", *map(str, paths)]) == 0
    return json.loads(capsys.readouterr().out, parse_constant=reject_constant)


def reject_constant(name):
    raise AssertionError(f"not strict JSON: {name}")


def test_json_values_for_the_stored_fixtures(capsys):
    rows = run_json(capsys, FIXTURES / "asqu_seed1337_full.txt", FIXTURES / "relu2_seed42_crashed.txt",
                    FIXTURES / "legacy_seed2024.log")
    assert all(REQUIRED_KEYS <= set(row) for row in rows)
    by_name = {Path(row["log"]).name: row for row in rows}
    full, crashed, legacy = (by_name[n] for n in ("asqu_seed1337_full.txt", "relu2_seed42_crashed.txt",
                                                   "legacy_seed2024.log"))
    assert full["log"].endswith("asqu_seed1337_full.txt")
    assert {k: full[k] for k in REQUIRED_KEYS - {"log"}} == {
        "seed": 1337, "mlp_activation": "asqu", "steps": 1200, "step_avg_ms": 84.56,
        "post_ema_val_bpb": 1.1385, "roundtrip_val_bpb": 1.1465625, "sliding_val_bpb": 1.12278022,
        "submission_bytes": 15555017,
    }
    assert isinstance(full["seed"], int) and isinstance(full["steps"], int)
    assert isinstance(full["submission_bytes"], int)
    assert full["finished"] is True and full["missing_final_lines"] == []
    assert full["sliding_val_loss"] == 1.89576235
    assert crashed["seed"] == 42 and crashed["steps"] == 300 and crashed["finished"] is False
    for key in ("post_ema_val_bpb", "roundtrip_val_bpb", "sliding_val_bpb", "submission_bytes"):
        assert crashed[key] is None
    assert legacy["mlp_activation"] == "unknown" and legacy["mlp_activation_logged"] is False  # not stated
    assert legacy["sliding_val_bpb"] is None and legacy["roundtrip_val_bpb"] == 1.1465625
    assert legacy["finished"] is False and legacy["status"] == "truncated"  # no sliding line
    # three runs that differ (activation, iterations): three groups
    assert sorted(row["group"] for row in rows) == [1, 2, 3]


def test_table_has_rows_and_mean_std_per_activation(tmp_path, capsys):
    losses = {"relu2": [1.8960, 1.8971, 1.8955], "asqu": [1.8901, 1.8893, 1.8910]}
    for act, values in losses.items():
        for seed, loss in zip((1337, 42, 2024), values):
            (tmp_path / f"{act}_seed{seed}.log").write_text(
                make_log(seed=seed, activation=act, sliding=sliding_pair(loss), steps=300,
                         val_every=100, train_every=100))
    (tmp_path / "asqu_seed7.log").write_text(make_log(seed=7, activation="asqu", steps=300, crash_at_step=150))
    assert summarize.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the runs table (beta tables follow)
    assert out[0].split()[:3] == ["activation", "seed", "steps"]
    run_rows = [line for line in out[1:] if line.split()[1].isdigit()]
    assert len(run_rows) == 7
    assert sum("truncated" in line for line in run_rows) == 1
    for act, values in losses.items():
        mean_row = next(line for line in out if line.startswith(f"{act} mean"))
        std_row = next(line for line in out if line.startswith(f"{act} std"))
        assert f"{np.mean(values):.8f}" in mean_row.split()
        assert f"{np.std(values, ddof=1):.8f}" in std_row.split()
    assert "n=3 of 4" in next(line for line in out if line.startswith("asqu mean"))
    # relu2 rows come before asqu rows
    assert out.index(next(line for line in out if line.startswith("relu2 mean"))) < out.index(
        next(line for line in out if line.startswith("asqu mean")))


def test_runs_that_differ_are_not_pooled(tmp_path, capsys):
    def write(name, seed, loss, **kw):
        (tmp_path / name).write_text(make_log(seed=seed, activation="asqu", sliding=sliding_pair(loss), steps=60,
                                              val_every=30, train_every=30, **kw))

    write("a1.log", 1, 1.90, config={"NUM_LAYERS": "4"})
    write("a2.log", 2, 1.92, config={"NUM_LAYERS": "4", "VAL_LOSS_EVERY": "0"})  # logging only: same group
    write("b1.log", 1, 1.80, config={"NUM_LAYERS": "3"})
    write("c1.log", 1, 1.70, config={"NUM_LAYERS": "4"}, dataset="sample_sp1024", val_tokens=47360)
    write("old1.log", 1, 1.60, iterations=1200)  # no config line: grouped by what the log shows
    write("old2.log", 2, 1.50, iterations=10)
    rows = run_json(capsys, tmp_path)
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(Path(row["log"]).name)
    assert sorted(sorted(g) for g in groups.values()) == [["a1.log", "a2.log"], ["b1.log"], ["c1.log"],
                                                          ["old1.log"], ["old2.log"]]
    assert summarize.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    means = [line for line in out if line.startswith("asqu mean")]
    assert len(means) == 5
    assert sum("1.91000000" in line.split() for line in means) == 1  # a1 + a2 pooled, nothing else
    assert sum(line.startswith("group ") for line in out) == 5
    assert any("sample_sp1024" in line for line in out if line.startswith("group "))


def test_copies_of_a_run_count_once(tmp_path, capsys):
    text = make_log(seed=1, steps=60, val_every=30, train_every=30, config={}, run_id="r1")
    for rel in ("logs/r1.txt", "train_seed1.log", "records/track_10min_16mb/2026-01-01_X/train_seed1.log"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "README.md").write_text("# notes\nstep:1/2 train_loss:1.0 train_time:1ms step_avg:1.00ms\n")
    fixtures = tmp_path / "tests" / "fixtures" / "logs"
    fixtures.mkdir(parents=True)
    (fixtures / "x.log").write_text(make_log(seed=5, steps=60, val_every=30, train_every=30))
    rows = run_json(capsys, tmp_path)
    assert len(rows) == 1 and rows[0]["log"] == str(tmp_path / "train_seed1.log")
    assert sorted(rows[0]["duplicates"]) == [str(tmp_path / "logs" / "r1.txt"),
                                             str(tmp_path / "records/track_10min_16mb/2026-01-01_X/train_seed1.log")]
    assert summarize.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "n=1" in out and out.count("duplicate: ") == 2
    assert f"duplicate: {tmp_path / 'logs' / 'r1.txt'} (the same run as {tmp_path / 'train_seed1.log'}" in out


def test_json_is_strict_for_a_diverged_run(tmp_path, capsys):
    text = make_log(seed=1, steps=60, val_every=30, train_every=30).replace(
        "final_int6_roundtrip_exact val_loss:1.93592275 val_bpb:1.14656250",
        "final_int6_roundtrip_exact val_loss:nan val_bpb:nan")
    (tmp_path / "nan.log").write_text(text)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "summarize.py"), "--json", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "NaN" not in proc.stdout
    row = json.loads(proc.stdout, parse_constant=reject_constant)[0]
    assert row["roundtrip_val_bpb"] is None and row["quant_gap_bpb"] is None


def test_table_shows_values_as_logged(tmp_path, capsys):
    text = make_log(seed=1, steps=60, val_every=30, train_every=30, roundtrip=(1.9359, 1.146), sliding=None)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("final_int6_roundtrip_exact"))
    (tmp_path / "r.log").write_text(text + "\n")
    assert summarize.main([str(tmp_path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("asqu "))
    assert "1.1460" in row.split() and "1.14600000" not in row  # the rounded line's 4 decimals, not 8


def test_missing_path_and_empty_folder_are_clear_errors(tmp_path, capsys):
    assert summarize.main([str(tmp_path / "nope.txt")]) == 2
    assert "no such log file or folder" in capsys.readouterr().err
    assert summarize.main([str(tmp_path)]) == 2
    assert "no run logs found" in capsys.readouterr().err


def test_cli_script_json():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "summarize.py"), "--json",
                           str(FIXTURES / "asqu_seed1337_full.txt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert rows[0]["sliding_val_bpb"] == 1.12278022 and rows[0]["seed"] == 1337


@pytest.mark.parametrize("tool", ["summarize", "compare", "plots", "sweep", "package"])
def test_every_tool_has_help(tool):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


def test_final_beta_table_per_layer(tmp_path, capsys):
    betas = {1: [(0.20, 0.05, 0.10, 0.30), (0.40, 0.10, 0.00, 0.90)],
             2: [(0.30, 0.07, -0.20, 0.50), (0.50, 0.20, 0.10, 0.80)]}
    for seed, b in betas.items():
        (tmp_path / f"train_seed{seed}.log").write_text(make_log(seed=seed, layers=2, betas=b))
    (tmp_path / "train_seed3.log").write_text(make_log(seed=3, activation="relu2"))
    assert summarize.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if "final ASQU beta per layer" in line)
    assert sum("final ASQU beta per layer" in line for line in out) == 1  # the relu2 group has none
    rows = [line.split() for line in out[start + 2:start + 4]]
    assert rows[0] == ["0", "2", "0.2500", f"{np.std([0.2, 0.3], ddof=1):.4f}", "0.0600", "-0.2000", "0.5000"]
    assert rows[1] == ["1", "2", "0.4500", f"{np.std([0.4, 0.5], ddof=1):.4f}", "0.1500", "0.0000", "0.9000"]
    assert summarize.main(["--json", str(tmp_path / "train_seed2.log")]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert record["final_betas"][1] == {"layer": 1, "mean": 0.5, "std": 0.2, "min": 0.1, "max": 0.8}


def test_non_finite_run_is_counted_but_left_out_of_the_mean(tmp_path, capsys):
    for seed, loss in ((1, 1.8880), (2, 1.8890), (3, float("nan"))):
        (tmp_path / f"asqu_seed{seed}.log").write_text(make_log(seed=seed, sliding=sliding_pair(loss), steps=60,
                                                                val_every=30, train_every=30, config={}))
    assert summarize.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    mean_row = next(line for line in out if line.startswith("asqu mean"))
    assert "1.88850000" in mean_row.split() and mean_row.endswith("n=3 (1 non-finite, left out of the mean)")
    nan_row = next(line for line in out if line.endswith("asqu_seed3.log"))
    assert "finished (non-finite)" in nan_row and "nan" in nan_row.split()
    assert "runs" in out[out.index(next(x for x in out if "final ASQU beta" in x)) + 1]
    assert next(x for x in out if x.startswith("0 ")).split()[1] == "2"  # betas: the two finite runs
    rows = run_json(capsys, tmp_path)
    assert [r["non_finite"] for r in sorted(rows, key=lambda r: r["seed"])] == [
        [], [], ["sliding_val_loss", "sliding_val_bpb"]]


@pytest.mark.parametrize("tool, argv, line", [
    ("summarize", ["--jsn", "x"], "summarize.py: error: unrecognized arguments: --jsn; did you mean --json?"),
    ("compare", ["relu2", "asqu", "x", "--chek"],
     "compare.py: error: unrecognized arguments: --chek; did you mean --check?"),
    ("sweep", ["--activations", "relu2", "--seeds", "1", "--out", "o", "--wallclok", "3"],
     "sweep.py: error: unrecognized arguments: --wallclok 3; did you mean --wallclock?"),
    ("plots", ["x"], "plots.py: error: the following arguments are required: --out; see plots.py --help"),
])
def test_usage_errors_are_one_line_with_the_fix(tool, argv, line):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), *argv],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, line + "\n", "")


def test_compare_on_an_empty_folder_says_no_logs(tmp_path, capsys):
    import compare

    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"compare: error: no run logs found in {tmp_path}\n"


def test_a_closed_output_pipe_ends_quietly():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import runlog\n"
            "def main():\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "runlog.run_main(main)")
    proc = subprocess.run([sys.executable, "-c", code, str(REPO / "tools")], capture_output=True, text=True,
                          timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "")
