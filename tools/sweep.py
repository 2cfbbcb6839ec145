#!/usr/bin/env python3
"""Run train_gpt.py over activations x seeds, one run at a time, resumably (tools/README.md, "sweep.py")."""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import runlog
from runlog import ToolError

RESERVED_ENV = ("MLP_ACTIVATION", "SEED", "RUN_ID")
PATH_SETTINGS = ("DATA_PATH", "TOKENIZER_PATH")  # relative to the training script; defaults: train_gpt.py's
# Files a run writes into its folder; set aside before a re-run.
RUN_OUTPUTS = ("logs/{run_id}.txt", "train_seed{seed}.log", "train.log", "console.out",
               "final_model.pt", "final_model.int6.ptz", "runs/{run_id}")
NAME_OK = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class Run:
    """One activation x seed: its RUN_ID, folder and the files train_gpt.py writes there."""

    activation: str
    seed: int
    out: Path

    def __post_init__(self):
        self.run_id = f"{self.activation}_seed{self.seed}"
        self.folder = self.out / self.run_id
        self.log_path = self.folder / "logs" / f"{self.run_id}.txt"
        self.seed_log_path = self.folder / f"train_seed{self.seed}.log"
        self.console_path = self.folder / "console.out"

    def finished_log(self) -> Path | None:
        """The run's log when it is finished (runlog: every final line its config promises), else None."""
        logs = (self.log_path, self.seed_log_path)
        return next((path for path in logs if path.is_file() and runlog.parse_log(path).finished), None)

    def outputs(self) -> list[Path]:
        return [self.folder / p.format(run_id=self.run_id, seed=self.seed) for p in RUN_OUTPUTS]

    def environment(self, settings: dict[str, str]) -> dict[str, str]:
        return {**os.environ, **settings, "MLP_ACTIVATION": self.activation, "SEED": str(self.seed),
                "RUN_ID": self.run_id}


def _split_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ToolError(f"--{what} needs at least one value")
    if len(set(items)) != len(items):
        raise ToolError(f"--{what} lists a value twice: {text}")
    return items


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ToolError(f"--env takes KEY=VALUE, got {pair!r}")
        if key in RESERVED_ENV:
            raise ToolError(f"--env {key}=... is set per run by the sweep; use --activations / --seeds")
        env[key] = value
    return env


def shared_settings(args: argparse.Namespace, script: Path) -> dict[str, str]:
    """The environment every run shares (beyond the caller's own environment)."""
    env = parse_env(args.env)
    if args.fixed_steps is not None:
        if "ITERATIONS" in env or "MAX_WALLCLOCK_SECONDS" in env:
            raise ToolError("--fixed-steps sets ITERATIONS and MAX_WALLCLOCK_SECONDS; do not also pass them "
                            "with --env")
        env["ITERATIONS"] = str(args.fixed_steps)
        env["MAX_WALLCLOCK_SECONDS"] = "0"
    if args.wallclock is not None:
        if "MAX_WALLCLOCK_SECONDS" in env:
            raise ToolError("--wallclock sets MAX_WALLCLOCK_SECONDS; do not also pass it with --env")
        env["MAX_WALLCLOCK_SECONDS"] = f"{args.wallclock:g}"
    for key in PATH_SETTINGS:
        value = env.get(key, os.environ.get(key))
        if value is None:
            value = str(script.parent / runlog.trainer_constant(key))
        env[key] = value if os.path.isabs(value) else os.path.abspath(value)
    return env


def gpu_count() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no torch / no driver means no GPU
        return 0


def launch_command(script: Path, nproc: int) -> list[str]:
    """torchrun when nproc > 1 or a GPU is present, else plain python."""
    if nproc == 1 and gpu_count() == 0:
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(script)]


def check_out(out: Path, runs: list[Run], record: dict, force: bool) -> None:
    """Refuse an --out the sweep cannot use, or a resume with other shared settings (unless force).
    The real run and --dry-run both call this, so a dry run fails where the run would."""
    blocking = [p for p in (*out.parents, out, *(run.folder for run in runs)) if p.exists() and not p.is_dir()]
    if blocking:
        raise ToolError(f"--out {out}: {blocking[0]} is a file, not a folder; give --out a new or existing folder")
    path = out / "sweep.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        old_env, new_env = dict(old.get("env", {})), record["env"]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ToolError(f"{path} is unreadable ({exc}); move it away to start afresh") from exc
    diff = [f"{key}: {old_env.get(key)!r} -> {new_env.get(key)!r}" for key in sorted(set(old_env) | set(new_env))
            if old_env.get(key) != new_env.get(key)]
    if old.get("nproc") != record["nproc"]:
        diff.append(f"nproc: {old.get('nproc')} -> {record['nproc']}")
    if diff and not force:
        raise ToolError(f"{out} was started with other shared settings ({'; '.join(diff)}); runs with "
                        "different settings must not be compared. Use a new --out, or --force to go on anyway.")
    if old.get("train_script_sha256") != record["train_script_sha256"]:
        print(f"sweep: warning: {record['train_script']} changed since this sweep started; "
              "finished runs used the old version", file=sys.stderr)


def set_aside(run: Run) -> Path | None:
    """Keep an earlier attempt's files in the first free crashed-<k>/ (runlog.keep_existing); return it."""
    present = [p for p in run.outputs() if p.exists()]
    if not present:
        return None
    target = next(run.folder / f"crashed-{k}" for k in itertools.count(1) if not (run.folder / f"crashed-{k}").exists())
    for path in present:
        runlog.keep_existing(path, target / path.parent.relative_to(run.folder))
    return target


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def execute(run: Run, command: list[str], env: dict[str, str], echo: bool) -> int:
    """Run one training process in the run's folder; return its exit status."""
    (run.folder / "logs").mkdir(parents=True, exist_ok=True)
    with open(run.console_path, "w", encoding="utf-8") as console:
        proc = subprocess.Popen(command, cwd=run.folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", bufsize=1, start_new_session=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                for stream in (console, sys.stdout) if echo else (console,):
                    print(line, end="", file=stream, flush=True)
            return proc.wait()
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise


def plan_runs(activations: list[str], seeds: list[int], out: Path) -> list[Run]:
    """Seed-major: every activation of the first seed, then the next seed (an A/B pair early)."""
    return [Run(act, seed, out) for seed, act in itertools.product(seeds, activations)]


def check_settings(runs: list[Run], settings: dict[str, str], env_names: list[str]) -> None:
    """Refuse, before anything runs, settings the repository's train_gpt.py would refuse or ignore."""
    try:
        train_gpt = runlog.import_trainer()
    except Exception as exc:  # noqa: BLE001 - any import failure means the settings cannot be checked
        raise ToolError(f"cannot import {runlog.TRAINER} to check the settings: {exc}") from exc
    known = {name for name, _, _ in train_gpt.Hyperparameters.variables()}
    runtime = getattr(train_gpt, "FOREIGN_PREFIXES", ())
    problems = []
    for name in env_names:
        if name not in known and not name.startswith(runtime):
            hint = re.search(r"did you mean \w+\?", " ".join(train_gpt.close_variable_warnings({name: ""})))
            problems.append(f"--env {name}: not a variable of train_gpt.py ("
                            + (hint.group(0) if hint else "python3 train_gpt.py --help lists them") + ")")
    for run in runs:
        try:
            train_gpt.Hyperparameters(run.environment(settings))
        except train_gpt.ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ToolError("nothing was run; train_gpt.py would refuse these settings:\n  "
                        + "\n  ".join(dict.fromkeys(problems)))


def report(out: Path, runs: list[Run], activations: list[str], plots: bool) -> None:
    """The report (summarize.report), summary.json and the plots."""
    import summarize

    parsed = [runlog.parse_log(p) for p in map(Run.finished_log, runs) if p is not None]
    print("\n" + summarize.report(parsed, activations))
    (out / "summary.json").write_text(runlog.strict_json(summarize.summary_json(parsed)) + "\n", encoding="utf-8")
    if plots:
        import plots as plotting

        written = plotting.write_plots(parsed, out / "plots")
        print(f"\nplots: {', '.join(map(str, written)) if written else 'none (no data)'}")


def build_parser() -> argparse.ArgumentParser:
    parser = runlog.ArgumentParser(description=__doc__)
    parser.add_argument("--activations", required=True, help="comma-separated, e.g. relu2,asqu (first = baseline)")
    parser.add_argument("--seeds", required=True, help="comma-separated integers, e.g. 1337,42,2024")
    parser.add_argument("--out", required=True, help="sweep folder (created; one subfolder per run)")
    parser.add_argument("--nproc", type=int, default=1, help="processes per run (torchrun --nproc_per_node)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="shared setting (repeatable)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--fixed-steps", type=int, metavar="N", help="ITERATIONS=N and MAX_WALLCLOCK_SECONDS=0")
    budget.add_argument("--wallclock", type=float, metavar="S", help="MAX_WALLCLOCK_SECONDS=S")
    parser.add_argument("--train-script", default=str(runlog.TRAINER), help="the training script")
    parser.add_argument("--echo", action="store_true", help="also show each run's console output")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and commands, run nothing")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots at the end")
    parser.add_argument("--force", action="store_true", help="resume even if the shared settings changed")
    return parser


def sweep(args: argparse.Namespace) -> int:
    script = Path(args.train_script).resolve()
    if not script.is_file():
        raise ToolError(f"training script not found: {script}")
    activations = _split_list(args.activations, "activations")
    for act in activations:
        if not NAME_OK.fullmatch(act):
            raise ToolError(f"bad activation name {act!r}")  # it names the run's folder
    try:
        seeds = [int(s) for s in _split_list(args.seeds, "seeds")]
    except ValueError as exc:
        raise ToolError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from exc
    for flag, value in (("--nproc", args.nproc), ("--fixed-steps", args.fixed_steps)):
        if value is not None and value < 1:
            raise ToolError(f"{flag} must be at least 1")
    out = Path(args.out).resolve()
    settings = shared_settings(args, script)
    command = launch_command(script, args.nproc)
    runs = plan_runs(activations, seeds, out)
    check_settings(runs, settings, list(parse_env(args.env)))
    record = {"train_script": str(script), "train_script_sha256": hashlib.sha256(script.read_bytes()).hexdigest(),
              "env": settings, "nproc": args.nproc, "command": command}
    check_out(out, runs, record, args.force)

    print(f"sweep: {len(runs)} runs ({', '.join(activations)} x seeds {', '.join(map(str, seeds))}) in {out}")
    print(f"sweep: command: {shlex.join(command)}")
    print("sweep: shared settings: " + " ".join(f"{k}={v}" for k, v in sorted(settings.items())))
    places = [f"{i}/{len(runs)}" for i in range(1, len(runs) + 1)]
    if args.dry_run:
        for place, run in zip(places, runs):
            state = "done, would skip" if run.finished_log() else "would run"
            print(f"[{place}] {run.run_id}: {state} in {run.folder} "
                  f"(MLP_ACTIVATION={run.activation} SEED={run.seed} RUN_ID={run.run_id})")
        return 0
    try:  # the shared settings, what a resume is checked against
        out.mkdir(parents=True, exist_ok=True)
        (out / "sweep.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"--out {out}: cannot write {out / 'sweep.json'} ({exc.strerror or exc}); "
                        "give --out a writable folder") from exc
    started = time.monotonic()
    for place, run in zip(places, runs):
        done = run.finished_log()
        if done is not None:
            print(f"[{place}] {run.run_id}: already finished ({done}), skipped")
            continue
        aside = set_aside(run)
        if aside is not None:
            print(f"[{place}] {run.run_id}: earlier unfinished attempt kept in {aside}")
        print(f"[{place}] {run.run_id}: running (sweep elapsed {_clock(time.monotonic() - started)}); "
              f"console: {run.console_path}", flush=True)
        t0 = time.monotonic()
        status = execute(run, command, run.environment(settings), args.echo)
        took = time.monotonic() - t0
        log = run.log_path if run.log_path.is_file() else run.seed_log_path
        parsed = runlog.parse_log(log) if log.is_file() else None
        if status != 0 or parsed is None or not parsed.finished:
            why = (f"exit status {status}" if status else
                   f"it ended without {', '.join(parsed.missing_final)}" if parsed else "it wrote no log")
            where = f"its log: {log}" if parsed else f"it wrote no log (expected {run.log_path})"
            tail = _tail(run.console_path)
            raise ToolError(f"run {place} {run.run_id} failed ({why}) after {took:.1f} s; {where}; console output: "
                            f"{run.console_path}" + (f"\n--- last console lines ---\n{tail}" if tail else ""), code=1)
        figure = parsed.sliding_val_bpb if parsed.sliding_val_bpb is not None else parsed.roundtrip_val_bpb
        print(f"[{place}] {run.run_id}: done in {took:.1f} s (steps {parsed.steps}, final BPB {figure}; "
              f"sweep elapsed {_clock(time.monotonic() - started)})", flush=True)
    report(out, runs, activations, plots=not args.no_plots)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return runlog.one_line_errors("sweep", lambda: sweep(args))
    except KeyboardInterrupt:
        print("sweep: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    runlog.run_main(main)
