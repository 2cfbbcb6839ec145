"""results/cpu-ab/: the study's committed outputs and README state what the tools print for its committed logs."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import compare  # noqa: E402
import runlog  # noqa: E402
import summarize  # noqa: E402

STUDY = Path("results") / "cpu-ab"  # relative, as in the README's commands (run from the repository root)
ACTIVATIONS = ["relu2", "leaky2", "asqu"]
SEEDS = [1337, 42, 2025, 2024, 7]
PAIRS = [("relu2", "asqu"), ("leaky2", "asqu"), ("relu2", "leaky2")]  # (A, B) as in compare_<B>_vs_<A>.txt
RESULT_COLUMNS = ["post_ema_val_bpb", "roundtrip_val_bpb", "sliding_val_bpb", "sliding_val_loss", "quant_gap_bpb",
                  "step_avg_ms"]


@pytest.fixture(scope="module")
def runs():
    cwd = Path.cwd()
    try:
        os.chdir(REPO)
        yield runlog.load_runs([STUDY])
    finally:
        os.chdir(cwd)


def markdown_table(first_header: str) -> dict[str, list[str]]:
    """The README table whose header row starts with ``| first_header |``: cells by the row's first cell."""
    lines = (REPO / STUDY / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_every_run_finished_with_the_same_steps_and_tokens(runs):
    assert sorted((r.mlp_activation, r.seed) for r in runs) == sorted((a, s) for a in ACTIVATIONS for s in SEEDS)
    assert all(r.finished and r.steps == 300 and r.iterations == 300 for r in runs)
    assert [len(g) for g in runlog.groups(runs)] == [5, 5, 5]  # one configuration per activation
    for a, b in PAIRS:  # the arms differ in the activation only
        assert compare.compare(runs, a, b)["config_differences"] == []
    assert len({(r.dataset, r.val_tokens, r.train_shards) for r in runs}) == 1
    params = {r.mlp_activation: r.model_params for r in runs}
    assert params["relu2"] == params["leaky2"] and params["asqu"] - params["relu2"] == 6 * 384  # + one beta per channel


def test_committed_summary_and_comparisons_are_the_tools_output(runs):
    on_disk = json.loads((REPO / STUDY / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(runlog.strict_json(summarize.summary_json(runs)))
    for a, b in PAIRS:
        text = (REPO / STUDY / f"compare_{b}_vs_{a}.txt").read_text(encoding="utf-8")
        assert text.strip() == compare.render(compare.compare(runs, a, b)).strip()


def test_readme_results_table_is_the_summary(runs):
    rows = markdown_table("activation")
    formats = summarize.STAT_FORMATS
    for group in runlog.groups(runs):
        expected = [str(len(group))]
        for attr in RESULT_COLUMNS:
            mean, std = runlog.mean_std(getattr(r, attr) for r in group)
            expected.append(f"{runlog.format_cell(mean, formats[attr])} ± "
                            f"{runlog.format_cell(std, formats[attr].replace('+', ''))}")
        assert rows[group[0].mlp_activation] == expected


def test_readme_comparison_table_is_compare_py(runs):
    rows = markdown_table("B vs A")
    for a, b in PAIRS:
        result = compare.compare(runs, a, b)
        m = {x["metric"]: x for x in result["metrics"]}
        loss, bpb = m["sliding_val_loss"], m["sliding_val_bpb"]
        assert rows[f"{b} vs {a}"] == [
            f"{loss['diff_b_minus_a']:+.5f}", f"[{loss['ci95_low']:+.5f}, {loss['ci95_high']:+.5f}]",
            f"{loss['p_two_sided']:.3g}", f"{loss['p_one_sided_b_lower']:.3g}", f"{bpb['diff_b_minus_a']:+.5f}",
            "MET" if result["criterion"]["met"] else "NOT MET", f"{result['step_time_ratio_b_over_a']:.4f}"]


def test_readme_beta_table_is_the_summary(runs):
    asqu = next(g for g in runlog.groups(runs) if g[0].mlp_activation == "asqu")
    printed = [line.split() for line in summarize.beta_table(3, asqu)[3:]]
    rows = markdown_table("layer")
    assert len(rows) == len(printed) == 6
    for cells in printed:
        assert rows[cells[0]] == cells[1:]
