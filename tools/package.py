#!/usr/bin/env python3
"""Package finished runs as a submission folder under records/.

    python tools/package.py --name "ASQU 11L" --author "Jane Doe" --github-id jdoe \\
        --blurb "March 22 stack with learned per-channel ASQU betas" \\
        sweeps/ab1/asqu_seed1337 sweeps/ab1/asqu_seed42 sweeps/ab1/asqu_seed2024

creates ``records/track_10min_16mb/YYYY-MM-DD_<Name>/`` (``--track non_record_16mb`` for
``records/track_non_record_16mb/``) holding ``train_gpt.py``, one ``train_seed<SEED>.log``
per run, ``submission.json`` and ``README.md`` with the results table. In
submission.json, ``val_bpb`` / ``val_loss`` are the means over the runs of the final
sliding-window BPB / val_loss, ``bytes_total`` the largest run's total submission size,
``bytes_code`` the size of the copied train_gpt.py.

Everything is checked before anything is written; the first failure is reported as one
message and the exit status is non-zero:

* every log has its final lines (``Total submission size``, ``final_int6_roundtrip_exact``,
  ``final_int6_sliding_window_exact``): a truncated or crashed log is refused, by name;
* every run's total submission size is at most 16,000,000 bytes;
* record track: training stayed within the 600 s cap. The script checks the clock after
  each step, so a capped run ends less than one step past 600,000 ms (the March 22
  record's seed 1337 stopped at 600,036 ms). The last logged train_time (the
  ``stopping_early`` figure or the last step line) may exceed 600,000 ms by at most
  ``TRAIN_TIME_TOLERANCE_MS`` = 1,000 ms: room for that overshoot and timer jitter,
  yet under 0.2 % of the budget, so no run gains meaningful extra training;
* the train_gpt.py to copy is byte-identical to the source dumped at the top of every log
  that has one (the text before the line of 100 '='); a log without a dump is checked
  against its ``Code size`` line when present;
* record track: at least 3 runs (distinct seeds); all runs: distinct known seeds and the
  same mlp_activation;
* the target folder does not exist yet.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

_TOOLS_DIR = str(Path(__file__).resolve().parent)
if _TOOLS_DIR not in sys.path:  # sibling modules (runlog, ...) also under `python -m tools.X`
    sys.path.insert(0, _TOOLS_DIR)
import runlog  # noqa: E402
from runlog import RunLog  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZE_LIMIT_BYTES = 16_000_000
TRAIN_CAP_MS = 600_000
TRAIN_TIME_TOLERANCE_MS = 1_000
MIN_RECORD_SEEDS = 3
TRACKS = {"10min_16mb": "track_10min_16mb", "non_record_16mb": "track_non_record_16mb"}


class PackageError(Exception):
    """A reason to refuse packaging; printed as one message, exit status 1."""


def folder_name(name: str) -> str:
    """The <Name> part of the folder: spaces to '_', only [A-Za-z0-9._+-] kept."""
    cleaned = re.sub(r"\s+", "_", name.strip())
    cleaned = re.sub(r"[^A-Za-z0-9._+\-]", "", cleaned).strip("._-")
    if not cleaned:
        raise PackageError(f"--name {name!r} leaves nothing usable for a folder name")
    return cleaned


def parse_date(text: str | None) -> str:
    if text is None:
        return dt.date.today().isoformat()
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise PackageError(f"--date must be YYYY-MM-DD, got {text!r}") from exc


def _first_difference(a: str, b: str) -> str:
    a_lines, b_lines = a.split("\n"), b.split("\n")
    for number, (x, y) in enumerate(zip(a_lines, b_lines), start=1):
        if x != y:
            return f"first difference at line {number}"
    return f"the texts differ in length ({len(a_lines)} vs {len(b_lines)} lines)"


def check_runs(runs: list[RunLog], source: str, source_bytes: int, track: str) -> list[str]:
    """Raise PackageError for the first problem; return notes on checks that were not possible."""
    notes: list[str] = []
    if not runs:
        raise PackageError("no run logs found")
    for run in runs:
        missing = run.missing_final
        if missing:
            last = f"; its last line: {run.last_line[:120]!r}" if run.last_line else ""
            raise PackageError(
                f"{run.path} is truncated or from a crashed run: it lacks {', '.join(missing)}{last}"
            )
    for run in runs:
        if run.submission_bytes > SIZE_LIMIT_BYTES:
            raise PackageError(
                f"{run.path}: total submission size {run.submission_bytes:,} bytes is over the "
                f"{SIZE_LIMIT_BYTES:,}-byte limit"
            )
    if track == "10min_16mb":
        for run in runs:
            train_ms = run.train_time_ms
            if train_ms is None:
                raise PackageError(f"{run.path} has no step lines, so its training time is unknown")
            if train_ms > TRAIN_CAP_MS + TRAIN_TIME_TOLERANCE_MS:
                raise PackageError(
                    f"{run.path}: training took {train_ms:,} ms, over the {TRAIN_CAP_MS:,} ms cap "
                    f"(+{TRAIN_TIME_TOLERANCE_MS:,} ms tolerance) of the record track"
                )
    for run in runs:
        if run.source_dump is not None:
            if run.source_dump != source:
                hint = " (the log seems to hold several appended runs)" if run.header_blocks > 2 else ""
                raise PackageError(
                    f"{run.path}: the train_gpt.py source dumped in the log is not byte-identical to the "
                    f"script to package ({_first_difference(run.source_dump, source)}){hint}"
                )
        elif run.code_bytes is not None:
            if run.code_bytes != source_bytes:
                raise PackageError(
                    f"{run.path}: the log's Code size ({run.code_bytes:,} bytes) differs from the "
                    f"script to package ({source_bytes:,} bytes)"
                )
            notes.append(f"{run.path}: no source dump; matched by code size only")
        else:
            notes.append(f"{run.path}: no source dump and no Code size line; source not checked")
    seeds: dict[int, Path] = {}
    for run in runs:
        if run.seed is None:
            raise PackageError(f"{run.path} has no seed line")
        if run.seed in seeds:
            raise PackageError(f"seed {run.seed} appears twice: {seeds[run.seed]} and {run.path}")
        seeds[run.seed] = run.path
    if track == "10min_16mb" and len(runs) < MIN_RECORD_SEEDS:
        raise PackageError(
            f"the record track needs at least {MIN_RECORD_SEEDS} seeds to show significance; got {len(runs)} "
            "(use --track non_record_16mb for a non-record submission)"
        )
    activations = sorted({run.mlp_activation for run in runs})
    if len(activations) > 1:
        detail = ", ".join(f"{run.path}: {run.mlp_activation}" for run in runs)
        raise PackageError(f"the runs mix mlp_activation values ({detail})")
    return notes


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def submission_record(runs: list[RunLog], args: argparse.Namespace, date: str, code_bytes: int) -> dict:
    return {
        "author": args.author,
        "github_id": args.github_id,
        "name": args.name,
        "blurb": args.blurb,
        "date": date,
        "val_loss": round(float(np.mean([r.sliding_val_loss for r in runs])), 8),
        "val_bpb": round(float(np.mean([r.sliding_val_bpb for r in runs])), 8),
        "bytes_total": max(r.submission_bytes for r in runs),
        "bytes_code": code_bytes,
    }


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def readme_text(runs: list[RunLog], record: dict, track: str, notes: list[str]) -> str:
    act = runs[0].mlp_activation
    settings = " ".join(f"{k}:{v}" for k, v in runs[0].activation_settings.items())
    nproc = runs[0].world_size or 8
    lines = [
        f"# {record['name']}",
        "",
        record["blurb"],
        "",
        f"- Author: {record['author']} (@{record['github_id']})",
        f"- Date: {record['date']}",
        f"- Track: {track}",
        f"- MLP activation: `{act}`" + (f" (`{settings}`)" if settings else ""),
        f"- Score: val_bpb **{record['val_bpb']:.8f}** (mean final sliding-window BPB over "
        f"{len(runs)} seed{'s' if len(runs) != 1 else ''}), val_loss {record['val_loss']:.8f} nats",
        f"- Artifact: at most {record['bytes_total']:,} bytes (train_gpt.py {record['bytes_code']:,} bytes "
        f"+ compressed weights)",
        "",
        "## Results",
        "",
        "| seed | steps | train time (s) | step_avg (ms) | post-EMA BPB | int6 roundtrip BPB | "
        "sliding BPB | sliding val_loss | bytes total |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in sorted(runs, key=lambda r: r.seed):
        lines.append(
            f"| {run.seed} | {run.steps} | {_fmt(run.train_time_ms and run.train_time_ms / 1000, '{:.1f}')} | "
            f"{_fmt(run.step_avg_ms, '{:.2f}')} | {_fmt(run.post_ema_val_bpb, '{:.4f}')} | "
            f"{run.roundtrip_val_bpb:.8f} | {run.sliding_val_bpb:.8f} | {run.sliding_val_loss:.8f} | "
            f"{run.submission_bytes:,} |"
        )
    for label, index in (("mean", 0), ("std", 1)):
        cells = []
        for attr, fmt in (("steps", "{:.0f}"), ("train_time_ms", "{:.1f}"), ("step_avg_ms", "{:.2f}"),
                          ("post_ema_val_bpb", "{:.4f}"), ("roundtrip_val_bpb", "{:.8f}"),
                          ("sliding_val_bpb", "{:.8f}"), ("sliding_val_loss", "{:.8f}"),
                          ("submission_bytes", "{:,.0f}")):
            values = runlog.finite(getattr(r, attr) for r in runs)
            if attr == "train_time_ms":
                values = [v / 1000 for v in values]
            stat = _mean_std(values)[index] if values else None
            cells.append(_fmt(stat, fmt))
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Reproduce",
        "",
        "```bash",
        "python3 data/cached_challenge_fineweb.py --variant sp1024",
    ]
    for run in sorted(runs, key=lambda r: r.seed):
        lines.append(f"SEED={run.seed} MLP_ACTIVATION={act} torchrun --standalone --nproc_per_node={nproc} train_gpt.py")
    lines += [
        "```",
        "",
        "## Checks (tools/package.py)",
        "",
        "- every log ends with its final int6 roundtrip and sliding-window lines",
        f"- every run's total submission size is at most {SIZE_LIMIT_BYTES:,} bytes",
    ]
    if track == "10min_16mb":
        lines.append(f"- training time within {TRAIN_CAP_MS // 1000} s (+{TRAIN_TIME_TOLERANCE_MS} ms tolerance) "
                     f"and at least {MIN_RECORD_SEEDS} seeds")
    lines.append("- train_gpt.py is byte-identical to the source dumped in the logs")
    lines += [f"  - note: {note}" for note in notes]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Check finished runs and package them as records/<track>/YYYY-MM-DD_<Name>/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Refuses (non-zero exit, nothing written) truncated logs, oversize or overtime runs, a "
               "train_gpt.py that differs from the logged source, fewer than 3 seeds on the record "
               "track, mixed activations and an existing target folder.",
    )
    parser.add_argument("logs", nargs="+", metavar="LOG_OR_DIR", help="run logs or run folders")
    parser.add_argument("--name", required=True, help="submission name (folder: YYYY-MM-DD_<Name>)")
    parser.add_argument("--author", required=True)
    parser.add_argument("--github-id", required=True)
    parser.add_argument("--blurb", required=True, help="one-paragraph description")
    parser.add_argument("--track", choices=sorted(TRACKS), default="10min_16mb")
    parser.add_argument("--date", help="YYYY-MM-DD (default: today)")
    parser.add_argument("--train-script", default=str(REPO_ROOT / "train_gpt.py"),
                        help="train_gpt.py to copy (default: the repository's)")
    parser.add_argument("--records-dir", default=str(REPO_ROOT / "records"),
                        help="records folder (default: the repository's records/)")
    return parser


def package(args: argparse.Namespace) -> Path:
    date = parse_date(args.date)
    target = Path(args.records_dir) / TRACKS[args.track] / f"{date}_{folder_name(args.name)}"
    if target.exists():
        raise PackageError(f"target folder already exists: {target}")
    script = Path(args.train_script)
    try:
        source_data = script.read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read the training script {script}: {exc.strerror or exc}") from exc
    try:
        source = source_data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PackageError(f"{script} is not UTF-8 text") from exc
    try:
        runs = runlog.collect_runs(args.logs)
    except runlog.LogError as exc:
        raise PackageError(str(exc)) from exc
    notes = check_runs(runs, source, len(source_data), args.track)

    record = submission_record(runs, args, date, len(source_data))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "train_gpt.py").write_bytes(source_data)
        for run in runs:
            shutil.copyfile(run.path, staging / f"train_seed{run.seed}.log")
        (staging / "submission.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(readme_text(runs, record, args.track, notes), encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for note in notes:
        print(f"package: note: {note}", file=sys.stderr)
    return target


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        target = package(args)
    except PackageError as exc:
        print(f"package: refused: {exc}", file=sys.stderr)
        return 1
    print(f"package: wrote {target}")
    for child in sorted(target.iterdir()):
        print(f"  {child.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
