#!/usr/bin/env python3
"""Summarise train_gpt.py run logs: a row per run, mean / std per group of comparable runs (tools/README.md)."""
from __future__ import annotations

import runlog
from runlog import RunLog, ToolError

# (header, attribute on RunLog, format of means / unlogged values)
COLUMNS = [
    ("seed", "seed", "{:d}"),
    ("steps", "steps", "{:d}"),
    ("step_avg_ms", "step_avg_ms", "{:.2f}"),
    ("post_ema_bpb", "post_ema_val_bpb", "{:.4f}"),
    ("roundtrip_bpb", "roundtrip_val_bpb", "{:.8f}"),
    ("sliding_bpb", "sliding_val_bpb", "{:.8f}"),
    ("sliding_loss", "sliding_val_loss", "{:.8f}"),
    ("score_bpb", "score_val_bpb", "{:.8f}"),  # the run's score line (the score column names it)
    ("quant_gap", "quant_gap_bpb", "{:+.4f}"),
    ("bytes", "submission_bytes", "{:d}"),
]
STAT_FORMATS = {attr: fmt.replace("{:d}", "{:.1f}") for _, attr, fmt in COLUMNS}  # means of integers get a decimal


def _cell(run: RunLog, attr: str, fmt: str) -> str:
    """The run's value as logged, else formatted with ``fmt``."""
    return run.logged.get(attr) or runlog.format_cell(getattr(run, attr), fmt)


def render_table(runs: list[RunLog]) -> str:
    """The human-readable summary: per group a header line, its runs, mean and std."""
    rows: list[list[str] | str] = []
    groups = runlog.groups(runs)
    for number, members in enumerate(groups, start=1):
        act = members[0].mlp_activation
        rows.append(f"group {number}: {runlog.group_label(members[0])}")
        rows += [[act, *[_cell(run, a, f) for _, a, f in COLUMNS], run.score or "-",
                  run.status + (" (non-finite)" if run.non_finite else ""), str(run.path)] for run in members]
        finished = [r for r in members if r.counted]
        pooled = [r for r in finished if not r.non_finite]
        count = f"n={len(finished)}" + (f" of {len(members)}" if len(finished) != len(members) else "")
        if any(r.rerun_of or r.family == "eval_only" for r in members):
            count += " (reruns and EVAL_ONLY re-scores are not counted)"
        if len(pooled) < len(finished):
            count += f" ({len(finished) - len(pooled)} non-finite, left out of the mean)"
        stats = {attr: runlog.mean_std(getattr(r, attr) for r in pooled) for _, attr, _ in COLUMNS}
        for label, index in (("mean", 0), ("std", 1)):
            cells = [runlog.format_cell(stats[attr][index], fmt if index == 0 else fmt.replace("+", ""))
                     for attr, fmt in STAT_FORMATS.items()]
            cells[0] = ""  # (the seed column)
            rows.append([f"{act} {label}", *cells, "", count if index == 0 else "", ""])
    lines = runlog.text_table(["activation", *[c[0] for c in COLUMNS], "score", "status", "log"], rows)
    for number, members in enumerate(groups, start=1):
        lines += beta_table(number, [r for r in members if r.finished and not r.non_finite])
    lines += [f"duplicate: {dup} (the same run as {run.path}; counted once)" for run in runs for dup in run.duplicates]
    lines += [f"score line: {name}_exact ({source})" for name, source in dict.fromkeys((r.score, r.score_source)
                                                                                       for r in runs if r.score)]
    return "\n".join(lines)


def beta_table(number: int, runs: list[RunLog]) -> list[str]:
    """ASQU's final beta per layer (the last asqu_diag lines) over a group's runs: the mean and the std over
    runs of each run's channel mean, the mean within-run std, and the extremes over all runs."""
    finals = [b for r in runs for b in r.final_betas()]
    if not finals:
        return []
    rows = []
    for layer in sorted({b.layer for b in finals}):
        stats = [b for b in finals if b.layer == layer]
        mean, std = runlog.mean_std(b.mean for b in stats)
        rows.append([str(layer), str(len(stats)), f"{mean:.4f}", runlog.format_cell(std, "{:.4f}"),
                     f"{runlog.mean_std(b.std for b in stats)[0]:.4f}", f"{min(b.min for b in stats):.4f}",
                     f"{max(b.max for b in stats):.4f}"])
    header = ["layer", "runs", "beta_mean", "std over runs", "beta_std (mean)", "beta_min (min)", "beta_max (max)"]
    return ["", f"final ASQU beta per layer, group {number} (last asqu_diag lines):", *runlog.text_table(header, rows)]


def summary_json(runs: list[RunLog]) -> list[dict]:
    """One record per run (runlog.RunLog.to_json) plus its group number and label."""
    return [{**run.to_json(), "group": number, "group_label": runlog.group_label(run)}
            for number, members in enumerate(runlog.groups(runs), start=1) for run in members]


def report(runs: list[RunLog], activations: list[str] | None = None) -> str:
    """The summary table, then every other activation compared with the first (compare.render), or why not.
    ``activations`` None: those the runs show, in runlog.activation_order."""
    import compare

    activations = activations or runlog.activation_order(runs)
    parts = [render_table(runs)]
    for other in activations[1:]:
        try:
            comparison = compare.render(compare.compare(runs, activations[0], other))
        except ToolError as exc:
            comparison = f"(no comparison: {exc})"
        parts.append(f"--- {other} against {activations[0]} ---\n{comparison}")
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = runlog.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", metavar="LOG_OR_DIR", help="run log files or folders")
    parser.add_argument("--json", action="store_true", help="print strict JSON, one object per run")
    args = parser.parse_args(argv)

    def work() -> int:
        runs = runlog.load_runs(args.paths)
        print(runlog.strict_json(summary_json(runs)) if args.json else render_table(runs))
        return 0

    return runlog.one_line_errors("summarize", work)


if __name__ == "__main__":
    runlog.run_main(main)
