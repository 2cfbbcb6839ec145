#!/usr/bin/env python3
"""Check finished runs against the challenge's rules and package them under records/, or --audit such a folder.
Everything is checked before anything is written; each problem is one line naming the log and the field (exit 1).
The checks per track, the audit and the folder's files: tools/README.md, "package.py"."""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import compare
import runlog
from runlog import RunLog, format_cell

SIZE_LIMIT_BYTES = runlog.trainer_constant("SIZE_LIMIT")
TRAIN_CAP_MS = 600_000
TRAIN_TIME_TOLERANCE_MS = 1_000
MAX_TRAIN_SHARDS = 80  # the published download's default (the export has 195)
EVAL_CAP_MS = 600_000
MIN_RECORD_SEEDS = 3
# 8 GPUs, scored on the published FineWeb sp1024 validation set (62,021,632 tokens in the record's logs)
RECORD_SETUP = {"world_size": 8, "dataset": "fineweb10B_sp1024", "val_tokens": 62_021_632}
TRACKS = {"10min_16mb": "track_10min_16mb", "non_record_16mb": "track_non_record_16mb"}
ATTENTION_PACKAGES = {  # requirements.txt's lines for the attention the logs name
    "flash_attn_3": "flash_attn_3  # FlashAttention 3 (Hopper build, imported as flash_attn_interface)",
    "flash_attn_2": "flash-attn>=2.6"}
DATA_COMMANDS = {"fineweb10B_sp1024": "python3 data/cached_challenge_fineweb.py --variant sp1024",
                 "sample_sp1024": "python3 data/build_sample.py"}


class PackageError(Exception):
    """Reasons to refuse packaging (one per line); exit status 1."""


def folder_name(name: str) -> str:
    """The <Name> part of the folder: spaces to '_', only [A-Za-z0-9._+-] kept."""
    cleaned = re.sub(r"\s+", "_", name.strip())
    cleaned = re.sub(r"[^A-Za-z0-9._+\-]", "", cleaned).strip("._-")
    if not cleaned:
        raise PackageError(f"--name {name!r} leaves nothing usable for a folder name")
    return cleaned


def parse_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise PackageError(f"--date must be YYYY-MM-DD, got {text!r}") from exc


def _first_difference(a: str, b: str) -> str:
    a_lines, b_lines = a.split("\n"), b.split("\n")
    number = next((n for n, (x, y) in enumerate(zip(a_lines, b_lines), start=1) if x != y), None)
    if number is None:
        return f"the texts differ in length ({len(a_lines)} vs {len(b_lines)} lines)"
    return f"first difference at line {number}"


def unpacked(data: bytes) -> bytes:
    """The source a packed train_gpt.py runs (lzma + base85: its longest run of base85 characters), else the file."""
    try:
        return lzma.decompress(base64.b85decode(max(re.findall(rb"[0-9A-Za-z!#$%&()*+;<=>?@^_`{|}~-]{64,}", data))))
    except (ValueError, lzma.LZMAError):
        return data


def packed_form(script: Path, source: str) -> bytes:
    """train_gpt.py's packed_source of the script, checked: it decompresses to the source, answers --help alike."""
    packed = runlog.import_trainer().packed_source(source)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "train_gpt.py").write_bytes(packed)
        helps = [subprocess.run([sys.executable, path, "--help"], cwd=work, capture_output=True, text=True)
                 for path in ("train_gpt.py", str(script.resolve()))]
    if unpacked(packed) != source.encode("utf-8") or len({(h.returncode, h.stdout) for h in helps}) > 1:
        raise PackageError(f"{script} packed: not its source, or --help unlike it: {helps[0].stderr.strip()[-200:]}")
    return packed


def _record_problems(run: RunLog, audit: bool) -> tuple[list[str], list[str]]:
    """(problems, unshown) for the record track: what breaks its rules, and what the log does not show. An audit
    does not hold other authors to this project's dataset: any tokenizer's export is allowed (val tokens are
    compared only for sp1024's published validation set)."""
    p = run.path
    problems, unshown = [], []
    if run.device is None:
        unshown.append(f"{p}: the log does not show device (no device: line); the record track needs CUDA")
    elif run.device_type != "cuda":
        problems.append(f"{p}: device is {run.device}; the record track runs on CUDA (8xH100)")
    for fact, wanted in RECORD_SETUP.items():
        value = getattr(run, fact)
        if value is None:
            unshown.append(f"{p}: the log does not show {fact} (not shown by this log format); the record track "
                           f"needs {fact} {wanted}")
        elif audit and fact != "world_size" and run.dataset != RECORD_SETUP["dataset"]:
            unshown.append(f"{p}: {fact} {value} not checked: the dataset is not {RECORD_SETUP['dataset']}")
        elif value != wanted:
            shown, needed = (f"{value:,}", f"{wanted:,}") if isinstance(wanted, int) else (value, wanted)
            problems.append(f"{p}: {fact} is {shown}; the record track needs {fact} {needed}")
    if run.train_shards is None:
        unshown.append(f"{p}: the log does not show train_shards (not shown by this log format)")
    elif run.train_shards > MAX_TRAIN_SHARDS:
        problems.append(f"{p}: train_shards is {run.train_shards}; the record track trains on the published "
                        f"{MAX_TRAIN_SHARDS} (reviewers excluded runs trained on more, openai/parameter-golf#2127)")
    if run.config_fingerprint is None:
        unshown.append(f"{p}: the log does not show config_fingerprint, so its seeds cannot be shown to share "
                       "one configuration")
    train_ms = run.train_time_ms
    if train_ms is None:
        unshown.append(f"{p}: the log does not show train_time (no step or stopping_early line)")
    elif train_ms > TRAIN_CAP_MS + TRAIN_TIME_TOLERANCE_MS:
        problems.append(f"{p}: train_time {train_ms:,} ms is over the {TRAIN_CAP_MS:,} ms cap "
                        f"(+{TRAIN_TIME_TOLERANCE_MS:,} ms tolerance) of the record track")
    if not run.finished:
        return problems, unshown  # its missing final lines are reported already
    parts = {name: f.eval_ms for name, f in run.finals.items()
             if f.eval_ms is not None and not name.startswith("diag")}
    detail = (f"the log's total_eval_time {run.total_eval_s} s" if run.total_eval_s is not None else
              " + ".join(f"{name} {ms / 1000:.1f} s" for name, ms in parts.items()))
    if run.final_eval_ms is None:
        unshown.append(f"{p}: the log does not show the eval_time of its final evaluations")
    elif run.final_eval_ms > EVAL_CAP_MS:
        problems.append(f"{p}: eval_time of the final evaluations is {run.final_eval_ms / 1000:.1f} s ({detail}), "
                        f"over the {EVAL_CAP_MS // 1000} s evaluation limit")
    return problems, unshown


def check_runs(runs: list[RunLog], source: str | None, source_bytes: int | None, track: str,
               audit: bool = False) -> tuple[list[str], list[str]]:
    """(problems, notes): every reason to refuse, one line each; notes on checks that were not possible.
    Packaging refuses a field the record track needs that a log does not show; an audit (``audit``) judges
    logs on what they show and notes it; it also faults duplicate logs other than a byte-identical copy.
    ``source`` None: code not checked. Reruns (runlog.apply_claim) are checked but not counted as seeds."""
    if not runs:
        return ["no run logs found"], []
    problems, notes = [], []
    if source is None:
        notes.append("no train_gpt.py beside the logs; the code was not compared with them")
    for run in runs:
        p = run.path
        if run.family == "eval_only":
            (notes if audit else problems).append(f"{p} is an EVAL_ONLY re-score of {run.eval_only_artifact}, not a "
                                                  "training run; not counted")
            continue
        if run.missing_final:
            last = f"; its last line: {run.last_line[:120]!r}" if run.last_line else ""
            problems.append(f"{p} is truncated or from a crashed run: it lacks {', '.join(run.missing_final)}{last}")
        elif not audit and run.sliding_val_loss is None:
            problems.append(f"{p}: the log has no final_int6_sliding_window_exact line (EVAL_STRIDE=0); a "
                            "submission is scored by its sliding-window val_bpb")
        if run.submission_bytes is not None and run.submission_bytes > SIZE_LIMIT_BYTES:
            problems.append(f"{p}: total submission size {run.submission_bytes:,} bytes is over the "
                            f"{SIZE_LIMIT_BYTES:,}-byte limit")
        if source is not None and run.source_dump is not None and run.source_dump != source:
            hint = " (the log seems to hold several appended runs)" if run.header_blocks > 2 else ""
            problems.append(f"{p}: the train_gpt.py source dumped in the log is not byte-identical to the script "
                            f"to package ({_first_difference(run.source_dump, source)}){hint}")
        elif source is not None and run.source_dump is None and run.code_bytes is not None:
            if run.code_bytes != source_bytes:
                problems.append(f"{p}: the log's Code size ({run.code_bytes:,} bytes) differs from the script to "
                                f"package ({source_bytes:,} bytes)")
            notes.append(f"{p}: no source dump; matched by code size only")
        elif source is not None and run.source_dump is None:
            notes.append(f"{p}: no source dump and no Code size line; source not checked")
        if run.seed is None:
            problems.append(f"{p}: the log does not show seed")
        if track == "10min_16mb":
            broken, unshown = _record_problems(run, audit)
            problems += broken
            (notes if audit else problems).extend(unshown)
        if run.rerun_of:
            notes.append(f"{p}: a rerun of seed {run.seed}; submission.json's claim takes {run.rerun_of.name}, so it "
                         "is shown apart and not counted")
        for dup in run.duplicates if audit else []:
            if dup.name == "train.log" and dup.read_bytes() == p.read_bytes():
                notes.append(f"{dup} is a byte-identical copy of {p} (the records' convention); counted once")
            else:
                problems.append(f"{dup} is a duplicate of {p} (the same run): a folder holds each run once")
    runs = [r for r in runs if r.counted or not r.finished and r.family != "eval_only"]
    if len({r.mlp_activation for r in runs}) > 1:
        detail = ", ".join(f"{r.path}: {r.mlp_activation}" for r in runs)
        problems.append(f"the runs mix mlp_activation values ({detail}); a submission is one configuration")
    elif len({r.config_fingerprint for r in runs if r.config_fingerprint}) > 1:
        detail = ", ".join(f"{r.path}: {r.config_fingerprint}" for r in runs if r.config_fingerprint)
        problems.append(f"the runs have different config fingerprints ({detail}); a submission's seeds must share "
                        "one configuration")
    else:
        seen: dict[int, Path] = {}
        for run in runs:
            if run.seed is not None and run.seed in seen:
                problems.append(f"seed {run.seed} appears twice: {seen[run.seed]} and {run.path} are different runs")
            seen.setdefault(run.seed, run.path)
    seeds = {r.seed for r in runs if r.seed is not None}
    if track == "10min_16mb" and len(seeds) < MIN_RECORD_SEEDS:
        problems.append(f"the record track needs at least {MIN_RECORD_SEEDS} distinct seeds to show significance; "
                        f"got {len(seeds)} (use --track non_record_16mb for a non-record submission)")
    return problems, notes


def data_command(dataset: str | None) -> str:
    """The command that builds a dataset the logs name, or a comment saying there is none."""
    if dataset is None:
        return "# the logs do not name their dataset (no train_loader:dataset: line); no data command known"
    return DATA_COMMANDS.get(dataset, f"# no known command builds the dataset {dataset}; provide it yourself")


def reproduce_lines(runs: list[RunLog]) -> list[str]:
    """The Reproduce block: data commands, then per seed the log's config variables and the launch."""
    lines = [data_command(d) for d in dict.fromkeys(r.dataset for r in runs)]
    if any(os.path.isabs((r.config or {}).get(k, ".")) for r in runs for k in ("DATA_PATH", "TOKENIZER_PATH")):
        lines.append("# DATA_PATH / TOKENIZER_PATH below are paths on the machine that ran the logs: "
                     "point them at the data built above")
    for run in runs:
        where = f"seed {run.seed} ({run.path.name})"
        if run.config_text is None:
            lines.append(f"# {where}: the log has no config line, so the run's settings are unknown; no command given")
        elif run.world_size is None:
            lines.append(f"# {where}: the log does not show world_size; settings: {run.config_text}")
        else:
            launch = f"torchrun --standalone --nproc_per_node={run.world_size} train_gpt.py"
            lines.append(f"{run.config_text} {launch}".strip())
    return lines


def requirements_text(runs: list[RunLog]) -> str:
    """requirements.txt: what the runs imported, PyTorch pinned to the version their logs show."""
    lines = ["# What the runs imported (from their logs). Install the PyTorch build for your CUDA version."]
    versions = sorted({r.torch_version for r in runs if r.torch_version})
    if len(versions) == 1:
        lines.append(f"torch=={versions[0].split('+')[0]}  # the logs show PyTorch {versions[0]}")
    else:
        lines.append(f"torch  # PyTorch versions the logs show: {', '.join(versions) or 'none'}")
    lines += ["numpy", "sentencepiece"]
    readers = {"zstd": "zstandard", "brotli": "brotli>=1.2"}  # the artifact's (lzma, zlib: the standard library)
    lines += sorted({readers[r.compressor or "zstd"] for r in runs if (r.compressor or "zstd") in readers})
    lines += [package for attention, package in ATTENTION_PACKAGES.items() if attention in {r.attention for r in runs}]
    return "\n".join(lines) + "\n"


def readme_text(runs: list[RunLog], record: dict, track: str, notes: list[str], criterion: str) -> str:
    act = runs[0].mlp_activation
    settings = " ".join(f"{k}:{v}" for k, v in runs[0].activation_settings.items())
    setup = [[str(run.seed), run.device or "not shown", format_cell(run.world_size), run.dataset or "not shown",
              format_cell(run.val_tokens, "{:,}"), format_cell(run.steps), run.attention or "not shown",
              run.torch_version or "not shown", format_cell(run.final_eval_ms and run.final_eval_ms / 1000, "{:.1f}")]
             for run in runs]
    results = [[str(run.seed), str(run.steps), format_cell(run.train_time_ms and run.train_time_ms / 1000, "{:.1f}"),
                format_cell(run.step_avg_ms, "{:.2f}"), run.logged.get("post_ema_val_bpb", "-"),
                run.logged["roundtrip_val_bpb"], run.logged["sliding_val_bpb"], run.logged["sliding_val_loss"],
                f"{run.submission_bytes:,}"] for run in runs]
    columns = (("steps", "{:.0f}"), ("train_time_ms", "{:.1f}"), ("step_avg_ms", "{:.2f}"),
               ("post_ema_val_bpb", "{:.4f}"), ("roundtrip_val_bpb", "{:.8f}"), ("sliding_val_bpb", "{:.8f}"),
               ("sliding_val_loss", "{:.8f}"), ("submission_bytes", "{:,.0f}"))
    stats = [(runlog.mean_std(getattr(r, attr) for r in runs), 1000 if attr == "train_time_ms" else 1, fmt)
             for attr, fmt in columns]
    for label, index in (("mean", 0), ("std", 1)):
        cells = [format_cell(None if st[index] is None else st[index] / scale, fmt) for st, scale, fmt in stats]
        results.append([f"**{label}**", *cells])
    lines = [
        f"# {record['name']}", "", record["blurb"], "",
        f"- Author: {record['author']} (@{record['github_id']})",
        f"- Date: {record['date']}",
        f"- Track: {track}",
        f"- MLP activation: `{act}`" + (f" (`{settings}`)" if settings else ""),
        f"- Config fingerprint: {', '.join(sorted({r.config_fingerprint or 'not logged' for r in runs}))}",
        f"- Score: val_bpb **{record['val_bpb']:.8f}** (mean final sliding-window BPB over "
        f"{len(runs)} seed{'s' if len(runs) != 1 else ''}), val_loss {record['val_loss']:.8f} nats",
        f"- Artifact: at most {record['bytes_total']:,} bytes (train_gpt.py {record['bytes_code']:,} bytes "
        "+ compressed weights)",
        "", "## Setup (from the logs)", "",
        *runlog.markdown_table(["seed", "device", "world size", "dataset", "val tokens", "steps", "attention",
                                "PyTorch", "eval time (s)"], "rlrlrrllr", setup),
        "", "## Results", "",
        *runlog.markdown_table(["seed", "steps", "train time (s)", "step_avg (ms)", "post-EMA BPB",
                                "int6 roundtrip BPB", "sliding BPB", "sliding val_loss", "bytes total"],
                               "rrrrrrrrr", results),
        "", "## Record criterion", "", criterion, "", "## Reproduce", "", "```bash",
        *reproduce_lines(runs), "```", "", "## Checks (tools/package.py)", "",
        "- every log has every final line its settings promise",
        f"- every run's total submission size is at most {SIZE_LIMIT_BYTES:,} bytes",
        "- the runs share one activation and one config fingerprint; no seed twice"]
    if track == TRACKS["10min_16mb"]:  # the folder name: readme_text gets TRACKS' values
        lines += [f"- CUDA, world_size {RECORD_SETUP['world_size']}, dataset {RECORD_SETUP['dataset']} with "
                  f"{RECORD_SETUP['val_tokens']:,} val tokens, at least {MIN_RECORD_SEEDS} seeds",
                  f"- training within {TRAIN_CAP_MS // 1000} s (+{TRAIN_TIME_TOLERANCE_MS} ms tolerance); final "
                  f"evaluations (DIAGNOSTIC + roundtrip + sliding eval_time) within {EVAL_CAP_MS // 1000} s per run"]
    lines.append("- the source dumped in the logs is byte-identical to train_gpt.py (packed: to train_gpt_human.py)")
    lines += [f"  - note: {note}" for note in notes]
    return "\n".join(lines) + "\n"


def collect(paths: list[str], what: str = "", code_bytes: int | None = None) -> list[RunLog]:
    """runlog.collect_runs, a log it cannot read a PackageError (``what``: the option that named it). The size rule:
    a total is the compressed model + ``code_bytes``, the folder's train_gpt.py (packed unless --no-pack)."""
    try:
        runs = runlog.collect_runs(paths)
    except runlog.LogError as exc:
        raise PackageError(what + str(exc)) from exc
    for run in (r for r in runs if code_bytes is not None and r.serialized_bytes is not None):
        run.submission_bytes = run.serialized_bytes + code_bytes
    return runs


def scored_runs(against: list[str]) -> list[RunLog]:
    """The SOTA's counted runs (finished training runs; reruns its claim sets aside and re-scores left out)."""
    return [r for r in collect(against, "--against: ") if r.counted]


def score_lines(runs: list[RunLog]) -> str:
    """Which final line the runs' scores come from, and who chose it (every output says so)."""
    return "; ".join(f"{name}_exact ({source})" for name, source in dict.fromkeys((r.score, r.score_source)
                                                                                 for r in runs)) or "none"


def criterion_text(runs: list[RunLog], against: list[str] | None) -> str:
    """The README's record-criterion paragraph (compare.record_criterion against the SOTA's logs)."""
    if not against:
        return ("Not checked: tools/package.py was run without --against, so whether these runs beat the current "
                f"SOTA by >= {compare.RECORD_MARGIN_NATS} nats at p < {compare.RECORD_ALPHA} was not tested.")
    sota = scored_runs(against)
    c = compare.record_criterion(sota, runs)
    names = ", ".join(str(r.path) for r in sota) or "none finished"
    return (f"Against {len(sota)} SOTA run(s) ({names}; scored by {score_lines(sota)}): "
            f"**{'MET' if c.met else 'NOT MET'}** (mean final val_loss lower by >= {c.margin} nats, one-sided Welch "
            f"p < {c.alpha} that the improvement exceeds {c.margin} nats): {c.reason}.")


# ----- --audit FOLDER: the same rules applied to an existing records/<track>/<folder> ---------------

MERGE_ALPHA = 0.25  # maintainers' practice when merging: one-sided Welch p < 0.25 against the previous row


def check_claims(folder: Path, runs: list[RunLog]) -> tuple[list[str], list[str]]:
    """submission.json's val_bpb / val_loss / bytes_total against the counted logs (runlog.apply_claim chose the
    score line and the log of each seed): one log's figure or their mean, at the claim's precision."""
    path = folder / "submission.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [f"{path}: cannot read it ({exc.strerror or exc})"], []
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"{path} is not valid JSON ({exc})"], []
    if not isinstance(record, dict):
        return [f"{path} is not a JSON object"], []
    counted = [r for r in runs if r.counted]
    problems, notes = [], [f"score line: {score_lines(counted)}"]
    claims = (("val_bpb", "score_val_bpb"), ("val_loss", "score_val_loss"), ("bytes_total", "submission_bytes"))
    for key, attr in claims:
        claim = record.get(key)
        if not runlog.number(claim):
            (problems if key == "val_bpb" else notes).append(
                f"{path}: {key} is {'missing' if claim is None else f'not a number ({claim!r})'}")
            continue
        values = {f"seed {r.seed}'s {r.score if attr != 'submission_bytes' else 'Total submission size'} "
                  f"({r.path.name})": getattr(r, attr) for r in counted}
        mean = runlog.mean_std(values.values())[0]
        values[f"the mean of {len(counted)} logs"] = mean
        match = next((name for name, value in values.items() if runlog.matches(claim, value)), None)
        if key == "val_bpb" and counted and counted[0].score_source.startswith("submission.json"):
            match = counted[0].score_source.split(": ", 1)[1]  # apply_claim's choice (maybe of rounded seed figures)
        mean_text = "-" if mean is None else f"{mean:,.1f}" if key == "bytes_total" else f"{mean:.8f}"
        logged = ", ".join(f"{r.logged.get(attr, getattr(r, attr))}" for r in counted) or "none finished"
        if match is None:
            also = "" if mean is None else f" nor their mean {mean_text}"
            problems.append(f"{path}: {key} {claim} equals no log's figure ({logged}){also}, whichever log of each "
                            "seed is taken")
        else:
            unlike = "" if "mean" in match or len(counted) < 2 else f", not the mean {mean_text}"
            notes.append(f"submission.json claims {key} {claim}: {match}{unlike}")
    code = folder / "train_gpt.py"
    if isinstance(record.get("bytes_code"), int) and code.is_file() and record["bytes_code"] != code.stat().st_size:
        problems.append(f"{path}: bytes_code {record['bytes_code']:,} but train_gpt.py has "
                        f"{code.stat().st_size:,} bytes")
    return problems, notes


def check_significance(runs: list[RunLog], against: list[str]) -> tuple[list[str], list[str]]:
    """The README's rule (reported) and the maintainers' merge practice (a fault when not met), on the scores."""
    sota = scored_runs(against)
    ours = [r for r in runs if r.counted]
    c = compare.record_criterion(sota, ours)
    notes = [f"README rule against {len(sota)} SOTA log(s) scored by {score_lines(sota)} (>= {c.margin} nats at "
             f"one-sided p < {c.alpha}): {'MET' if c.met else 'NOT MET'} ({c.reason})"]
    a, b = runlog.figures(sota, "score_val_bpb"), runlog.figures(ours, "score_val_bpb")
    p = compare.welch_test(a, b).p_one_sided_b_lower
    practice = f"maintainers' merge practice (one-sided Welch p < {MERGE_ALPHA} on the scored val_bpb against the " \
               "previous row, reproductions pooled)"
    if p is None:
        return [f"{practice}: cannot be assessed: needs at least 2 logs a side with some variance (have "
                f"{len(a)} SOTA, {len(b)} here)"], notes
    means = f"mean {sum(b) / len(b):.8f} here vs {sum(a) / len(a):.8f}"
    if p >= MERGE_ALPHA:
        return [f"{practice}: not met: {means}, p = {p:.3g}"], notes
    return [], notes + [f"{practice}: met: {means}, p = {p:.3g}"]


def rescore(folder: Path, runs: list[RunLog], args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Score final_model.int6.ptz again with the folder's train_gpt.py (EVAL_ONLY) and compare with its log."""
    artifact, script = folder / "final_model.int6.ptz", folder / "train_gpt.py"
    if not artifact.is_file():
        return [], ["no final_model.int6.ptz in the folder; not re-scored"]
    if not (args.data and args.tokenizer):
        return [], ["final_model.int6.ptz not re-scored: give --data and --tokenizer to score it again"]
    if not script.is_file() or b"EVAL_ONLY" not in unpacked(script.read_bytes()):
        return [], ["final_model.int6.ptz not re-scored: the folder's train_gpt.py has no EVAL_ONLY"]
    size = artifact.stat().st_size
    run = next((r for r in runs if r.serialized_bytes == size), None)
    if run is None:
        return [f"{artifact} ({size:,} bytes) is the artifact of no log here "
                "(no Serialized model line of that size)"], []
    if run.config is None:
        return [], [f"final_model.int6.ptz not re-scored: {run.path} has no config line, so its settings are unknown"]
    env = {**os.environ, **run.config, "EVAL_ONLY": str(artifact.resolve()), "RUN_ID": "audit_rescore",
           "DATA_PATH": os.path.abspath(args.data), "TOKENIZER_PATH": os.path.abspath(args.tokenizer)}
    command = [sys.executable, str(script.resolve())]
    if args.rescore_nproc > 1:
        command[1:1] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.rescore_nproc}"]
    with tempfile.TemporaryDirectory(prefix="audit-rescore-") as work:  # nothing is written into the folder
        proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, errors="replace")
    scored = runlog.parse_text(proc.stdout)
    where = f"EVAL_ONLY={artifact} with {run.path}'s settings"
    if proc.returncode != 0 or scored.eval_only_bytes is None:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1][:200]
        why = f"exit status {proc.returncode}" if proc.returncode else "no eval_only: line"
        return [f"re-scoring {where} failed ({why}): {last}"], []
    problems = []
    if scored.eval_only_bytes != size:
        problems.append(f"re-scoring {where}: it read {scored.eval_only_bytes:,} bytes, the file has {size:,}")
    for name, attr in (("int6 roundtrip", "roundtrip_val_bpb"), ("sliding-window", "sliding_val_bpb")):
        new, old = getattr(scored, attr), getattr(run, attr)
        if old is not None and (new is None or abs(new - old) > args.rescore_tolerance):
            problems.append(f"re-scored {name} val_bpb {new} differs from the log's {old} by more than "
                            f"{args.rescore_tolerance} ({where})")
    note = (f"re-scored {artifact.name} (sha256 {scored.eval_only_sha256[:12]}...): roundtrip "
            f"{scored.roundtrip_val_bpb}, sliding {scored.sliding_val_bpb}; {run.path.name} logged "
            f"{run.roundtrip_val_bpb}, {run.sliding_val_bpb}")
    return problems, [note]


def audit(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(faults, notes) of an existing records/<track>/<folder>: package.py's rules judged on what its logs show,
    duplicate logs, submission.json's claims, significance (--against) and a re-score of our artifact."""
    folder = Path(args.audit)
    if not folder.is_dir():
        raise PackageError(f"--audit {folder}: no such folder")
    track_names = {name: key for key, name in TRACKS.items()}
    track = track_names.get(folder.resolve().parent.name, args.track)
    script = folder / "train_gpt.py"
    source_data = unpacked(script.read_bytes()) if script.is_file() else None
    source = source_data.decode("utf-8", errors="replace") if source_data is not None else None
    runs = sorted(collect([folder], code_bytes=script.stat().st_size if script.is_file() else None), key=runlog.by_seed)
    faults, notes = check_runs(runs, source, source_data and len(source_data), track, audit=True)
    notes.insert(0, f"track {TRACKS[track]}; {len(runs)} log(s): {', '.join(r.path.name for r in runs) or 'none'}")
    for check in (lambda: check_claims(folder, runs), lambda: rescore(folder, runs, args),
                  lambda: check_significance(runs, args.against) if args.against else ([], [])):
        more_faults, more_notes = check()
        faults += more_faults
        notes += more_notes
    return faults, notes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logs", nargs="*", metavar="LOG_OR_DIR", help="run logs or run folders")
    parser.add_argument("--name", help="submission name (folder: YYYY-MM-DD_<Name>); required to package")
    parser.add_argument("--author", help="required to package")
    parser.add_argument("--github-id", help="required to package")
    parser.add_argument("--blurb", help="one-paragraph description; required to package")
    parser.add_argument("--track", type=lambda t: t.removeprefix("track_"), choices=sorted(TRACKS),
                        default="10min_16mb", help="10min_16mb (the record track) or non_record_16mb")
    parser.add_argument("--date", default=dt.date.today().isoformat(), help="YYYY-MM-DD (default: today)")
    parser.add_argument("--against", nargs="+", metavar="SOTA_LOG", help="the current SOTA's logs (after the run logs)")
    parser.add_argument("--check", action="store_true", help="run every check, write nothing (exit 0 or 1)")
    parser.add_argument("--train-script", default=str(runlog.TRAINER), help="train_gpt.py to copy")
    parser.add_argument("--no-pack", action="store_true", help="write train_gpt.py readable, not packed")
    parser.add_argument("--with-artifact", metavar="PTZ", help="a run's final_model.int6.ptz, put in the folder")
    parser.add_argument("--records-dir", default=str(runlog.REPO_ROOT / "records"), help="the records folder")
    audit = parser.add_argument_group("--audit FOLDER: check an existing records/ folder instead (tools/README.md)")
    audit.add_argument("--audit", metavar="FOLDER", help="audit records/<track>/<folder>; exit 0 pass, 1 faults")
    audit.add_argument("--data", help="dataset folder: re-score the folder's final_model.int6.ptz (EVAL_ONLY)")
    audit.add_argument("--tokenizer", help="tokenizer model for the re-score")
    audit.add_argument("--rescore-nproc", type=int, default=1, help="processes for the re-score (default 1)")
    audit.add_argument("--rescore-tolerance", type=float, default=1e-5, help="largest accepted val_bpb difference")
    return parser


def package(args: argparse.Namespace) -> Path:
    """Check everything, then (unless --check) write the folder; PackageError lists every problem."""
    date = parse_date(args.date)
    target = Path(args.records_dir) / TRACKS[args.track] / f"{date}_{folder_name(args.name)}"
    script = Path(args.train_script)
    try:
        source_data = script.read_bytes()
        source = source_data.decode("utf-8")
    except OSError as exc:
        raise PackageError(f"cannot read the training script {script}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PackageError(f"{script} is not UTF-8 text") from exc
    code = source_data if args.no_pack else packed_form(script, source)
    runs = sorted(collect(args.logs, code_bytes=len(code)), key=runlog.by_seed)
    problems, notes = check_runs(runs, source, len(source_data), args.track)
    artifact = args.with_artifact and Path(args.with_artifact)
    if artifact and not any(artifact.is_file() and r.serialized_bytes == artifact.stat().st_size for r in runs):
        problems.append(f"--with-artifact {artifact}: no such file, or no log here has a Serialized model of its size")
    if target.exists():
        problems.append(f"target folder already exists: {target}")
    if problems:
        raise PackageError("\n".join(problems))
    notes += [f"{dup}: the same run as {r.path}, counted once" for r in runs for dup in r.duplicates]
    criterion = criterion_text(runs, args.against)
    print("".join(f"package: note: {note}\n" for note in notes), end="", file=sys.stderr)
    if args.check:
        print(f"package: record criterion: {criterion}")
        return target
    record = {"author": args.author, "github_id": args.github_id, "name": args.name, "blurb": args.blurb, "date": date,
              "val_loss": round(runlog.mean_std(r.sliding_val_loss for r in runs)[0], 8),
              "val_bpb": round(runlog.mean_std(r.sliding_val_bpb for r in runs)[0], 8),
              "bytes_total": max(r.submission_bytes for r in runs), "bytes_code": len(code)}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        (staging / "train_gpt.py").write_bytes(code)
        if code != source_data:
            (staging / "train_gpt_human.py").write_bytes(source_data)
        if artifact:
            shutil.copyfile(artifact, staging / "final_model.int6.ptz")
        for run in runs:
            shutil.copyfile(run.path, staging / f"train_seed{run.seed}.log")
        (staging / "submission.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (staging / "requirements.txt").write_text(requirements_text(runs), encoding="utf-8")
        (staging / "README.md").write_text(readme_text(runs, record, TRACKS[args.track], notes, criterion),
                                           encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.audit:
        if args.logs:
            parser.error("--audit reads the folder's own logs; give no LOG_OR_DIR with it")
        try:
            faults, notes = audit(args)
        except PackageError as exc:
            print(f"package: audit: error: {exc}", file=sys.stderr)
            return 2
        print("".join(f"package: audit: note: {note}\n" for note in notes), end="")
        print("".join(f"package: audit: fault: {fault}\n" for fault in faults), end="")
        print(f"package: audit: {'FAIL' if faults else 'PASS'}: {args.audit} ({len(faults)} fault(s))")
        return 1 if faults else 0
    missing = [f"--{name.replace('_', '-')}" for name in ("name", "author", "github_id", "blurb")
               if getattr(args, name) is None]
    if missing or not args.logs:
        parser.error(f"packaging needs LOG_OR_DIR and {', '.join(missing) or 'the options above'} (or --audit FOLDER)")
    try:
        target = package(args)
    except PackageError as exc:
        for line in str(exc).splitlines():
            print(f"package: refused: {line}", file=sys.stderr)
        return 1
    if args.check:
        print(f"package: check passed; would write {target}")
        return 0
    print(f"package: wrote {target}", *(f"  {child.name}" for child in sorted(target.iterdir())), sep="\n")
    return 0


if __name__ == "__main__":
    runlog.run_main(main)
