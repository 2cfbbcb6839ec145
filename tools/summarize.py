#!/usr/bin/env python3
"""Summarise train_gpt.py run logs: one row per run, then mean / std per activation.

    python tools/summarize.py logs/ sweeps/ab1/ train_seed1337.log
    python tools/summarize.py sweeps/ab1 --json > runs.json

Arguments are log files or folders (searched for ``*.log`` and ``logs/*.txt``; one run
written to several files in the same run folder is counted once). BPB figures prefer the
``_exact`` lines. A run without a final ``_exact`` line is shown as ``truncated`` and its missing
figures as ``-`` (``null`` in JSON). The mean / std rows cover the runs that finished
(reached a final ``_exact`` line; ``n=2 of 3`` says one did not), each figure over the
runs that have it.
Standard deviations are sample standard deviations (ddof=1).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

_TOOLS_DIR = str(Path(__file__).resolve().parent)
if _TOOLS_DIR not in sys.path:  # sibling modules (runlog, ...) also under `python -m tools.X`
    sys.path.insert(0, _TOOLS_DIR)
import runlog  # noqa: E402
from runlog import RunLog  # noqa: E402

# (header, attribute on RunLog, format)
COLUMNS = [
    ("seed", "seed", "{:d}"),
    ("steps", "steps", "{:d}"),
    ("step_avg_ms", "step_avg_ms", "{:.2f}"),
    ("post_ema_bpb", "post_ema_val_bpb", "{:.4f}"),
    ("roundtrip_bpb", "roundtrip_val_bpb", "{:.8f}"),
    ("sliding_bpb", "sliding_val_bpb", "{:.8f}"),
    ("sliding_loss", "sliding_val_loss", "{:.8f}"),
    ("quant_gap", "quant_gap_bpb", "{:+.4f}"),
    ("bytes", "submission_bytes", "{:d}"),
]
STAT_ATTRS = {"steps", "step_avg_ms", "post_ema_val_bpb", "roundtrip_val_bpb", "sliding_val_bpb",
              "sliding_val_loss", "quant_gap_bpb", "submission_bytes"}


class ToolError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def group_by_activation(runs: list[RunLog]) -> dict[str, list[RunLog]]:
    return {act: [r for r in runs if r.mlp_activation == act] for act in runlog.activation_order(runs)}


def stats(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, sample std) of the finite values; std is None with fewer than 2."""
    vals = runlog.finite(values)
    if not vals:
        return None, None
    mean = float(np.mean(vals))
    std = float(np.std(vals, ddof=1)) if len(vals) >= 2 else None
    return mean, std


def _fmt(value, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt.endswith("d}"):
        value = int(round(value))
    return fmt.format(value)


def _fmt_stat(value, fmt: str) -> str:
    """Means and stds of integer columns get decimals; others keep the column format."""
    if value is None:
        return "-"
    if fmt == "{:d}":
        return f"{value:.1f}"
    return fmt.format(value)


def render_table(runs: list[RunLog]) -> str:
    """The human-readable summary table."""
    header = ["activation", *[c[0] for c in COLUMNS], "status", "log"]
    rows: list[list[str]] = []
    groups = group_by_activation(runs)
    for act, members in groups.items():
        members = sorted(members, key=lambda r: (r.seed is None, r.seed or 0, str(r.path)))
        for run in members:
            status = "finished" if run.has_final else "truncated"
            rows.append([act, *[_fmt(getattr(run, a), f) for _, a, f in COLUMNS], status, str(run.path)])
        finished = [r for r in members if r.has_final]
        for label, index in (("mean", 0), ("std", 1)):
            cells = []
            for _, attr, fmt in COLUMNS:
                if attr not in STAT_ATTRS:
                    cells.append("")
                    continue
                value = stats([getattr(r, attr) for r in finished])[index]
                if attr == "quant_gap_bpb" and index == 1 and value is not None:
                    cells.append(f"{value:.4f}")
                else:
                    cells.append(_fmt_stat(value, fmt))
            count = f"n={len(finished)}" + (f" of {len(members)}" if len(finished) != len(members) else "")
            rows.append([f"{act} {label}", *cells, count if index == 0 else "", ""])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def summary_json(runs: list[RunLog]) -> list[dict]:
    return [run.to_json() for run in runs]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Summarise train_gpt.py run logs: a row per run and mean/std per activation.",
        epilog="Folders are searched for *.log and logs/*.txt files.",
    )
    parser.add_argument("paths", nargs="+", metavar="LOG_OR_DIR", help="run log files or folders")
    parser.add_argument("--json", action="store_true", help="print a JSON array, one object per run")
    return parser


def load_runs(paths: list[str]) -> list[RunLog]:
    """Parse the command line's logs; a ToolError when none is found."""
    try:
        runs = runlog.collect_runs(paths)
    except runlog.LogError as exc:
        raise ToolError(str(exc)) from exc
    if not runs:
        raise ToolError("no run logs found in " + ", ".join(paths))
    return runs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runs = load_runs(args.paths)
    except ToolError as exc:
        print(f"summarize: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary_json(runs), indent=2))
    else:
        print(render_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
