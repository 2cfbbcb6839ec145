#!/usr/bin/env python3
"""The staged 8xH100 campaign: control, A/B, confirmation, record check; it stops at the first KILL.

    python3 scripts/campaign.py [OUT]            # default OUT: results/h100-campaign
    DRY_RUN=1 python3 scripts/campaign.py        # print each stage's commands and rules, run nothing

Stages: 0 setup (scripts/gpu_preflight.py: checks, and the MLP kernel per activation, then the published data),
1 control, 2 A/B, 3 confirmation, 4 record check (tools/package.py --check); every run gets the MLP_KERNEL stage 0
chose for its activation. README.md, "The staged campaign", gives each stage's runs and rules and why.
Every stage prints and records (OUT/campaign.json) its verdict, reasons, GPU-hours (its wall time x NPROC)
and, with PRICE_PER_GPU_HOUR, money; BUDGET stops before a stage whose estimate exceeds what is left.
Run the same command again to resume: finished runs are not run again (tools/sweep.py). Settings are
environment variables (listed below). Exit status: 0 every stage GO, 1 a KILL, 2 a usage error, 3 stopped by
the budget.
"""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import compare  # noqa: E402
import package  # noqa: E402
import runlog  # noqa: E402
import sweep  # noqa: E402

# name: (default, kind, meaning). Reference figures: the March 22 record, seed 1337 (its log); tolerances from
# its three seeds (README.md, "The staged campaign").
SETTINGS = {
    "OUT": ("results/h100-campaign", str, "output folder (or the first argument)"),
    "PYTHON": ("python3", str, "the Python that runs every step"),
    "ACTIVATIONS": ("relu2,leaky2,asqu", str, "the control first, the candidate last, reference arms between"),
    "SEEDS": ("1337,42,2025", str, "the first for stages 1-2, the others for stage 3"),
    "NPROC": ("8", int, "processes (GPUs) per run; GPU-hours = wall time x NPROC"),
    "WALLCLOCK": ("600", float, "MAX_WALLCLOCK_SECONDS of every run (0 = the fixed-step regime)"),
    "TRAIN_ENV": ("", str, "more KEY=VALUE settings for every run, space-separated"),
    "TRAIN_SHARDS": ("80", int, "train shards to download"),
    "SKIP_PREFLIGHT": ("0", str, "1 = no preflight"),
    "SKIP_DOWNLOAD": ("0", str, "1 = no data download"),
    "REF_SLIDING_BPB": ("1.12278022", float, "stage 1: the record's sliding-window val_bpb"),
    "TOL_SLIDING_BPB": ("0.0015", float, "stage 1: accepted distance from it"),
    "REF_STEPS": ("7096", int, "stage 1: the record's steps in 600 s"),
    "TOL_STEPS": ("71", int, "stage 1: accepted distance from it"),
    "REF_MODEL_BYTES": ("15487414", int, "stage 1: the record's compressed model (Serialized model int6+zstd)"),
    "TOL_MODEL_BYTES": ("100000", int, "stage 1: accepted distance from it"),
    "STEP_MARGIN": ("0.02", float, "stages 0, 2-3: KILL when the candidate's step time exceeds the control's by more"),
    "FORCE_AB": ("0", str, "1 = go on past stage 0 when the preflight's step times already break STEP_MARGIN"),
    "SIZE_LIMIT": (str(runlog.trainer_constant("SIZE_LIMIT")), int,
                   "stages 2-3: KILL when a candidate's total submission size exceeds it"),
    "TIME_LIMIT_S": ("600", float, "stages 2-3: KILL when a candidate's training time exceeds it (+1 s)"),
    "MIN_GAIN_BPB": ("0", float, "stages 2-3: KILL unless the candidate is lower by more than this on both metrics"),
    "NARROW_SWEEP": ("", str, "stage 3: NAME=v1,v2 with NAME ASQU_BETA_INIT or ASQU_LR (candidate, first seed)"),
    "SOTA_LOGS": ("", str, "stage 4: the current SOTA's train_seed*.log files or folder, space-separated"),
    "TRACK": ("10min_16mb", str, "stage 4: package.py --track"),
    "PRICE_PER_GPU_HOUR": ("", float, "money per GPU-hour; unset: costs in GPU-hours only"),
    "BUDGET": ("", float, "money (needs PRICE_PER_GPU_HOUR): stop before a stage whose estimate exceeds what is left"),
    "RUN_ESTIMATE_S": ("800", float, "wall seconds per run assumed before any run was measured"),
    "SETUP_ESTIMATE_S": ("900", float, "wall seconds assumed for stage 0 (preflight and download)"),
    "PLOTS": ("1", str, "0 = no plots after stage 3"),
    "DRY_RUN": ("0", str, "1 = print each stage's commands and rules, run nothing"),
}
NARROW_KNOBS = ("ASQU_BETA_INIT", "ASQU_LR")
# Numbers are finite; NPROC, TRAIN_SHARDS, RUN_ESTIMATE_S >= 1; the KILL rules' margins any; the others >= 0.
POSITIVE, SIGNED = ("NPROC", "TRAIN_SHARDS", "RUN_ESTIMATE_S"), ("STEP_MARGIN", "TIME_LIMIT_S", "MIN_GAIN_BPB")


class CampaignError(Exception):
    """A usage problem: one line, exit status 2."""


def read_settings(environ: dict, argv: list[str]) -> dict:
    s = {name: environ.get(name, default) for name, (default, _, _) in SETTINGS.items()}
    if argv:
        s["OUT"] = argv[0]
    for name, (default, kind, _) in SETTINGS.items():
        raw, least = s[name], -math.inf if name in SIGNED else 1 if name in POSITIVE else 0
        try:
            s[name] = None if kind is not str and not raw and not default else kind(raw)  # "": unset
            if kind is not str and s[name] is not None and not (math.isfinite(s[name]) and s[name] >= least):
                raise ValueError
        except ValueError:
            wanted = ("an integer" if kind is int else "a finite number") + ("" if name in SIGNED else f" >= {least}")
            raise CampaignError(f"{name} must be {wanted}, got {raw!r}") from None
    if s["BUDGET"] is not None and s["PRICE_PER_GPU_HOUR"] is None:
        raise CampaignError("BUDGET is money: set PRICE_PER_GPU_HOUR too")
    s["ACTIVATIONS"] = [a for a in s["ACTIVATIONS"].split(",") if a]
    if len(s["ACTIVATIONS"]) < 2:
        raise CampaignError(f"ACTIVATIONS needs the control and a candidate, got {','.join(s['ACTIVATIONS'])!r}")
    try:
        s["SEEDS"] = [int(x) for x in s["SEEDS"].split(",") if x]
    except ValueError:
        raise CampaignError(f"SEEDS takes comma-separated integers, got {s['SEEDS']!r}") from None
    if not s["SEEDS"] or len(set(s["SEEDS"])) < len(s["SEEDS"]):
        raise CampaignError(f"SEEDS needs distinct seeds, at least one, got {environ.get('SEEDS')!r}")
    if s["TRACK"] not in package.TRACKS:
        raise CampaignError(f"TRACK={s['TRACK']!r} is not one of {', '.join(package.TRACKS)}")
    if s["NARROW_SWEEP"]:
        name, _, values = s["NARROW_SWEEP"].partition("=")
        if name not in NARROW_KNOBS or not values:
            raise CampaignError(f"NARROW_SWEEP takes NAME=v1,v2 with NAME one of {', '.join(NARROW_KNOBS)}, "
                                f"got {s['NARROW_SWEEP']!r}")
    for name in ("TRAIN_ENV", "SOTA_LOGS"):  # shell-like lists: KEY=VALUE settings, log paths
        try:
            s[name] = shlex.split(s[name])
        except ValueError as exc:
            raise CampaignError(f"{name}={s[name]!r} cannot be split like a shell line ({exc}); balance its "
                                "quotes") from None
    s["OUT"] = Path(s["OUT"]).resolve()
    if s["OUT"].exists() and not s["OUT"].is_dir():
        raise CampaignError(f"OUT={s['OUT']} is a file, not a folder; name a folder (it is created)")
    return s


class Campaign:
    def __init__(self, s: dict):
        self.s = s
        self.out, self.runs_dir = s["OUT"], s["OUT"] / "runs"
        self.dry = s["DRY_RUN"] == "1"
        self.control, self.candidate = s["ACTIVATIONS"][0], s["ACTIVATIONS"][-1]
        state_path = self.out / "campaign.json"
        try:
            self.state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise CampaignError(f"{state_path} is unreadable ({exc}); move it away to start afresh") from None
        self.state.setdefault("stages", {})
        self.state.setdefault("measured_runs", {"count": 0, "wall_s": 0.0})
        self.check_runs()

    def check_runs(self) -> None:
        """Every training run's settings checked now, as tools/sweep.py checks them (the trainer's own validation)."""
        for activations, seeds, out, env in (sw for number in (1, 2, 3) for sw in self.sweeps(number)):
            args = sweep.build_parser().parse_args(self.sweep_command(activations, seeds, out, env)[2:])
            try:
                settings, runs = sweep.shared_settings(args, runlog.TRAINER), sweep.plan_runs(activations, seeds, out)
                sweep.check_settings(runs, settings, list(sweep.parse_env(args.env)))
            except runlog.ToolError as exc:
                message = str(exc).replace("--env", "TRAIN_ENV").replace("--wallclock", "WALLCLOCK")
                raise CampaignError(" ".join(message.replace("--activations / --seeds", "ACTIVATIONS / SEEDS").split()))

    # ----- commands ---------------------------------------------------------------------------------
    def sweep_command(self, activations: list[str], seeds: list[int], out: Path, env: list[str] = ()) -> list[str]:
        s = self.s
        command = [s["PYTHON"], "tools/sweep.py", "--activations", ",".join(activations),
                   "--seeds", ",".join(map(str, seeds)), "--out", str(out), "--nproc", str(s["NPROC"]),
                   "--wallclock", f"{s['WALLCLOCK']:g}", "--no-plots"]
        for pair in [*s["TRAIN_ENV"], *env]:
            command += ["--env", pair]
        return command

    def given_kernel(self) -> str | None:  # MLP_KERNEL in TRAIN_ENV: it overrides stage 0's choice
        return ([p.partition("=")[2] for p in self.s["TRAIN_ENV"] if p.startswith("MLP_KERNEL=")] or [None])[-1]

    def kernel(self, activation: str) -> str | None:  # what its runs get: TRAIN_ENV's, stage 0's choice, or none
        return self.given_kernel() or self.state.get("kernels", {}).get(activation, {}).get("chosen")

    def kernel_line(self) -> str:
        chosen = ", ".join(f"{act} {self.kernel(act) or 'auto'}" for act in self.s["ACTIVATIONS"])
        why = ("TRAIN_ENV's MLP_KERNEL, which overrides stage 0's choice" if self.given_kernel() else
               "stage 0's choice" if "kernels" in self.state else "none chosen: SKIP_PREFLIGHT=1"
               if self.s["SKIP_PREFLIGHT"] == "1" else "stage 0 chooses them; a dry run measures nothing")
        return f"MLP_KERNEL: {chosen} ({why})"

    def narrow_sweeps(self) -> list[tuple[str, Path]]:
        if not self.s["NARROW_SWEEP"]:
            return []
        name, _, values = self.s["NARROW_SWEEP"].partition("=")
        return [(f"{name}={v}", self.out / "narrow" / f"{name}_{v}") for v in values.split(",") if v]

    def run(self, command: list[str], capture: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
        """Print and run command (env: variables added to this process's environment, printed before it)."""
        print(f"+ {shlex.join([f'{k}={v}' for k, v in (env or {}).items()] + command)}", flush=True)
        if self.dry:
            return None
        return subprocess.run(command, cwd=REPO, text=True, capture_output=capture, env={**os.environ, **(env or {})})

    def logs(self, activation: str, seeds: list[int], out: Path | None = None) -> list[runlog.RunLog]:
        found = [r.finished_log() for r in sweep.plan_runs([activation], seeds, out or self.runs_dir)]
        return [runlog.parse_log(p) for p in found if p is not None]

    # ----- rules ------------------------------------------------------------------------------------
    def control_checks(self) -> list[tuple[bool, str]]:
        s, runs = self.s, self.logs(self.control, self.s["SEEDS"][:1])
        if not runs:
            return [(False, f"no finished {self.control} run at seed {s['SEEDS'][0]}")]
        r, checks = runs[0], []
        for what, value, ref, tol in (
                ("sliding val_bpb", r.sliding_val_bpb, s["REF_SLIDING_BPB"], s["TOL_SLIDING_BPB"]),
                ("steps", r.steps, s["REF_STEPS"], s["TOL_STEPS"]),
                ("compressed model bytes", r.serialized_bytes, s["REF_MODEL_BYTES"], s["TOL_MODEL_BYTES"])):
            ok = value is not None and abs(value - ref) <= tol
            checks.append((ok, f"control {what} {value} is {'within' if ok else 'not within'} {tol:g} of the "
                               f"record's {ref}"))
        return checks

    def arm_checks(self, arm: str, seeds: list[int]) -> list[tuple[bool, str]]:
        """The A/B rules for one arm against the control over these seeds (means when several)."""
        s = self.s
        control, runs = self.logs(self.control, seeds), self.logs(arm, seeds)
        if not control or not runs:
            return [(False, f"missing finished runs: {self.control} {len(control)}, {arm} {len(runs)}")]
        checks = []
        mean = lambda rs, attr: runlog.mean_std(getattr(r, attr) for r in rs)[0]  # noqa: E731
        ratio = mean(runs, "step_avg_ms") / mean(control, "step_avg_ms")
        checks.append((ratio <= 1 + s["STEP_MARGIN"], f"{arm} step_avg is {ratio:.4f} x the control's "
                                                       f"(limit {1 + s['STEP_MARGIN']:.4f})"))
        for r in runs:
            checks.append((r.submission_bytes <= s["SIZE_LIMIT"],
                           f"{r.name}: total submission size {r.submission_bytes:,} bytes (limit {s['SIZE_LIMIT']:,})"))
            limit_ms = s["TIME_LIMIT_S"] * 1000 + 1000
            checks.append((r.train_time_ms is not None and r.train_time_ms <= limit_ms,
                           f"{r.name}: training took {r.train_time_ms} ms (limit {limit_ms:,.0f} ms)"))
        for metric, attr in (("final_int6_roundtrip_exact", "roundtrip_val_bpb"),
                             ("sliding window", "sliding_val_bpb")):
            gain = mean(control, attr) - mean(runs, attr)
            checks.append((gain > s["MIN_GAIN_BPB"], f"{arm} is lower than the control on {metric} val_bpb by "
                                                      f"{gain:+.5f} (needs more than {s['MIN_GAIN_BPB']:g})"))
        return checks

    # ----- stages -----------------------------------------------------------------------------------
    def stage_setup(self) -> tuple[list[tuple[bool, str]], int]:
        if self.state["stages"].get("0", {}).get("verdict") == "GO":
            return [(True, "GO in an earlier session; not repeated")], 0
        checks = []
        if self.s["SKIP_PREFLIGHT"] != "1":
            report = self.out / "preflight.json"
            if not self.dry:
                self.out.mkdir(parents=True, exist_ok=True)
            proc = self.run([self.s["PYTHON"], "scripts/gpu_preflight.py", "--activations",
                             ",".join(self.s["ACTIVATIONS"]), "--json", str(report)])
            checks.append((proc is None or proc.returncode == 0,
                           f"preflight exit status {proc and proc.returncode} (its last line says why)"))
            checks += [] if proc is None or not checks[-1][0] else self.kernel_checks(report)
            if not all(ok for ok, _ in checks):
                return checks, 0
        if self.s["SKIP_DOWNLOAD"] != "1":
            proc = self.run([self.s["PYTHON"], "data/cached_challenge_fineweb.py", "--variant", "sp1024",
                             "--train-shards", str(self.s["TRAIN_SHARDS"])])
            checks.append((proc is None or proc.returncode == 0,
                           f"data download exit status {proc and proc.returncode}"))
        return checks or [(True, "preflight and download skipped")], 0

    def kernel_checks(self, report: Path) -> list[tuple[bool, str]]:
        """The preflight's kernel choice (kept for every later run) and stage 0's speed rule: the candidate's step
        time against the control's under the kernels their runs will use, as stage 2 judges step_avg."""
        ctl, cand, limit = self.control, self.candidate, 1 + self.s["STEP_MARGIN"]
        try:
            self.state["kernels"] = kernels = json.loads(report.read_text(encoding="utf-8"))["kernels"]
            used = {a: self.kernel(a) if self.kernel(a) in ("torch", "triton") else kernels[a]["chosen"]
                    for a in (ctl, cand)}  # MLP_KERNEL=auto takes the preflight's choice on this node
            ms = {a: kernels[a][f"{used[a]}_ms"][0] for a in (ctl, cand)}
        except (OSError, ValueError, LookupError, TypeError) as exc:
            return [(False, f"{report} has no step time of {ctl} and {cand} ({type(exc).__name__}: {exc})")]
        self.state["step_ratio_stage0"] = ratio = ms[cand] / ms[ctl]
        forced = ratio > limit and self.s["FORCE_AB"] == "1"
        chosen = "; ".join(f"{a} {k['chosen']} (torch {k['torch_ms'] and round(k['torch_ms'][0])} ms, triton "
                           f"{k['triton_ms'] and round(k['triton_ms'][0])} ms)" for a, k in kernels.items())
        return [(True, f"kernels chosen by the preflight (median step time): {chosen}"),
                (ratio <= limit or forced, f"{cand} step time is {ratio:.4f} x {ctl}'s under the kernels their runs "
                 f"use ({cand} {used[cand]} {ms[cand]:.0f} ms, {ctl} {used[ctl]} {ms[ctl]:.0f} ms; limit {limit:.4f})"
                 + ("; FORCE_AB=1: the A/B runs anyway" if forced else "; FORCE_AB=1 or a larger STEP_MARGIN goes on"
                    if ratio > limit else ""))]

    def sweeps(self, number: int) -> list[tuple[list[str], list[int], Path, list[str]]]:
        """The (activations, seeds, out folder, --env settings) sweeps that stage `number` trains."""
        s, first = self.s, self.s["SEEDS"][:1]
        return {1: [([self.control], first, self.runs_dir, [])],
                2: [(s["ACTIVATIONS"], first, self.runs_dir, [])],
                3: [(s["ACTIVATIONS"], s["SEEDS"], self.runs_dir, []),
                    *(([self.candidate], first, out, [env]) for env, out in self.narrow_sweeps())]}.get(number, [])

    def training(self, number: int) -> tuple[list[tuple[bool, str]], int]:
        failed, ran = [], 0
        for activations, seeds, out, env in self.sweeps(number):
            todo = sum(run.finished_log() is None for run in sweep.plan_runs(activations, seeds, out))
            if todo == 0 and not self.dry:
                print(f"(every run of this stage is finished in {out}: nothing to run)")
                continue
            ran += todo
            groups: dict[str | None, list[str]] = {}  # one sweep per kernel (stage 0's choice per activation)
            for act in activations:
                groups.setdefault(self.kernel(act), []).append(act)
            for kernel, acts in groups.items():
                # in the sweep's environment, not its --env: the runs' kernel is no shared setting of the folder
                chosen = None if kernel is None or self.given_kernel() else {"MLP_KERNEL": kernel}
                proc = self.run(self.sweep_command(acts, seeds, out, env), env=chosen)
                if proc is not None and proc.returncode != 0:
                    failed.append((False, f"tools/sweep.py failed (exit status {proc.returncode}); its output above "
                                          "names the run"))
        return failed, ran

    def stage_control(self):
        failed, ran = self.training(1)
        return (failed, ran) if failed or self.dry else (self.control_checks(), ran)

    def stage_ab(self):
        failed, ran = self.training(2)
        if failed or self.dry:
            return failed, ran
        for arm in self.s["ACTIVATIONS"][1:-1]:  # reference arms: reported, not deciding
            for ok, text in self.arm_checks(arm, self.s["SEEDS"][:1]):
                print(f"  (reference arm) {'ok' if ok else 'NO'}: {text}")
        return self.arm_checks(self.candidate, self.s["SEEDS"][:1]), ran

    def stage_confirm(self):
        failed, ran = self.training(3)
        plots = [self.s["PYTHON"], "tools/plots.py", str(self.runs_dir), "--out", str(self.out / "plots")]
        if failed or self.dry:
            if self.dry and self.s["PLOTS"] == "1":
                self.run(plots)
            return failed, ran
        checks = self.arm_checks(self.candidate, self.s["SEEDS"])
        runs = [r for act in (self.control, self.candidate) for r in self.logs(act, self.s["SEEDS"])]
        try:
            result = compare.compare(runs, self.control, self.candidate)
        except compare.ToolError as exc:
            return checks + [(False, f"compare.py: {exc}")], ran
        (self.out / f"compare_{self.candidate}_vs_{self.control}.txt").write_text(compare.render(result) + "\n")
        c = result["criterion"]
        print(f"  record criterion against the control (reported, not deciding): {'MET' if c['met'] else 'NOT MET'}: "
              f"{c['reason']}")
        first = self.logs(self.candidate, self.s["SEEDS"][:1])
        for env, out in self.narrow_sweeps():
            for r in self.logs(self.candidate, self.s["SEEDS"][:1], out):
                print(f"  narrow sweep {env}: sliding val_bpb {r.sliding_val_bpb} against {first[0].sliding_val_bpb} "
                      f"at the default (reported, not deciding)")
        if self.s["PLOTS"] == "1":
            self.run(plots)
        return checks, ran

    def stage_record(self):
        s = self.s
        folders = [str(self.runs_dir / f"{self.candidate}_seed{seed}") for seed in s["SEEDS"]]
        sota = s["SOTA_LOGS"]
        command = [s["PYTHON"], "tools/package.py", "--check", "--track", s["TRACK"], "--name", "campaign check",
                   "--author", "campaign", "--github-id", "campaign", "--blurb", "campaign check", *folders]
        proc = self.run(command + (["--against", *sota] if sota else []), capture=True)
        if proc is None:
            return [], 0
        print(proc.stdout + proc.stderr, end="")
        refused = [line.removeprefix("package: refused: ") for line in proc.stderr.splitlines() if "refused:" in line]
        if proc.returncode != 0:
            return [(False, f"package.py --check: {line}") for line in refused or [f"exit status {proc.returncode}"]], 0
        if not sota:
            return [(True, "package.py --check passed; record criterion not checked (SOTA_LOGS unset)")], 0
        c = compare.record_criterion([r for r in runlog.collect_runs(sota) if r.counted],
                                     self.logs(self.candidate, s["SEEDS"]))
        return [(True, "package.py --check passed"),
                (c.met, f"record criterion against SOTA_LOGS: {'MET' if c.met else 'NOT MET'}: {c.reason}")], 0

    # ----- the campaign -----------------------------------------------------------------------------
    def rules(self, number: int) -> str:
        s, cand, ctl = self.s, self.candidate, self.control
        return {
            0: f"GO when the preflight says GO and the data download succeeds; KILL before the A/B is paid for when "
               f"{cand}'s step time under the chosen kernels is > {1 + s['STEP_MARGIN']:.4f} x {ctl}'s (the "
               "preflight's median; FORCE_AB=1 or a larger STEP_MARGIN goes on)",
            1: f"{ctl} seed {s['SEEDS'][0]}: GO when sliding val_bpb is within {s['TOL_SLIDING_BPB']:g} of "
               f"{s['REF_SLIDING_BPB']}, steps within {s['TOL_STEPS']} of {s['REF_STEPS']}, compressed model within "
               f"{s['TOL_MODEL_BYTES']:,} bytes of {s['REF_MODEL_BYTES']:,}",
            2: f"{cand} seed {s['SEEDS'][0]}: KILL when step_avg > {1 + s['STEP_MARGIN']:.4f} x {ctl}'s, total size > "
               f"{s['SIZE_LIMIT']:,} bytes, training > {s['TIME_LIMIT_S']:g} s (+1 s), or not lower than {ctl} by more "
               f"than {s['MIN_GAIN_BPB']:g} on final_int6_roundtrip_exact and sliding val_bpb",
            3: f"seeds {','.join(map(str, s['SEEDS']))}: the rules of stage 2 on every {cand} run and on the means; "
               "compare.py's record criterion against the control is reported",
            4: f"GO when tools/package.py --check --track {s['TRACK']} passes on the {cand} runs and, with SOTA_LOGS, "
               "the record criterion (>= 0.005 nats, one-sided Welch p < 0.01) is met against them",
        }[number]

    def estimate_gpu_hours(self, number: int) -> float:
        """Stage `number`'s own cost: its runs not yet finished and not earlier stages' (SETUP_ESTIMATE_S for 0)."""
        if number == 0:
            done = self.state["stages"].get("0", {}).get("verdict") == "GO"
            done = done or self.s["SKIP_PREFLIGHT"] == "1" == self.s["SKIP_DOWNLOAD"]
            return 0.0 if done else self.s["SETUP_ESTIMATE_S"] * self.s["NPROC"] / 3600
        plan = lambda n: {r.folder: r for acts, seeds, out, _ in self.sweeps(n)  # noqa: E731
                          for r in sweep.plan_runs(acts, seeds, out)}
        earlier = {folder for n in range(1, number) for folder in plan(n)}
        runs = sum(r.finished_log() is None for folder, r in plan(number).items() if folder not in earlier)
        measured = self.state["measured_runs"]
        per_run_s = measured["wall_s"] / measured["count"] if measured["count"] else self.s["RUN_ESTIMATE_S"]
        return runs * per_run_s * self.s["NPROC"] / 3600

    def cost(self, gpu_hours: float) -> float | None:
        """The money of these GPU-hours; None without PRICE_PER_GPU_HOUR."""
        return None if self.s["PRICE_PER_GPU_HOUR"] is None else gpu_hours * self.s["PRICE_PER_GPU_HOUR"]

    def money(self, gpu_hours: float) -> str:
        cost = self.cost(gpu_hours)
        return "" if cost is None else f" ({cost:.2f} at {self.s['PRICE_PER_GPU_HOUR']:g} per GPU-hour)"

    def spent_gpu_hours(self) -> float:
        return sum(st["gpu_hours"] for st in self.state["stages"].values())

    def save(self, verdict: str) -> None:
        self.state.update(verdict=verdict, gpu_hours_total=self.spent_gpu_hours(), nproc=self.s["NPROC"],
                          price_per_gpu_hour=self.s["PRICE_PER_GPU_HOUR"], budget=self.s["BUDGET"],
                          cost_total=self.cost(self.spent_gpu_hours()))
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "campaign.json.tmp"
        tmp.write_text(json.dumps(self.state, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.out / "campaign.json")

    def execute(self) -> int:
        s = self.s
        stages = [(0, "setup", self.stage_setup), (1, "control", self.stage_control), (2, "A/B", self.stage_ab),
                  (3, "confirmation", self.stage_confirm), (4, "record check", self.stage_record)]
        print(f"campaign: {self.out}; control {self.control}, candidate {self.candidate}, seeds "
              f"{','.join(map(str, s['SEEDS']))}, {s['NPROC']} processes per run" + (" (dry run)" if self.dry else ""))
        planned = 0.0  # a dry run: the estimates of the stages printed so far
        for number, name, stage in stages:
            print(f"\n=== stage {number}: {name}\nrules: {self.rules(number)}", flush=True)
            estimate = self.estimate_gpu_hours(number)
            planned += estimate if self.dry else 0.0
            if number in (1, 2, 3):
                print(self.kernel_line())
            if number < 4:
                total = self.spent_gpu_hours() + (planned if self.dry else estimate)
                print(f"estimate: stage {number} {estimate:.3f} GPU-hours{self.money(estimate)} for what it has not "
                      f"yet run; campaign so far {total:.3f} GPU-hours{self.money(total)}")
            if s["BUDGET"] is not None and not self.dry:
                left = s["BUDGET"] - self.cost(self.spent_gpu_hours())
                if self.cost(estimate) > left:
                    print(f"STOP (budget): stage {number} is estimated at {estimate:.3f} GPU-hours"
                          f"{self.money(estimate)}; {left:.2f} of the budget {s['BUDGET']:g} is left")
                    self.save(f"STOPPED before stage {number} (budget)")
                    return 3
            started = time.monotonic()
            checks, ran = stage()
            if self.dry:
                continue
            wall = time.monotonic() - started
            if ran:
                self.state["measured_runs"]["count"] += ran
                self.state["measured_runs"]["wall_s"] += wall
            record = self.state["stages"].setdefault(str(number), {"name": name, "wall_s": 0.0})
            record["wall_s"] += wall
            record["gpu_hours"] = record["wall_s"] * s["NPROC"] / 3600
            verdict = "GO" if checks and all(ok for ok, _ in checks) else "KILL"
            reasons = [text for ok, text in checks if not ok] if verdict == "KILL" else [text for _, text in checks]
            record.update(verdict=verdict, reasons=reasons, estimate_gpu_hours=estimate,
                          cost=self.cost(record["gpu_hours"]))
            print(f"stage {number} ({name}): {verdict}")
            for text in reasons:
                print(f"  - {text}")
            spent = self.spent_gpu_hours()
            print(f"cost: stage {number} {wall:.0f} s this time x {s['NPROC']} GPUs, {record['gpu_hours']:.3f} "
                  f"GPU-hours in all{self.money(record['gpu_hours'])}; campaign {spent:.3f} "
                  f"GPU-hours{self.money(spent)}")
            self.save(f"KILL at stage {number}" if verdict == "KILL" else f"GO through stage {number}")
            if verdict == "KILL":
                print(f"\ncampaign: KILL at stage {number} ({name}); verdict in {self.out / 'campaign.json'}")
                return 1
        print("\ncampaign: " + ("dry run done" if self.dry else f"every stage GO; {self.out / 'campaign.json'}"))
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        print("Settings (environment variables):")
        for name, (default, _, meaning) in SETTINGS.items():
            print(f"  {name:<20} {default or '(unset)':<22} {meaning}")
        return 0
    try:
        if len(argv) > 1 or (argv and argv[0].startswith("-")):
            raise CampaignError(f"takes one argument, the output folder; got {shlex.join(argv)}")
        return Campaign(read_settings(dict(os.environ), argv)).execute()
    except CampaignError as exc:
        print(f"campaign: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("campaign: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
