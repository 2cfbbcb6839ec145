"""Tests of tools/compare.py: Welch statistics, quant gap, step time, record criterion."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import compare  # noqa: E402
import runlog  # noqa: E402
from synth_log import make_log, sliding_pair  # noqa: E402

SEEDS = (1337, 42, 2024, 7)


def write_runs(folder: Path, act: str, losses: list[float], *, step_avg=84.5, post_ema_bpb=1.1385,
               roundtrip_bpb=1.1466) -> list[Path]:
    paths = []
    for seed, loss in zip(SEEDS, losses):
        path = folder / f"{act}_seed{seed}.log"
        path.write_text(make_log(
            seed=seed, activation=act, sliding=sliding_pair(loss), steps=200, val_every=100,
            train_every=100, step_avg_ms=step_avg, post_ema=(post_ema_bpb * 1.6884, post_ema_bpb),
            roundtrip=(roundtrip_bpb * 1.6884, roundtrip_bpb),
        ))
        paths.append(path)
    return paths


def welch_by_hand(a, b):
    """Welch's t and the Welch-Satterthwaite degrees of freedom, from the textbook formulas."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df


def test_welch_statistics_match_scipy_and_the_formula(tmp_path):
    relu = [1.89602, 1.89655, 1.89571, 1.89630]
    asqu = [1.89011, 1.88904, 1.89102]
    write_runs(tmp_path, "relu2", relu, post_ema_bpb=1.1385, roundtrip_bpb=1.1466)
    write_runs(tmp_path, "asqu", asqu, post_ema_bpb=1.1360, roundtrip_bpb=1.1461)
    runs = runlog.collect_runs([tmp_path])
    result = compare.compare(runs, "relu2", "asqu")
    by_metric = {m["metric"]: m for m in result["metrics"]}

    # the same numbers as logged (8 decimals), recomputed independently
    a = [float(f"{x:.8f}") for x in relu]
    b = [float(f"{x:.8f}") for x in asqu]
    loss = by_metric["sliding_val_loss"]
    expected_two = stats.ttest_ind(b, a, equal_var=False)
    expected_one = stats.ttest_ind(b, a, equal_var=False, alternative="less")
    assert loss["n_a"] == 4 and loss["n_b"] == 3
    assert loss["mean_a"] == pytest.approx(np.mean(a), abs=1e-12)
    assert loss["mean_b"] == pytest.approx(np.mean(b), abs=1e-12)
    assert loss["diff_b_minus_a"] == pytest.approx(np.mean(b) - np.mean(a), abs=1e-12)
    assert loss["t"] == pytest.approx(expected_two.statistic, rel=1e-9)
    assert loss["p_two_sided"] == pytest.approx(expected_two.pvalue, rel=1e-9)
    assert loss["p_one_sided_b_lower"] == pytest.approx(expected_one.pvalue, rel=1e-9)
    t, df = welch_by_hand(a, b)
    assert loss["t"] == pytest.approx(t, rel=1e-9)
    assert loss["p_one_sided_b_lower"] == pytest.approx(stats.t.cdf(t, df), rel=1e-9)
    assert loss["p_two_sided"] == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)

    bpb = by_metric["sliding_val_bpb"]
    a_bpb = [float(f"{x / (1.9222 / 1.1385):.8f}") for x in relu]
    b_bpb = [float(f"{x / (1.9222 / 1.1385):.8f}") for x in asqu]
    assert bpb["p_two_sided"] == pytest.approx(stats.ttest_ind(b_bpb, a_bpb, equal_var=False).pvalue, rel=1e-7)

    # identical post-EMA values on each side: no variance, Welch undefined -> n/a
    assert by_metric["post_ema_val_bpb"]["p_two_sided"] is None
    assert by_metric["post_ema_val_bpb"]["diff_b_minus_a"] == pytest.approx(1.1360 - 1.1385)
    # quant gap = roundtrip - post-EMA per activation
    assert result["quant_gap_bpb"]["relu2"]["mean"] == pytest.approx(1.1466 - 1.1385)
    assert result["quant_gap_bpb"]["asqu"]["mean"] == pytest.approx(1.1461 - 1.1360)


def test_criterion_met(tmp_path, capsys):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966, 1.8957], step_avg=84.5)
    write_runs(tmp_path, "asqu", [1.8880, 1.8877, 1.8886], step_avg=88.8)
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "MET" in out and "NOT MET" not in out
    assert "shown at one-sided Welch p < 0.01" in out
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    crit = result["criterion"]
    assert crit["met"] is True
    assert crit["improvement"] == pytest.approx(0.0080, abs=1e-9)
    b, a = [1.888, 1.8877, 1.8886], [1.896, 1.8966, 1.8957]
    p = stats.ttest_ind(b, a, equal_var=False, alternative="less").pvalue
    assert crit["p_one_sided"] == pytest.approx(p, rel=1e-9)
    p_margin = stats.ttest_ind(b, [x - 0.005 for x in a], equal_var=False, alternative="less").pvalue
    assert crit["p_margin"] == pytest.approx(p_margin, rel=1e-9) and p_margin < 0.01
    assert result["step_time_ratio_b_over_a"] == pytest.approx(88.8 / 84.5, rel=1e-3)
    assert result["a"]["seeds"] == [42, 1337, 2024]


def test_step_time_line_in_text(tmp_path, capsys):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966], step_avg=80.0)
    write_runs(tmp_path, "asqu", [1.8900, 1.8897], step_avg=84.0)
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ratio asqu/relu2 1.0500 (+5.0%)" in out
    assert "quant gap (int6 roundtrip - post-EMA BPB) relu2: +0.00810" in out


@pytest.mark.parametrize(
    "b_losses, reason",
    [
        ([1.8933, 1.8936, 1.8930], "below 0.005"),          # real but too small: 0.003 nats
        ([1.8840, 1.8990, 1.8900], "is not below 0.01"),      # 0.006 nats but noisy
        ([1.8900, 1.8897, 1.8906], "exceeds 0.005 nats is not below 0.01"),  # 0.006 nats, not shown beyond 0.005
    ],
)
def test_criterion_not_met(tmp_path, capsys, b_losses, reason):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966, 1.8957])
    write_runs(tmp_path, "asqu", b_losses)
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    crit = json.loads(capsys.readouterr().out)["criterion"]
    assert crit["met"] is False and reason in crit["reason"]
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 0
    assert "NOT MET" in capsys.readouterr().out


def test_fewer_than_two_runs_per_side_is_na(tmp_path, capsys):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966, 1.8957])
    write_runs(tmp_path, "asqu", [1.8800])
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("sliding val_loss")]
    assert table and table[0].split()[-3:] == ["n/a", "n/a", "n/a"]
    assert "NOT MET" in out and "cannot be assessed" in out


def test_unfinished_runs_are_left_out_and_missing_activation_is_an_error(tmp_path, capsys):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966])
    write_runs(tmp_path, "asqu", [1.8900, 1.8897])
    (tmp_path / "asqu_seed99.log").write_text(make_log(seed=99, activation="asqu", steps=200, crash_at_step=50))
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["b"]["seeds"]) == [42, 1337]
    assert [Path(p).name for p in result["skipped_unfinished"]] == ["asqu_seed99.log"]
    assert compare.main(["relu2", "leaky2", str(tmp_path)]) == 2
    assert "no finished runs with mlp_activation leaky2" in capsys.readouterr().err


def test_leaky_relu2_alias_is_accepted(tmp_path, capsys):
    # train_gpt.py accepts MLP_ACTIVATION=leaky_relu2 and the parser stores it as leaky2,
    # so compare (and sweep's report, which passes --activations through) must accept the alias.
    write_runs(tmp_path, "relu2", [1.8960, 1.8966])
    write_runs(tmp_path, "leaky_relu2", [1.8950, 1.8953])
    assert compare.main(["relu2", "leaky_relu2", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["b"]["activation"] == "leaky2" and sorted(result["b"]["seeds"]) == [42, 1337]
    assert compare.main(["leaky2", "leaky_relu2", str(tmp_path)]) == 2
    assert "different activations" in capsys.readouterr().err


def test_check_exit_codes(tmp_path, capsys):
    met, not_met = tmp_path / "met", tmp_path / "not_met"
    for folder, b_losses in ((met, [1.8880, 1.8877, 1.8886]), (not_met, [1.8933, 1.8936, 1.8930])):
        folder.mkdir()
        write_runs(folder, "relu2", [1.8960, 1.8966, 1.8957])
        write_runs(folder, "asqu", b_losses)
    assert compare.main(["relu2", "asqu", str(met), "--check"]) == 0
    assert compare.main(["relu2", "asqu", str(not_met), "--check"]) == 1
    assert "NOT MET" in capsys.readouterr().out
    assert compare.main(["relu2", "asqu", str(not_met), "--check", "--json"]) == 1
    assert compare.main(["relu2", "asqu", str(not_met)]) == 0  # without --check: a report, exit 0
    capsys.readouterr()


def test_degrees_of_freedom_and_confidence_interval(tmp_path, capsys):
    relu = [1.89602, 1.89655, 1.89571, 1.89630]
    asqu = [1.89011, 1.88904, 1.89102]
    write_runs(tmp_path, "relu2", relu)
    write_runs(tmp_path, "asqu", asqu)
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    loss = next(m for m in json.loads(capsys.readouterr().out)["metrics"] if m["metric"] == "sliding_val_loss")
    a = [float(f"{x:.8f}") for x in relu]
    b = [float(f"{x:.8f}") for x in asqu]
    t, df = welch_by_hand(a, b)
    assert loss["df"] == pytest.approx(df, rel=1e-9)
    half = stats.t.ppf(0.975, df) * math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    diff = np.mean(b) - np.mean(a)
    assert loss["ci95_low"] == pytest.approx(diff - half, rel=1e-9)
    assert loss["ci95_high"] == pytest.approx(diff + half, rel=1e-9)
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("figure"))
    assert "95% CI of B - A" in header and " df " in header
    row = next(line for line in out.splitlines() if line.startswith("sliding val_loss"))
    assert f"[{diff - half:+.5f}, {diff + half:+.5f}]" in row and f"{df:.2f}" in row.split()


def test_arms_that_differ_beyond_the_activation_are_refused(tmp_path, capsys):
    def write(act, seed, loss, config, **kw):
        (tmp_path / f"{act}_seed{seed}.log").write_text(make_log(
            seed=seed, activation=act, sliding=sliding_pair(loss), steps=60, val_every=30, train_every=30,
            config=config, **kw))

    write("relu2", 1, 1.8960, {"NUM_LAYERS": "4"})
    write("relu2", 2, 1.8966, {"NUM_LAYERS": "4"})
    write("asqu", 1, 1.8900, {"NUM_LAYERS": "3", "ASQU_LR": "0.01"})
    write("asqu", 2, 1.8897, {"NUM_LAYERS": "3", "ASQU_LR": "0.01"}, world_size=2)
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differ in more than the activation" in err
    assert "NUM_LAYERS=4 vs NUM_LAYERS=3" in err and "world_size=8 vs world_size=2" in err
    assert "ASQU_LR" not in err  # a knob of the activation is not a difference
    assert "--allow-config-diff" in err
    assert compare.main(["relu2", "asqu", str(tmp_path), "--allow-config-diff"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: the arms differ (--allow-config-diff): NUM_LAYERS=4 vs NUM_LAYERS=3" in out
    # the same arms with only the knobs differing compare silently
    for path in tmp_path.iterdir():
        path.unlink()
    write("relu2", 1, 1.8960, {"NUM_LAYERS": "4"})
    write("relu2", 2, 1.8966, {"NUM_LAYERS": "4", "TRAIN_LOG_EVERY": "1"})
    write("asqu", 1, 1.8900, {"NUM_LAYERS": "4", "ASQU_LR": "0.01"})
    write("asqu", 2, 1.8897, {"NUM_LAYERS": "4", "ASQU_LR": "0.01"})
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config_differences"] == [] and result["without_config_line"] == []


def test_copies_of_a_run_count_once(tmp_path, capsys):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966])
    paths = write_runs(tmp_path, "asqu", [1.8900, 1.8897])
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "again.log").write_bytes(paths[0].read_bytes())
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result["b"]["seeds"]) == [42, 1337]
    assert next(m for m in result["metrics"] if m["metric"] == "sliding_val_loss")["n_b"] == 2


def test_non_finite_runs_are_left_out_and_the_counts_say_so(tmp_path, capsys):
    write_runs(tmp_path, "relu2", [1.8960, 1.8966, 1.8957])
    paths = write_runs(tmp_path, "asqu", [1.8880, 1.8877, float("nan")])
    assert compare.main(["relu2", "asqu", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["b"]["seeds"] == [42, 1337] and result["b"]["left_out_non_finite"] == [str(paths[2])]
    assert result["a"]["left_out_non_finite"] == []
    assert {(m["n_a"], m["n_b"]) for m in result["metrics"]} == {(3, 2)}  # every figure uses the runs counted
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (f"B = asqu: 2 runs (seeds 42, 1337); 1 more left out: non-finite final values "
                      f"(nan/inf, a diverged run): {paths[2]}")
    for path in paths[:2]:
        path.unlink()
    assert compare.main(["relu2", "asqu", str(tmp_path)]) == 2
    assert "no finished runs with mlp_activation asqu (found: relu2, asqu; 1 with non-finite results left out)" in (
        capsys.readouterr().err)
