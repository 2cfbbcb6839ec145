#!/usr/bin/env python3
"""Compare two MLP activations across seeds (Welch's t-tests, quant gap, step time, the record criterion);
arms that differ in more than the activation are refused. Details: tools/README.md, "compare.py"."""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats

import runlog
from runlog import RunLog, ToolError

METRICS = [
    ("post_ema_val_bpb", "post-EMA BPB"),
    ("roundtrip_val_bpb", "int6 roundtrip BPB"),
    ("sliding_val_bpb", "sliding-window BPB"),
    ("sliding_val_loss", "sliding val_loss (nats)"),
]
RECORD_MARGIN_NATS = 0.005
RECORD_ALPHA = 0.01


@dataclass
class Welch:
    t: float | None = None
    p_two_sided: float | None = None
    p_one_sided_b_lower: float | None = None  # H1: mean(B) < mean(A)
    df: float | None = None  # Welch-Satterthwaite degrees of freedom
    ci95_low: float | None = None  # 95% confidence interval of mean(B) - mean(A)
    ci95_high: float | None = None


def welch_test(a: list[float], b: list[float]) -> Welch:
    """Welch's t-test of B against A; all None ("n/a") with < 2 values a side or no variance."""
    if len(a) < 2 or len(b) < 2:
        return Welch()
    with warnings.catch_warnings():  # identical values: scipy warns, then returns nan
        warnings.simplefilter("ignore", RuntimeWarning)
        two = scipy_stats.ttest_ind(b, a, equal_var=False)
        less = scipy_stats.ttest_ind(b, a, equal_var=False, alternative="less")
        ci = two.confidence_interval(0.95)
    values = [float(v) for v in (two.statistic, two.pvalue, less.pvalue, two.df, ci.low, ci.high)]
    return Welch(*values) if all(math.isfinite(v) for v in values) else Welch()


def compare_metric(runs_a: list[RunLog], runs_b: list[RunLog], attr: str) -> dict:
    a, b = runlog.figures(runs_a, attr), runlog.figures(runs_b, attr)
    (mean_a, std_a), (mean_b, std_b) = runlog.mean_std(a), runlog.mean_std(b)
    diff = mean_b - mean_a if mean_a is not None and mean_b is not None else None
    return {"metric": attr, "n_a": len(a), "n_b": len(b), "mean_a": mean_a, "mean_b": mean_b, "std_a": std_a,
            "std_b": std_b, "diff_b_minus_a": diff, **asdict(welch_test(a, b))}


@dataclass
class Criterion:
    met: bool
    metric: str
    improvement: float | None  # mean A - mean B (positive = B better)
    p_one_sided: float | None
    p_margin: float | None  # one-sided p of "improvement > margin"
    margin: float
    alpha: float
    reason: str


def record_criterion(runs_a: list[RunLog], runs_b: list[RunLog]) -> Criterion:
    """The challenge's bar: mean(A) - mean(B) >= 0.005 nats of the scored val_loss (each run's score line: the
    sliding window for train_gpt.py's runs, the line a record's claim names for its logs), and one-sided Welch
    p < 0.01 that the improvement exceeds 0.005 nats."""
    attr, margin, alpha = "score_val_loss", RECORD_MARGIN_NATS, RECORD_ALPHA
    a, b = runlog.figures(runs_a, attr), runlog.figures(runs_b, attr)
    improvement = float(np.mean(a) - np.mean(b)) if a and b else None
    w = welch_test(a, b)
    if w.p_one_sided_b_lower is None:
        why = (f"needs at least 2 runs per side with {attr} (have {len(a)} and {len(b)})" if len(a) < 2 or len(b) < 2
               else "the runs have no variance, so Welch's test is undefined")
        return Criterion(False, attr, improvement, None, None, margin, alpha, f"cannot be assessed: {why}")
    p_margin = welch_test(list(np.asarray(a) - margin), b).p_one_sided_b_lower
    reasons = []
    if improvement < margin:
        reasons.append(f"improvement {improvement:+.5f} nats is below {margin}")
    if p_margin is None or p_margin >= alpha:
        shown = "undefined" if p_margin is None else f"{p_margin:.3g}"
        reasons.append(f"one-sided p = {shown} that the improvement exceeds {margin} nats is not below {alpha}")
    met = not reasons
    reason = (f"improvement {improvement:+.5f} nats >= {margin}, and one-sided p = {p_margin:.3g} < {alpha} that it "
              f"exceeds {margin}" if met else "; ".join(reasons))
    return Criterion(met, attr, improvement, w.p_one_sided_b_lower, p_margin, margin, alpha, reason)


def config_differences(runs_a: list[RunLog], runs_b: list[RunLog]) -> list[str]:
    """How the compared runs differ besides the activation and its knobs (runlog.differences), one
    entry per difference with the first pair of logs that shows it."""
    reps = [group[0] for side in (runs_a, runs_b) for group in runlog.groups(side)]
    found: dict[str, str] = {}
    for i, x in enumerate(reps):
        for y in reps[i + 1:]:
            diffs = runlog.differences(x, y)
            if not diffs and x.mlp_activation == y.mlp_activation:
                diffs = [f"{runlog.group_label(x)} vs {runlog.group_label(y)}"]
            for diff in diffs:
                found.setdefault(diff, f"{diff} ({x.path} vs {y.path})")
    return list(found.values())


def compare(runs: list[RunLog], act_a: str, act_b: str, allow_config_diff: bool = False) -> dict:
    """All figures of the A/B comparison as a JSON-ready dict; a ToolError when the arms differ in
    more than the activation (unless allow_config_diff)."""
    # the parser stores leaky_relu2 (train_gpt.py's alias) as leaky2; accept the alias here too
    act_a, act_b = (runlog.ACTIVATION_ALIASES.get(act, act) for act in (act_a, act_b))
    if act_a == act_b:
        raise ToolError("A and B must be different activations")
    finished = sorted((r for r in runs if r.counted), key=runlog.by_seed)  # no reruns set aside, no re-scores
    runs_a, runs_b = ([r for r in finished if r.mlp_activation == act and not r.non_finite] for act in (act_a, act_b))
    diverged = {act: [str(r.path) for r in finished if r.mlp_activation == act and r.non_finite]
                for act in (act_a, act_b)}
    found = runlog.activation_order(finished)
    for act, side in ((act_a, runs_a), (act_b, runs_b)):
        if not side:
            left_out = f"; {len(diverged[act])} with non-finite results left out" if diverged[act] else ""
            raise ToolError(f"no finished runs with mlp_activation {act} "
                            f"(found: {', '.join(found) or 'none'}{left_out})")
    diffs = config_differences(runs_a, runs_b)
    if diffs and not allow_config_diff:
        raise ToolError(f"the runs differ in more than the activation and its knobs: {'; '.join(diffs)}. "
                        "Compare like with like, or pass --allow-config-diff to compare anyway")
    sides = {act_a: runs_a, act_b: runs_b}
    step_a, step_b = (runlog.mean_std(r.step_avg_ms for r in side)[0] for side in (runs_a, runs_b))
    return {
        **{key: {"activation": act, "seeds": [r.seed for r in side], "logs": [str(r.path) for r in side],
                 "left_out_non_finite": diverged[act]}
           for key, act, side in (("a", act_a, runs_a), ("b", act_b, runs_b))},
        "skipped_unfinished": [str(r.path) for r in runs if not r.counted and r.mlp_activation in (act_a, act_b)],
        "config_differences": diffs,
        "without_config_line": [str(r.path) for r in runs_a + runs_b if r.config is None],
        "metrics": [compare_metric(runs_a, runs_b, attr) for attr, _ in METRICS],
        "quant_gap_bpb": {act: dict(zip(("mean", "std"), runlog.mean_std(r.quant_gap_bpb for r in side)))
                          for act, side in sides.items()},
        "step_avg_ms": {act_a: step_a, act_b: step_b},
        "steps": {act: runlog.mean_std(r.steps for r in side)[0] for act, side in sides.items()},
        "step_time_ratio_b_over_a": (step_b / step_a) if step_a and step_b else None,
        "criterion": asdict(record_criterion(runs_a, runs_b)),
        "score_lines": sorted({r.score for r in runs_a + runs_b if r.score}),  # the lines the criterion used
    }


def _f(value, fmt: str = "{:.5f}") -> str:
    return runlog.format_cell(value, fmt, missing="n/a")


def render(result: dict) -> str:
    a, b = result["a"]["activation"], result["b"]["activation"]
    lines = []
    for key in ("a", "b"):
        side = result[key]
        left_out = len(side["left_out_non_finite"])
        seeds = ", ".join(map(str, side["seeds"]))
        lines.append(f"{key.upper()} = {side['activation']}: {len(side['seeds'])} runs (seeds {seeds})"
                     + (f"; {left_out} more left out: non-finite final values (nan/inf, a diverged run): "
                        + ", ".join(side["left_out_non_finite"]) if left_out else ""))
    if result["skipped_unfinished"]:
        lines.append("not compared (not finished, a rerun or a re-score): " + ", ".join(result["skipped_unfinished"]))
    lines += [f"WARNING: the arms differ (--allow-config-diff): {diff}" for diff in result["config_differences"]]
    if result["without_config_line"]:
        lines.append("note: no config line, so only the setup these logs show was compared: "
                     + ", ".join(result["without_config_line"]))
    header = ["figure", "n A", "n B", f"mean {a}", f"mean {b}", "B - A", "95% CI of B - A", "Welch t", "df",
              "p two-sided", "p one-sided (B<A)"]
    labels = dict(METRICS)
    rows = [[labels[m["metric"]], str(m["n_a"]), str(m["n_b"]), _f(m["mean_a"]), _f(m["mean_b"]),
             _f(m["diff_b_minus_a"], "{:+.5f}"),
             "n/a" if m["ci95_low"] is None else f"[{m['ci95_low']:+.5f}, {m['ci95_high']:+.5f}]",
             _f(m["t"], "{:.3f}"), _f(m["df"], "{:.2f}"), _f(m["p_two_sided"], "{:.3g}"),
             _f(m["p_one_sided_b_lower"], "{:.3g}")] for m in result["metrics"]]
    lines += ["", *runlog.text_table(header, rows), ""]
    for act, gap in result["quant_gap_bpb"].items():
        lines.append(f"quant gap (int6 roundtrip - post-EMA BPB) {act}: {_f(gap['mean'], '{:+.5f}')}"
                     f" (std {_f(gap['std'])})")
    sa, sb = result["step_avg_ms"][a], result["step_avg_ms"][b]
    ratio = result["step_time_ratio_b_over_a"]
    lines.append(f"step time: {a} {_f(sa, '{:.2f}')} ms, {b} {_f(sb, '{:.2f}')} ms, ratio {b}/{a} "
                 f"{_f(ratio, '{:.4f}')}" + (f" ({(ratio - 1) * 100:+.1f}%)" if ratio else ""))
    st = result["steps"]
    lines.append(f"steps reached (mean): {a} {_f(st[a], '{:.1f}')}, {b} {_f(st[b], '{:.1f}')}")
    c = result["criterion"]
    lines.append(f"\nRecord criterion ({b} beats {a} by >= {c['margin']} nats in mean {c['metric']} of "
                 f"{', '.join(result['score_lines'])}_exact, shown at "
                 f"one-sided Welch p < {c['alpha']}): {'MET' if c['met'] else 'NOT MET'}")
    lines.append(f"  {c['reason']}")
    if c["p_one_sided"] is not None:
        lines.append(f"  for information, one-sided p that {b} is lower at all: {c['p_one_sided']:.3g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = runlog.ArgumentParser(description=__doc__)
    parser.add_argument("a", metavar="A", help="baseline activation, e.g. relu2")
    parser.add_argument("b", metavar="B", help="candidate activation, e.g. asqu")
    parser.add_argument("paths", nargs="+", metavar="LOG_OR_DIR", help="run log files or folders")
    parser.add_argument("--json", action="store_true", help="print the comparison as strict JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when the record criterion is not met")
    parser.add_argument("--allow-config-diff", action="store_true", help="also compare arms whose settings differ")
    args = parser.parse_args(argv)

    def work() -> int:
        result = compare(runlog.load_runs(args.paths), args.a, args.b, args.allow_config_diff)
        print(runlog.strict_json(result) if args.json else render(result))
        return 1 if args.check and not result["criterion"]["met"] else 0

    return runlog.one_line_errors("compare", work)


if __name__ == "__main__":
    runlog.run_main(main)
