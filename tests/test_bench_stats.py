"""Tests of the benchmark scripts (no timing assertions): per-round ratios, median / min / max, the goal
verdict, round-by-round interleaving, the output header, and the step benchmark's real trainers."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import bench_asqu as bench  # noqa: E402


def test_spread_and_per_round_ratios():
    assert bench.spread([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)
    # ratios are taken within a round, not as a ratio of medians
    ratios = bench.per_round_ratios([2.0, 6.0, 3.0], [1.0, 3.0, 3.0])
    assert ratios == [2.0, 2.0, 1.0]
    assert bench.fmt_spread(ratios) == "2.000 [min 1.000, max 2.000]"
    assert bench.fmt_spread([12.345, 10.0], "{:.1f}") == "11.2 [min 10.0, max 12.3]"
    with pytest.raises(ValueError):
        bench.per_round_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        bench.spread([])


def test_goal_verdict_says_goal_not_met_plainly():
    assert bench.goal_verdict([1.05, 1.07, 1.10], 1.03).startswith("goal not met")
    assert "median 1.070" in bench.goal_verdict([1.05, 1.07, 1.10], 1.03)
    assert bench.goal_verdict([1.00, 1.01, 1.02], 1.03) == "goal <= 1.03 met in every round"
    partly = bench.goal_verdict([1.00, 1.01, 1.09], 1.03)
    assert "met by the median" in partly and "not in every round" in partly and "not met" not in partly


def test_rounds_rotate_the_order():
    items = ["a", "b", "c"]
    assert [bench.rotated(items, r) for r in range(4)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"],
                                                          ["a", "b", "c"]]


def test_header_names_date_torch_device_threads():
    text = bench.header("scripts/bench_asqu.py step", 5, "cpu")
    assert "# date 20" in text and f"torch {bench.torch.__version__}" in text
    assert "device cpu (" in text and f"threads: torch {bench.torch.get_num_threads()}" in text
    assert "NOTE" not in text
    assert "NOTE: fewer than 5 rounds" in bench.header("x", 1, "cpu")


def test_step_benchmark_builds_each_variant_once_then_interleaves(monkeypatch, capsys):
    built, calls = [], []
    per_step = {("eager", "relu2"): 100.0, ("eager", "asqu"): 110.0, ("compiled", "relu2"): 100.0,
                ("compiled", "asqu"): 105.0}

    def fake_build(act, compiled, warmup, data, extra):
        built.append(("compiled" if compiled else "eager", act))
        return built[-1]

    def fake_time(variant, steps):
        calls.append(variant)
        return per_step[variant] + len(calls) * 0.001

    monkeypatch.setattr(bench, "build_trainer", fake_build)
    monkeypatch.setattr(bench, "time_steps", fake_time)
    monkeypatch.setattr(bench, "sample_data", lambda: {})
    bench.bench_steps(5, 4, ["eager", "compiled"], {}, "MLP-heavy small")
    variants = [("eager", "relu2"), ("eager", "asqu"), ("compiled", "relu2"), ("compiled", "asqu")]
    assert built == variants  # every model built (and compiled) before the first timing
    assert calls == [v for r in range(5) for v in bench.rotated(variants, r)]
    out = capsys.readouterr().out
    assert ("eager     MLP_KERNEL=torch  asqu/relu2 x1.100 [min 1.100, max 1.100]: goal <= 1.25 met in every "
            "round") in out
    assert ("COMPILE=1 MLP_KERNEL=torch  asqu/relu2 x1.050 [min 1.050, max 1.050]: goal not met (goal <= 1.03, "
            "median 1.050)") in out
    assert "relu2 100.01 [min 100.00, max 100.02] ms/step" in out


def test_step_benchmark_trains_the_real_models(sample_data, monkeypatch, capsys):
    """One eager round on CPU: train_gpt.py's trainers really step (weights move, beta gets its gradient)."""
    monkeypatch.setattr(bench, "sample_data", lambda: sample_data)
    tr = bench.build_trainer("asqu", False, 1, sample_data, {"TRAIN_BATCH_TOKENS": "2048"})
    beta = tr.base.blocks[0].mlp.asqu.beta.detach().clone()
    assert tr.steps_done == 0 and bench.time_steps(tr, 2) > 0 and tr.steps_done == 2
    assert not torch.equal(beta, tr.base.blocks[0].mlp.asqu.beta)
    monkeypatch.setitem(bench.STEP_ENV, "TRAIN_BATCH_TOKENS", "2048")  # the MLP-heavy model, 8x smaller batches
    assert bench.main(["step", "--mode", "eager", "--rounds", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "NOTE: fewer than 5 rounds" in out and "eager     MLP_KERNEL=torch  asqu/relu2 x" in out
