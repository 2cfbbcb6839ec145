"""The one reader of train_gpt.py run logs, and the helpers every tool in this folder shares.
The rules (header, lines read, finished runs, duplicates, comparable runs): tools/README.md, "What a log says"."""
from __future__ import annotations

import argparse
import ast
import difflib
import functools
import itertools
import json
import math
import os
import re
import shlex
import statistics
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable, NamedTuple

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINER = REPO_ROOT / "train_gpt.py"


@functools.cache
def _trainer_tree() -> ast.Module:
    return ast.parse(TRAINER.read_text(encoding="utf-8"))


def trainer_constant(name: str):
    """A fact train_gpt.py holds, read from its source (importing it pulls torch): the value of a top-level
    ``NAME = literal``, else the default of its setting NAME (``("NAME", default, kind, meaning, ...)`` in SETTINGS)."""
    tree = _trainer_tree()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    for node in ast.walk(tree):
        is_setting = isinstance(node, ast.Tuple) and len(node.elts) >= 4 and isinstance(node.elts[2], ast.Name)
        if is_setting and getattr(node.elts[0], "value", None) == name:
            return ast.literal_eval(node.elts[1])
    raise LookupError(f"{TRAINER} defines no {name}")


def import_trainer():
    """The repository's train_gpt.py as a module (for what only running its code can tell)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import train_gpt

    return train_gpt


ACTIVATION_ALIASES = trainer_constant("ACTIVATION_ALIASES")  # leaky_relu2 -> leaky2
ACTIVATION_KNOBS = ("MLP_ACTIVATION", "MLP_LEAKY_SLOPE", "ASQU_")  # prefixes of the activation's settings
DEFAULT_ACTIVATION = "relu2"  # logs written before the MLP_ACTIVATION switch existed
# Config variables that do not change results (train_gpt.py leaves them out of config_fingerprint).
NON_RESULT_VARIABLES = frozenset(trainer_constant("NOT_FINGERPRINTED"))

_F = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"  # a float, as logged
_I = r"(\d+)"
# kind: (pattern, the RunLog fields its first groups set; "" = handled in _apply). Matched with
# fullmatch on the right-stripped line; formats of SPEC.md section 7 and INTERFACE.md.
_LINES = {
    "val": (rf"step:{_I}/{_I} val_loss:{_F} val_bpb:{_F} train_time:{_I}ms step_avg:{_F}ms", ""),
    "train": (rf"step:{_I}/{_I} train_loss:{_F} train_time:{_I}ms step_avg:{_F}ms", ""),
    "asqu_diag": (rf"asqu_diag layer:{_I} beta_mean:{_F} beta_std:{_F} beta_min:{_F} beta_max:{_F}", ""),
    "config": (r"config:(.*)", ""),
    "activation": (r"mlp_activation:([A-Za-z0-9_.\-]+)((?: [A-Za-z0-9_]+:[^\s{}]+)*)", ""),
    "seed": (rf"seed:{_I}", "seed"),
    "run_id": (r"run_id:(\S+)", "run_id"),
    "fingerprint": (r"config_fingerprint:([0-9a-f]{12})", "config_fingerprint"),
    "world": (rf"world_size:{_I} grad_accum_steps:{_I}", "world_size grad_accum_steps"),
    "params": (rf"model_params:{_I}", "model_params"),
    "device": (r"device:(\S+) dtype:(\S+) attention:(\S+)(?: compile:(\d))?(?: mlp_kernel:(\S+))?(?: \S+:\S+)*",
               "device dtype attention compile mlp_kernel"),
    "dataset": (rf"train_loader:dataset:(\S+) train_shards:{_I}", "dataset train_shards"),
    "val_tokens": (rf"val_loader:shards pattern=.* tokens:{_I}", "val_tokens"),
    "tokenizer": (r"val_bpb:enabled tokenizer_kind=\S+ tokenizer_path=(?:\S*/)?([^\s/]+)(?: \S+)*", "tokenizer"),
    "warmup": (rf"warmup_done time:{_I}ms graphs:{_I}", "warmup_ms warmup_graphs"),
    "recompiles": (rf"recompiles_after_warmup:{_I}", "recompiles_after_warmup"),
    "late_qat": (rf"late_qat:enabled step:{_I} scale:{_F}", "late_qat_step"),
    "peak_memory": (rf"peak memory allocated: {_I} MiB reserved: {_I} MiB", "peak_allocated_mib peak_reserved_mib"),
    "warning": (r"(WARNING:.*)", ""),
    "stop": (rf"stopping_early: wallclock_cap train_time:{_I}ms step:{_I}/{_I}",
             "stop_train_time_ms stop_step iterations"),
    "interrupted": (rf"interrupted: (\S+)(?: step:{_I}/{_I})?", "interrupted interrupted_step iterations"),
    "error": (r"error: (.+)", "error"),  # a ConfigError / RunError that ended the run
    # DIAGNOSTIC post_ema (post_swa / post_raw when FINAL_WEIGHTS chose other weights)
    "post_ema": (rf"DIAGNOSTIC post_([a-z]+) val_loss:{_F} val_bpb:{_F} eval_time:{_I}ms",
                 "final_weights post_ema_val_loss post_ema_val_bpb post_ema_eval_ms"),
    "code_size": (rf"Code size: {_I} bytes", "code_bytes"),
    # EVAL_ONLY=<artifact>: train_gpt.py scores a saved artifact without training
    "eval_only": (rf"eval_only: artifact:(.+) sha256:([0-9a-f]{{64}}) bytes:{_I}",
                  "eval_only_artifact eval_only_sha256 eval_only_bytes"),
    "serialized": (rf"Serialized model int6\+(zstd|zlib|brotli|lzma): {_I} bytes", "compressor serialized_bytes"),
    "total": (rf"Total submission size int6\+(zstd|zlib|brotli|lzma): {_I} bytes", "compressor submission_bytes"),
    # the rounded lines' figures yield to the _exact lines', whichever comes first
    "roundtrip": (rf"final_int6_roundtrip val_loss:{_F} val_bpb:{_F} eval_time:{_I}ms",
                  "roundtrip_val_loss roundtrip_val_bpb roundtrip_eval_ms"),
    "roundtrip_exact": (rf"final_int6_roundtrip_exact val_loss:{_F} val_bpb:{_F}",
                        "roundtrip_val_loss roundtrip_val_bpb"),
    "sliding": (rf"final_int6_sliding_window val_loss:{_F} val_bpb:{_F} stride:{_I} eval_time:{_I}ms",
                "sliding_val_loss sliding_val_bpb sliding_stride sliding_eval_ms"),
    "sliding_exact": (rf"final_int6_sliding_window_exact val_loss:{_F} val_bpb:{_F}",
                      "sliding_val_loss sliding_val_bpb"),
}
_PATTERNS = {kind: (re.compile(pattern), names.split()) for kind, (pattern, names) in _LINES.items()}
_SEPARATOR_LINE = re.compile(r"^={100}[ \t\r]*$", re.M)
_TORCH_VERSION = re.compile(r"^Running PyTorch (\S+)", re.M)
_TORCHRUN_NOISE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ \d+ \S+:\d+\].*|\*+|Setting OMP_NUM_THREADS.*|\s*")


class ToolError(Exception):
    """An input problem the user can fix; every tool prints it as one line and exits with ``code`` (2)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class LogError(ToolError, ValueError):
    """A file that cannot be read as a run log."""


class ValPoint(NamedTuple):
    step: int
    val_loss: float
    val_bpb: float
    train_time_ms: int
    step_avg_ms: float


class TrainPoint(NamedTuple):
    step: int
    train_loss: float
    train_time_ms: int
    step_avg_ms: float


class BetaStat(NamedTuple):
    """One ``asqu_diag`` line; ``step`` is that of the most recent step line before it."""

    step: int | None
    layer: int
    mean: float
    std: float
    min: float
    max: float


@dataclass
class RunLog:
    """Everything the tools need from one run's log. ``None`` = the log does not say."""

    path: Path
    run_id: str | None = None
    config: dict[str, str] | None = None  # the config: line (variables set away from their defaults)
    config_text: str | None = None  # that line after "config:", verbatim (shell-quoted)
    config_fingerprint: str | None = None
    seed: int | None = None
    world_size: int | None = None
    grad_accum_steps: int | None = None
    model_params: int | None = None
    device: str | None = None  # cuda:0 / cpu
    dtype: str | None = None
    attention: str | None = None
    compile: int | None = None  # the device: line's compile flag (1 = torch.compile)
    mlp_kernel: str | None = None  # torch | triton (logs before MLP_KERNEL: None)
    torch_version: str | None = None  # from the header's "Running PyTorch" line
    dataset: str | None = None
    train_shards: int | None = None
    val_tokens: int | None = None
    tokenizer: str | None = None  # the file name of the tokenizer the val_bpb figures were counted with
    mlp_activation: str = DEFAULT_ACTIVATION
    activation_logged: bool = False
    activation_settings: dict[str, str] = field(default_factory=dict)
    iterations: int | None = None
    val_points: list[ValPoint] = field(default_factory=list)
    train_points: list[TrainPoint] = field(default_factory=list)
    asqu_diag: list[BetaStat] = field(default_factory=list)
    warmup_ms: int | None = None
    warmup_graphs: int | None = None
    recompiles_after_warmup: int | None = None
    late_qat_step: int | None = None
    peak_allocated_mib: int | None = None  # CUDA runs only
    peak_reserved_mib: int | None = None
    warnings: list[str] = field(default_factory=list)  # the WARNING: lines, in order
    stop_train_time_ms: int | None = None
    stop_step: int | None = None
    interrupted: str | None = None  # the signal name of an "interrupted:" line
    interrupted_step: int | None = None
    error: str | None = None  # an "error: ..." line (the run stopped on it)
    final_weights: str | None = None  # the X of "DIAGNOSTIC post_X": ema (record), swa or raw
    post_ema_val_loss: float | None = None
    post_ema_val_bpb: float | None = None
    post_ema_eval_ms: int | None = None
    code_bytes: int | None = None
    eval_only_artifact: str | None = None  # an EVAL_ONLY run's eval_only: line (no training)
    eval_only_sha256: str | None = None
    eval_only_bytes: int | None = None
    compressor: str | None = None
    serialized_bytes: int | None = None
    submission_bytes: int | None = None
    roundtrip_val_loss: float | None = None
    roundtrip_val_bpb: float | None = None
    roundtrip_eval_ms: int | None = None
    roundtrip_exact: bool = False
    sliding_val_loss: float | None = None
    sliding_val_bpb: float | None = None
    sliding_eval_ms: int | None = None
    sliding_exact: bool = False
    sliding_stride: int | None = None
    logged: dict[str, str] = field(default_factory=dict)  # final figures as logged (e.g. "1.14656250")
    source_dump: str | None = None
    header_blocks: int = 0  # separator lines seen; 2 per train_gpt.py header
    last_line: str = ""
    duplicates: list[Path] = field(default_factory=list)  # other files holding this same run

    @property
    def name(self) -> str:
        """A short run name: the run_id, else logs/<RUN_ID>.txt -> RUN_ID, else the run folder or file stem."""
        if self.run_id:
            return self.run_id
        seed_log = self.path.name.startswith("train_seed") or self.path.name == "train.log"
        if seed_log and self.path.parent.name != "logs":
            return self.path.parent.name or self.path.stem
        return self.path.stem

    @property
    def stopped_early(self) -> bool:
        return self.stop_step is not None

    @property
    def device_type(self) -> str | None:
        return self.device.split(":")[0] if self.device else None

    @property
    def steps(self) -> int | None:
        steps = [p.step for p in (*self.val_points, *self.train_points)]
        steps += [s for s in (self.stop_step,) if s is not None]
        return max(steps) if steps else None

    def _last_step_line(self) -> ValPoint | TrainPoint | None:
        points = [*self.train_points, *self.val_points]  # the latest step; on a tie, the later time
        return max(points, key=lambda p: (p.step, p.train_time_ms)) if points else None

    @property
    def step_avg_ms(self) -> float | None:
        last = self._last_step_line()
        return last.step_avg_ms if last else None

    @property
    def train_time_ms(self) -> int | None:
        last = self._last_step_line()
        times = [t for t in (last and last.train_time_ms, self.stop_train_time_ms) if t is not None]
        return max(times) if times else None

    @property
    def quant_gap_bpb(self) -> float | None:
        """Int6 roundtrip BPB minus post-EMA BPB (the cost of quantization)."""
        if self.roundtrip_val_bpb is None or self.post_ema_val_bpb is None:
            return None
        return self.roundtrip_val_bpb - self.post_ema_val_bpb

    @property
    def sliding_promised(self) -> bool:
        """Whether the run's settings promise the sliding-window eval: EVAL_STRIDE (default 64) > 0.
        A log without a config line is taken to have run with the defaults."""
        value = (self.config or {}).get("EVAL_STRIDE", "64")
        try:
            return int(value) > 0
        except ValueError:
            return True

    @property
    def missing_final(self) -> list[str]:
        """The final lines this run's settings promise that its log lacks (empty = finished)."""
        present = {"Total submission size": self.submission_bytes is not None,
                   "final_int6_roundtrip_exact": self.roundtrip_exact,
                   "final_int6_sliding_window_exact": self.sliding_exact or not self.sliding_promised}
        return [line for line, shown in present.items() if not shown]

    @property
    def finished(self) -> bool:
        return not self.missing_final

    @property
    def status(self) -> str:
        if self.finished:
            return "finished"
        if self.interrupted:
            at = "" if self.interrupted_step is None else f" at step {self.interrupted_step}"
            return f"interrupted ({self.interrupted}{at})"
        return "failed" if self.error else "truncated"

    @property
    def non_finite(self) -> list[str]:
        """The final figures logged as nan / inf (a diverged run); the tools leave such a run out of every mean."""
        return [name for name in FINAL_FIGURES if not math.isfinite(getattr(self, name) or 0.0)]

    @property
    def final_eval_ms(self) -> int | None:
        parts = [self.post_ema_eval_ms, self.roundtrip_eval_ms]
        if self.sliding_promised:
            parts.append(self.sliding_eval_ms)
        return None if None in parts else sum(parts)

    def final_betas(self) -> list[BetaStat]:
        """The asqu_diag lines of the last step that has them, one per layer, by layer."""
        if not self.asqu_diag:
            return []
        last_step = self.asqu_diag[-1].step
        by_layer = {s.layer: s for s in self.asqu_diag if s.step == last_step}
        return [by_layer[k] for k in sorted(by_layer)]

    def to_json(self) -> dict:
        """The summary record of this run (the keys of ``summarize.py --json``)."""
        hidden = {"path", "val_points", "train_points", "asqu_diag", "logged", "source_dump", "header_blocks",
                  "last_line", "config_text", "activation_logged", "duplicates"}
        record = {"log": str(self.path), "name": self.name, "mlp_activation_logged": self.activation_logged}
        record.update((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in hidden)
        for key in ("steps", "train_time_ms", "step_avg_ms", "stopped_early", "quant_gap_bpb", "final_eval_ms",
                    "finished", "status", "non_finite"):
            record[key] = getattr(self, key)
        record["missing_final_lines"] = self.missing_final
        record["duplicates"] = [str(p) for p in self.duplicates]
        record["final_betas"] = [{k: v for k, v in b._asdict().items() if k != "step"} for b in self.final_betas()]
        return record


FINAL_FIGURES = [f"{kind}_val_{unit}" for kind in ("post_ema", "roundtrip", "sliding") for unit in ("loss", "bpb")]
_FIELD_TYPES = {f.name: str(f.type) for f in fields(RunLog)}


def split_header(text: str) -> tuple[str | None, str, str, int]:
    """(source dump or None, version block, body, number of separator lines): the body follows the last line of
    100 '=', the versions lie between the last two, the dump (less torchrun noise) comes before them."""
    seps = list(_SEPARATOR_LINE.finditer(text))
    if not seps:
        return None, "", text, 0
    opening = seps[-2] if len(seps) >= 2 else seps[0]
    dump = text[: opening.start()]
    dump = dump[:-1] if dump.endswith("\n") else dump
    lines = dump.split("\n")
    skip = 0
    while skip < len(lines) - 1 and lines[skip] and _TORCHRUN_NOISE.fullmatch(lines[skip]):
        skip += 1
    versions = text[opening.end(): seps[-1].start()] if len(seps) >= 2 else ""
    return "\n".join(lines[skip:]), versions, text[seps[-1].end():], len(seps)


def parse_text(text: str, path: str | Path = "<text>") -> RunLog:
    """Parse a whole log's text (the rules: tools/README.md)."""
    dump, versions, body, separators = split_header(text)
    run = RunLog(path=Path(path), source_dump=dump, header_blocks=separators)
    version = _TORCH_VERSION.search(versions)
    run.torch_version = version.group(1) if version else None
    last_step = None
    for raw in body.splitlines():
        line = raw.rstrip()
        if not line:
            continue
        run.last_line = line
        if not line[0].isalpha():
            continue
        for kind, (pattern, names) in _PATTERNS.items():
            match = pattern.fullmatch(line)
            if match:
                last_step = _apply(run, kind, match.groups(), names, last_step)
                break
    return run


def _apply(run: RunLog, kind: str, g: tuple[str, ...], names: list[str], last_step: int | None) -> int | None:
    """Record one matched line in ``run``; return the step the next asqu_diag belongs to."""
    if kind in ("val", "train"):
        if kind == "val":
            run.val_points.append(ValPoint(int(g[0]), float(g[2]), float(g[3]), int(g[4]), float(g[5])))
        else:
            run.train_points.append(TrainPoint(int(g[0]), float(g[2]), int(g[3]), float(g[4])))
        run.iterations = int(g[1])
        return int(g[0])
    if kind == "asqu_diag":
        run.asqu_diag.append(BetaStat(last_step, int(g[0]), *map(float, g[1:])))
    elif kind == "config":
        try:
            tokens = shlex.split(g[0])
        except ValueError:  # unbalanced quotes: not a line train_gpt.py wrote
            return last_step
        run.config_text = g[0].strip()
        run.config = dict(token.split("=", 1) for token in tokens if "=" in token)
    elif kind == "warning":
        run.warnings.append(g[0])
    elif kind == "activation":
        run.mlp_activation = ACTIVATION_ALIASES.get(g[0], g[0])
        run.activation_logged = True
        run.activation_settings = dict(item.split(":", 1) for item in g[1].split())
    exact = getattr(run, f"{kind}_exact", False)  # a rounded final line after the _exact one
    for name, text in zip(names, g):
        if text is None or (exact and name.endswith(("_loss", "_bpb"))):
            continue
        kind_of = _FIELD_TYPES[name].split(" ")[0]
        setattr(run, name, {"int": int, "float": float}.get(kind_of, str)(text))
        if kind_of == "float":
            run.logged[name] = text
    if kind.endswith("_exact"):
        setattr(run, kind, True)
    return run.stop_step if kind == "stop" else last_step


def _read(path: Path, strict: bool = False) -> str:
    """The file's text; bad bytes are replaced, or with ``strict`` refused (train_gpt.py writes UTF-8)."""
    try:
        data = path.read_bytes()
        return data.decode("utf-8", errors="strict" if strict else "replace")
    except OSError as exc:
        raise LogError(f"cannot read log {path}: {exc.strerror or exc}; fix its permissions or leave it out") from exc
    except UnicodeDecodeError as exc:
        raise LogError(f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}), so not a log "
                       "train_gpt.py wrote or a damaged one; use an undamaged copy or leave it out") from exc


def parse_log(path: str | Path) -> RunLog:
    """Parse one log file (its text exactly as written; bad bytes replaced)."""
    return parse_text(_read(Path(path)), path)


def looks_like_run(run: RunLog) -> bool:
    """A run log has at least a model_params line or a step line."""
    return run.model_params is not None or bool(run.val_points or run.train_points)


SKIPPED_FOLDERS = ("fixtures", "__pycache__", "node_modules")


def _candidates(directory: Path) -> list[Path]:
    """Log files under a folder: ``*.log`` anywhere and ``logs/*.txt``. Below the folder given, hidden
    folders, ``crashed-*`` (attempts the sweep set aside) and test fixtures are not searched."""
    found = []
    for path in sorted(directory.rglob("*")):
        folders = path.relative_to(directory).parts[:-1]
        if any(p.startswith((".", "crashed-")) or p in SKIPPED_FOLDERS for p in folders):
            continue
        if path.is_file() and (path.suffix == ".log" or (path.suffix == ".txt" and path.parent.name == "logs")):
            found.append(path)
    return found


def dedupe(found: list[tuple[RunLog, str]]) -> list[RunLog]:
    """One entry per run, in the order found. Files with identical text, and files of the same run_id
    where one is a prefix of the other (a copy taken mid-run), are one run: the longest is kept (then
    train_seed<SEED>.log over logs/<RUN_ID>.txt over train.log, and a copy outside records/), the
    others are listed in its ``duplicates``."""
    def preference(item: tuple[RunLog, str]) -> tuple:
        run, text = item
        name = run.path.name
        rank = 0 if name.startswith("train_seed") else 1 if run.path.parent.name == "logs" else 2
        return -len(text), "records" in run.path.parts, rank + (name == "train.log"), str(run.path)

    kept: list[tuple[RunLog, str]] = []
    for run, text in sorted(found, key=preference):
        for other, other_text in kept:
            if other_text == text or (run.run_id and other.run_id == run.run_id and other_text.startswith(text)):
                other.duplicates.append(run.path)
                break
        else:
            kept.append((run, text))
    order = {id(run): i for i, (run, _) in enumerate(found)}
    return sorted((run for run, _ in kept), key=lambda r: order[id(r)])


def collect_runs(paths: Iterable[str | Path]) -> list[RunLog]:
    """The runs of files (each must be a run log) and folders (_candidates that look like runs), each once (dedupe)."""
    found: list[tuple[RunLog, str]] = []
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise LogError(f"no such log file or folder: {path}")
        for file in _candidates(path) if path.is_dir() else [path]:
            text = _read(file)
            run = parse_text(text, file)
            if looks_like_run(run) and "\ufffd" in text:
                _read(file, strict=True)  # damaged bytes in a run log: refused, naming the first
            if path.is_dir() and not looks_like_run(run):
                continue
            if not (looks_like_run(run) or run.run_id or run.error):
                raise LogError(f"{file} is not a run log (no model_params, step, run_id or error line); "
                               "name a log train_gpt.py wrote")
            found.append((run, text.replace("\r\n", "\n")))
    return dedupe(found)


def load_runs(paths: list[str | Path]) -> list[RunLog]:
    """collect_runs, refusing a command line that names no run log, or the same run in two different logs."""
    runs = collect_runs(paths)
    if not runs:
        raise ToolError("no run logs found in " + ", ".join(map(str, paths)))
    seen: dict[tuple, RunLog] = {}
    for run in runs:  # not copies of one another, yet the same run_id, seed and settings: never count both
        other = seen.setdefault((run.run_id, run.seed, group_key(run)), run) if run.run_id else run
        if other is not run:
            raise LogError(f"{other.path} and {run.path} hold the same run (run_id {run.run_id}, seed {run.seed}, same "
                           "settings) but differ: counting both would count it twice; name or keep only one of them")
    return runs


# ----- what a run was: grouping and differences -------------------------------------------------

def setup_facts(run: RunLog) -> dict[str, object]:
    """Facts of the setup that change results, read from the log's own lines (None = not shown)."""
    return {"dataset": run.dataset, "val_tokens": run.val_tokens, "tokenizer": run.tokenizer,
            "world_size": run.world_size, "device": run.device_type, "dtype": run.dtype,
            "iterations": run.iterations, "model_params": run.model_params}


def group_key(run: RunLog) -> tuple:
    """Runs with equal keys may be pooled: same activation (and knobs), fingerprint and visible setup."""
    return (run.mlp_activation, tuple(sorted(run.activation_settings.items())), run.config_fingerprint,
            *setup_facts(run).values())


def groups(runs: list[RunLog]) -> list[list[RunLog]]:
    """Runs that may be pooled (group_key): by activation_order then fingerprint, each group by seed."""
    by_key: dict[tuple, list[RunLog]] = {}
    for run in runs:
        by_key.setdefault(group_key(run), []).append(run)
    order = activation_order(runs)
    ordered = sorted(by_key.values(), key=lambda g: (order.index(g[0].mlp_activation), g[0].config_fingerprint or ""))
    return [sorted(g, key=by_seed) for g in ordered]


def group_label(run: RunLog) -> str:
    facts = " ".join(f"{k}={v}" for k, v in setup_facts(run).items() if v is not None)
    fingerprint = run.config_fingerprint or "not logged"
    return f"{run.mlp_activation} (config_fingerprint {fingerprint}; {facts or 'no setup lines'})"


def differences(a: RunLog, b: RunLog) -> list[str]:
    """How two runs visibly differ, besides seed and logging. Runs of different activations are not
    compared on the activation and its knobs (MLP_ACTIVATION, MLP_LEAKY_SLOPE, ASQU_*)."""
    same_act = a.mlp_activation == b.mlp_activation
    out = []
    if a.config is not None and b.config is not None:
        names = list(dict.fromkeys([*a.config, *b.config]))
        for name in names:
            if name in NON_RESULT_VARIABLES or (not same_act and name.startswith(ACTIVATION_KNOBS)):
                continue
            va, vb = a.config.get(name, "(default)"), b.config.get(name, "(default)")
            if va != vb:
                out.append(f"{name}={va} vs {name}={vb}")
        if same_act and not out and a.config_fingerprint != b.config_fingerprint:
            out.append(f"config_fingerprint {a.config_fingerprint} vs {b.config_fingerprint}")
    elif same_act and (a.config is None) != (b.config is None):
        out.append("config line logged in one log but not in the other")
    if same_act and a.activation_settings != b.activation_settings and not out:
        out.append(f"activation settings {a.activation_settings} vs {b.activation_settings}")
    fa, fb = setup_facts(a), setup_facts(b)
    for key in fa:
        both_configs = a.config is not None and b.config is not None
        asqu_arm = not same_act and "asqu" in (a.mlp_activation, b.mlp_activation)
        if key == "model_params" and (both_configs or asqu_arm):
            continue  # follows from the config; asqu adds its betas
        if fa[key] is not None and fb[key] is not None and fa[key] != fb[key]:
            out.append(f"{key}={fa[key]} vs {key}={fb[key]}")
    return out


# ----- small shared helpers ----------------------------------------------------------------------

def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are present and finite."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def figures(runs: Iterable[RunLog], attr: str) -> list[float]:
    """The runs' present, finite values of one RunLog attribute."""
    return finite(getattr(run, attr) for run in runs)


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """(mean, sample std with ddof=1) of the finite values; None where there are too few."""
    vals = finite(values)
    if not vals:
        return None, None
    return sum(vals) / len(vals), (statistics.stdev(vals) if len(vals) >= 2 else None)


def by_seed(run: RunLog) -> tuple:
    """Sort key: by seed, runs without one last."""
    return run.seed is None, run.seed or 0, str(run.path)


def text_table(header: list[str], rows: list[list[str] | str]) -> list[str]:
    """Rows of cells in left-aligned columns; a row given as a str is a heading, printed as is."""
    cells = [header, *(r for r in rows if not isinstance(r, str))]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [r if isinstance(r, str) else "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
            for r in (header, *rows)]


def format_cell(value, fmt: str = "{}", missing: str = "-") -> str:
    """A table cell: ``value`` formatted with ``fmt``, or ``missing`` where it is None."""
    return missing if value is None else fmt.format(value)


def markdown_table(header: list[str], align: str, rows: Iterable[list[str]]) -> list[str]:
    """A Markdown table's lines; ``align`` has a letter per column: r (right-aligned) or l (left)."""
    lines = ["| " + " | ".join(cells) + " |" for cells in (header, *rows)]
    return [lines[0], "|" + "|".join("---:" if letter == "r" else "---" for letter in align) + "|", *lines[1:]]


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line: the problem, then a close flag or where to look; exit status 2."""

    def error(self, message: str):
        flags = [flag for action in self._actions for flag in action.option_strings]
        typed = re.findall(r"(?<!\S)--?[\w-]+", message) if message.startswith("unrecognized") else []
        hints = [f"did you mean {close[0]}?" for word in typed if (close := difflib.get_close_matches(word, flags, 1))]
        self.exit(2, f"{self.prog}: error: {message}; {' '.join(hints) or f'see {self.prog} --help'}\n")


def one_line_errors(tool: str, work) -> int:
    """work()'s exit status; a ToolError is printed as ``TOOL: error: ...`` and ends with its code."""
    try:
        return work()
    except ToolError as exc:
        print(f"{tool}: error: {exc}", file=sys.stderr)
        return exc.code


def run_main(main) -> None:
    """sys.exit(main()), ending quietly when the reader of the output has gone (``| head``)."""
    try:
        sys.exit(main())
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def keep_existing(path: Path, into: Path | None = None) -> Path | None:
    """Move an earlier file or folder aside instead of overwriting it: to the first free of NAME, NAME.1, NAME.2,
    ... in ``into`` (default: its own folder); return where it went (None: nothing there). train_gpt.py's
    keep_existing does the same (a test holds them equal); importing it would pull torch."""
    if not path.exists():
        return None
    folder = into or path.parent
    names = itertools.chain([path.name], (f"{path.name}.{k}" for k in itertools.count(1)))
    kept = next(folder / name for name in names if not (folder / name).exists())
    folder.mkdir(parents=True, exist_ok=True)
    return path.rename(kept)


def activation_order(runs: Iterable[RunLog]) -> list[str]:
    """Activations in a stable order: relu2, leaky2, asqu first, then others by name."""
    known = ["relu2", "leaky2", "asqu"]
    names = {r.mlp_activation for r in runs}
    return [a for a in known if a in names] + sorted(names - set(known))


def strict_json(value, indent: int | None = 2) -> str:
    """JSON that strict parsers accept: non-finite floats (json's NaN / Infinity) become null."""
    plain = json.loads(json.dumps(value), parse_constant=lambda _: None)
    return json.dumps(plain, indent=indent, allow_nan=False)
