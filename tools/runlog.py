"""Parse train_gpt.py run logs (the March 22 record's format) into structured runs.

Shared by every tool in this folder (summarize, compare, plots, sweep, package).

A log file as train_gpt.py writes it (``logs/<RUN_ID>.txt``, ``train_seed<SEED>.log``)
may begin with torchrun noise and the whole source of train_gpt.py, then a line of
100 '=' characters, the Python / PyTorch / GPU versions and another such line; the run's
own lines follow. The source dump is full of f-strings that look like log lines
(``log0(f"step:{step}/{args.iterations} val_loss:{val_loss:.4f} ...")``), and a docstring
could even quote a real-looking line. So:

* everything up to the *last* line of exactly 100 '=' is treated as the header (source
  dump plus version info) and never parsed for results; a log without such a line is
  parsed whole (a console tee, or a log from a script that does not dump its source);
* every result line must fully match an anchored pattern with real numbers
  (``nan`` / ``inf`` are accepted so that a diverged run still parses).

The line formats (byte-compatible with the record) are listed next to ``_PATTERNS``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

SEPARATOR = "=" * 100
ACTIVATION_ALIASES = {"leaky_relu2": "leaky2"}
DEFAULT_ACTIVATION = "relu2"  # logs written before the MLP_ACTIVATION switch existed

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf"
_F = rf"({_NUM})"  # a float group
_I = r"(\d+)"  # an int group
_WORD = r"([A-Za-z0-9_.\-]+)"
_SETTING = r"[A-Za-z0-9_]+:[^\s{}]+"

# One anchored regex per recognised line (matched with fullmatch on the right-stripped line).
_PATTERNS = {
    # step:0/20000 val_loss:6.9279 val_bpb:4.1031 train_time:0ms step_avg:0.01ms
    "val": re.compile(rf"step:{_I}/{_I} val_loss:{_F} val_bpb:{_F} train_time:{_I}ms step_avg:{_F}ms"),
    # step:500/20000 train_loss:2.3955 train_time:42105ms step_avg:84.21ms
    "train": re.compile(rf"step:{_I}/{_I} train_loss:{_F} train_time:{_I}ms step_avg:{_F}ms"),
    "seed": re.compile(rf"seed:{_I}"),
    "world": re.compile(rf"world_size:{_I} grad_accum_steps:{_I}"),
    "params": re.compile(rf"model_params:{_I}"),
    # mlp_activation:asqu asqu_beta_init:0.25 asqu_lr:0.001 ...   /   mlp_activation:relu2
    "activation": re.compile(rf"mlp_activation:{_WORD}((?: {_SETTING})*)"),
    # asqu_diag layer:0 beta_mean:0.2500 beta_std:0.0000 beta_min:0.2500 beta_max:0.2500
    "asqu_diag": re.compile(
        rf"asqu_diag layer:{_I} beta_mean:{_F} beta_std:{_F} beta_min:{_F} beta_max:{_F}"
    ),
    "swa": re.compile(rf"swa:start step:{_I}"),
    "late_qat": re.compile(rf"late_qat:enabled step:{_I} scale:{_F}"),
    # stopping_early: wallclock_cap train_time:600036ms step:7096/20000
    "stop": re.compile(rf"stopping_early: wallclock_cap train_time:{_I}ms step:{_I}/{_I}"),
    # DIAGNOSTIC post_ema val_loss:1.9222 val_bpb:1.1385 eval_time:1960ms  (post_swa / post_raw
    # when FINAL_WEIGHTS chose other final weights; kept in the post_ema_* fields)
    "post_ema": re.compile(rf"DIAGNOSTIC post_([a-z]+) val_loss:{_F} val_bpb:{_F} eval_time:{_I}ms"),
    "code_size": re.compile(rf"Code size: {_I} bytes"),
    # Serialized model int6+zstd: 15487414 bytes
    "serialized": re.compile(rf"Serialized model int6\+(zstd|zlib): {_I} bytes"),
    # Total submission size int6+zstd: 15555017 bytes
    "total": re.compile(rf"Total submission size int6\+(zstd|zlib): {_I} bytes"),
    "roundtrip": re.compile(rf"final_int6_roundtrip val_loss:{_F} val_bpb:{_F} eval_time:{_I}ms"),
    # final_int6_roundtrip_exact val_loss:1.93592275 val_bpb:1.14656250
    "roundtrip_exact": re.compile(rf"final_int6_roundtrip_exact val_loss:{_F} val_bpb:{_F}"),
    "sliding": re.compile(
        rf"final_int6_sliding_window val_loss:{_F} val_bpb:{_F} stride:{_I} eval_time:{_I}ms"
    ),
    # final_int6_sliding_window_exact val_loss:1.89576235 val_bpb:1.12278022
    "sliding_exact": re.compile(rf"final_int6_sliding_window_exact val_loss:{_F} val_bpb:{_F}"),
}

# Lines torchrun (and the launcher) may print before anything else.
_TORCHRUN_NOISE = re.compile(
    r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ \d+ \S+:\d+\].*|\*+|Setting OMP_NUM_THREADS.*|\s*"
)
_SEPARATOR_LINE = re.compile(r"^={100}[ \t\r]*$", re.M)


class LogError(ValueError):
    """A file that cannot be read as a run log."""


@dataclass
class ValPoint:
    step: int
    val_loss: float
    val_bpb: float
    train_time_ms: int
    step_avg_ms: float


@dataclass
class TrainPoint:
    step: int
    train_loss: float
    train_time_ms: int
    step_avg_ms: float


@dataclass
class BetaStat:
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
    seed: int | None = None
    world_size: int | None = None
    grad_accum_steps: int | None = None
    model_params: int | None = None
    mlp_activation: str = DEFAULT_ACTIVATION
    activation_logged: bool = False
    activation_settings: dict[str, str] = field(default_factory=dict)
    iterations: int | None = None
    val_points: list[ValPoint] = field(default_factory=list)
    train_points: list[TrainPoint] = field(default_factory=list)
    asqu_diag: list[BetaStat] = field(default_factory=list)
    swa_start_step: int | None = None
    late_qat_step: int | None = None
    stopped_early: bool = False
    stop_train_time_ms: int | None = None
    stop_step: int | None = None
    final_weights: str | None = None  # the X of "DIAGNOSTIC post_X": ema (record), swa or raw
    post_ema_val_loss: float | None = None
    post_ema_val_bpb: float | None = None
    code_bytes: int | None = None
    compressor: str | None = None
    serialized_bytes: int | None = None
    submission_bytes: int | None = None
    roundtrip_val_loss: float | None = None
    roundtrip_val_bpb: float | None = None
    roundtrip_exact: bool = False
    sliding_val_loss: float | None = None
    sliding_val_bpb: float | None = None
    sliding_exact: bool = False
    sliding_stride: int | None = None
    source_dump: str | None = None
    header_blocks: int = 0  # separator lines seen; 2 per train_gpt.py header
    last_line: str = ""

    # ----- derived figures -------------------------------------------------------
    @property
    def name(self) -> str:
        """A short run name: logs/<RUN_ID>.txt -> RUN_ID; else the run folder or file stem."""
        if self.path.parent.name == "logs":
            return self.path.stem
        if self.path.name.startswith("train_seed") or self.path.name == "train.log":
            parent = self.path.parent.name
            return parent if parent else self.path.stem
        return self.path.stem

    @property
    def steps(self) -> int | None:
        """The last training step reached (step lines and the stopping_early line)."""
        candidates = [p.step for p in self.val_points] + [p.step for p in self.train_points]
        if self.stop_step is not None:
            candidates.append(self.stop_step)
        return max(candidates) if candidates else None

    def _last_step_line(self) -> ValPoint | TrainPoint | None:
        points: list = [*self.train_points, *self.val_points]
        if not points:
            return None
        # the latest step; on a tie, the line written last (train_time grows)
        return max(points, key=lambda p: (p.step, p.train_time_ms))

    @property
    def step_avg_ms(self) -> float | None:
        last = self._last_step_line()
        return last.step_avg_ms if last else None

    @property
    def train_time_ms(self) -> int | None:
        """Training time at the end: the stopping_early figure, else the last step line's."""
        times = []
        last = self._last_step_line()
        if last is not None:
            times.append(last.train_time_ms)
        if self.stop_train_time_ms is not None:
            times.append(self.stop_train_time_ms)
        return max(times) if times else None

    @property
    def quant_gap_bpb(self) -> float | None:
        """Int6 roundtrip BPB minus post-EMA BPB (the cost of quantization)."""
        if self.roundtrip_val_bpb is None or self.post_ema_val_bpb is None:
            return None
        return self.roundtrip_val_bpb - self.post_ema_val_bpb

    @property
    def has_final(self) -> bool:
        """True when the run reached a final exact line (what the sweep calls done)."""
        return self.roundtrip_exact or self.sliding_exact

    @property
    def missing_final(self) -> list[str]:
        """Final lines a submission needs that this log lacks (empty = complete)."""
        missing = []
        if self.submission_bytes is None:
            missing.append("Total submission size")
        if not self.roundtrip_exact:
            missing.append("final_int6_roundtrip_exact")
        if not self.sliding_exact:
            missing.append("final_int6_sliding_window_exact")
        return missing

    @property
    def complete(self) -> bool:
        return not self.missing_final

    def final_betas(self) -> list[BetaStat]:
        """The asqu_diag lines of the last step that has them, one per layer, by layer."""
        if not self.asqu_diag:
            return []
        last_step = self.asqu_diag[-1].step
        by_layer: dict[int, BetaStat] = {}
        for stat in self.asqu_diag:
            if stat.step == last_step:
                by_layer[stat.layer] = stat
        return [by_layer[k] for k in sorted(by_layer)]

    def to_json(self) -> dict:
        """The summary record of this run (the keys of ``summarize.py --json``)."""
        return {
            "log": str(self.path),
            "name": self.name,
            "seed": self.seed,
            "mlp_activation": self.mlp_activation,
            "mlp_activation_logged": self.activation_logged,
            "activation_settings": dict(self.activation_settings),
            "world_size": self.world_size,
            "model_params": self.model_params,
            "iterations": self.iterations,
            "steps": self.steps,
            "train_time_ms": self.train_time_ms,
            "step_avg_ms": self.step_avg_ms,
            "stopped_early": self.stopped_early,
            "final_weights": self.final_weights,
            "post_ema_val_loss": self.post_ema_val_loss,
            "post_ema_val_bpb": self.post_ema_val_bpb,
            "roundtrip_val_loss": self.roundtrip_val_loss,
            "roundtrip_val_bpb": self.roundtrip_val_bpb,
            "sliding_val_loss": self.sliding_val_loss,
            "sliding_val_bpb": self.sliding_val_bpb,
            "quant_gap_bpb": self.quant_gap_bpb,
            "serialized_bytes": self.serialized_bytes,
            "submission_bytes": self.submission_bytes,
            "code_bytes": self.code_bytes,
            "finished": self.has_final,
            "missing_final_lines": self.missing_final,
        }


def _num(text: str) -> float:
    return float(text)


def split_header(text: str) -> tuple[str | None, str, int]:
    """Split a log into (source dump or None, body to parse, number of separator lines).

    The body starts after the last line of exactly 100 '='. The source dump is the text
    before the separator that opens the version block (the second-to-last separator, or
    the only one), less the newline ``print`` added and any leading torchrun noise;
    ``None`` when the log has no separator line. (A file holding several appended runs
    has more than two separators; its "dump" then spans the earlier runs.)
    """
    separators = list(_SEPARATOR_LINE.finditer(text))
    if not separators:
        return None, text, 0
    dump_end = separators[-2] if len(separators) >= 2 else separators[0]
    last = separators[-1]
    dump = text[: dump_end.start()]
    if dump.endswith("\n"):
        dump = dump[:-1]  # the newline print() appended to the source text
    dump = _strip_leading_noise(dump)
    body = text[last.end():]
    return dump, body, len(separators)


def _strip_leading_noise(dump: str) -> str:
    """Drop torchrun's warning banner if it precedes the source dump."""
    lines = dump.split("\n")
    index = 0
    while index < len(lines) - 1 and lines[index] and _TORCHRUN_NOISE.fullmatch(lines[index]):
        index += 1
    return "\n".join(lines[index:])


def parse_text(text: str, path: str | Path = "<text>") -> RunLog:
    """Parse a whole log's text (see the module docstring for the rules)."""
    dump, body, separators = split_header(text)
    run = RunLog(path=Path(path), source_dump=dump, header_blocks=separators)
    last_step: int | None = None
    for raw in body.splitlines():
        line = raw.rstrip()
        if not line:
            continue
        run.last_line = line
        if not line[0].isalpha():
            continue
        for kind, pattern in _PATTERNS.items():
            match = pattern.fullmatch(line)
            if match:
                last_step = _apply(run, kind, match.groups(), last_step)
                break
    return run


def _apply(run: RunLog, kind: str, g: tuple[str, ...], last_step: int | None) -> int | None:
    """Record one matched line in ``run``; return the step the next asqu_diag belongs to."""
    if kind == "val":
        point = ValPoint(int(g[0]), _num(g[2]), _num(g[3]), int(g[4]), _num(g[5]))
        run.iterations = int(g[1])
        run.val_points.append(point)
        return point.step
    if kind == "train":
        point = TrainPoint(int(g[0]), _num(g[2]), int(g[3]), _num(g[4]))
        run.iterations = int(g[1])
        run.train_points.append(point)
        return point.step
    if kind == "seed":
        run.seed = int(g[0])
    elif kind == "world":
        run.world_size, run.grad_accum_steps = int(g[0]), int(g[1])
    elif kind == "params":
        run.model_params = int(g[0])
    elif kind == "activation":
        run.mlp_activation = ACTIVATION_ALIASES.get(g[0], g[0])
        run.activation_logged = True
        run.activation_settings = dict(item.split(":", 1) for item in g[1].split())
    elif kind == "asqu_diag":
        run.asqu_diag.append(
            BetaStat(last_step, int(g[0]), _num(g[1]), _num(g[2]), _num(g[3]), _num(g[4]))
        )
    elif kind == "swa":
        run.swa_start_step = int(g[0])
    elif kind == "late_qat":
        run.late_qat_step = int(g[0])
    elif kind == "stop":
        run.stopped_early = True
        run.stop_train_time_ms, run.stop_step, run.iterations = int(g[0]), int(g[1]), int(g[2])
        return run.stop_step
    elif kind == "post_ema":
        run.final_weights = g[0]
        run.post_ema_val_loss, run.post_ema_val_bpb = _num(g[1]), _num(g[2])
    elif kind == "code_size":
        run.code_bytes = int(g[0])
    elif kind == "serialized":
        run.compressor, run.serialized_bytes = g[0], int(g[1])
    elif kind == "total":
        run.compressor, run.submission_bytes = g[0], int(g[1])
    elif kind == "roundtrip":
        if not run.roundtrip_exact:  # the _exact line wins whichever comes first
            run.roundtrip_val_loss, run.roundtrip_val_bpb = _num(g[0]), _num(g[1])
    elif kind == "roundtrip_exact":
        run.roundtrip_val_loss, run.roundtrip_val_bpb = _num(g[0]), _num(g[1])
        run.roundtrip_exact = True
    elif kind == "sliding":
        run.sliding_stride = int(g[2])
        if not run.sliding_exact:
            run.sliding_val_loss, run.sliding_val_bpb = _num(g[0]), _num(g[1])
    elif kind == "sliding_exact":
        run.sliding_val_loss, run.sliding_val_bpb = _num(g[0]), _num(g[1])
        run.sliding_exact = True
    return last_step


def read_text(path: str | Path) -> str:
    """A log's text exactly as written (no newline translation; bad bytes replaced)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LogError(f"cannot read log {path}: {exc.strerror or exc}") from exc
    return data.decode("utf-8", errors="replace")


def parse_log(path: str | Path) -> RunLog:
    """Parse one log file."""
    return parse_text(read_text(path), path)


def looks_like_run(run: RunLog) -> bool:
    """True when a parsed file holds at least one line of a training run."""
    return bool(
        run.val_points
        or run.train_points
        or run.seed is not None
        or run.model_params is not None
        or run.activation_logged
        or run.submission_bytes is not None
        or run.has_final
    )


def _candidates(directory: Path) -> list[Path]:
    """Log files under a directory: ``*.log`` anywhere and ``logs/*.txt``.

    Folders named ``crashed-*`` (earlier attempts the sweep set aside) are skipped.
    """
    found = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        rel_parts = path.relative_to(directory).parts[:-1]
        if any(part.startswith("crashed-") for part in rel_parts):
            continue
        if path.suffix == ".log" or (path.suffix == ".txt" and path.parent.name == "logs"):
            found.append(path)
    return found


def _run_dir(path: Path) -> Path:
    return path.parent.parent if path.parent.name == "logs" else path.parent


def _preference(path: Path) -> int:
    """Lower is better when one run was written to several files."""
    if path.name.startswith("train_seed"):
        return 0
    if path.parent.name == "logs":
        return 1
    if path.name == "train.log":
        return 3
    return 2


def _fingerprint(run: RunLog) -> tuple:
    return (
        run.seed,
        run.mlp_activation,
        tuple((p.step, p.val_loss, p.train_time_ms) for p in run.val_points),
        tuple((p.step, p.train_loss, p.train_time_ms) for p in run.train_points),
        run.post_ema_val_loss,
        run.roundtrip_val_loss,
        run.sliding_val_loss,
        run.submission_bytes,
    )


def collect_runs(paths: Iterable[str | Path]) -> list[RunLog]:
    """Parse files and folders given on a command line.

    A file is always parsed (it must exist). A folder is searched (see ``_candidates``);
    files there without any run line are ignored, and when one run folder holds the same
    run twice (``logs/<RUN_ID>.txt``, ``train_seed<SEED>.log``, ``train.log``) it is kept
    once, preferring ``train_seed<SEED>.log``.
    """
    runs: list[RunLog] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = [parse_log(p) for p in _candidates(path)]
            found = [r for r in found if looks_like_run(r)]
            found.sort(key=lambda r: (str(_run_dir(r.path)), _preference(r.path), str(r.path)))
            seen: set[tuple] = set()
            for run in found:
                key = (str(_run_dir(run.path)), _fingerprint(run))
                if key not in seen:
                    seen.add(key)
                    runs.append(run)
        elif path.exists():
            runs.append(parse_log(path))
        else:
            raise LogError(f"no such log file or folder: {path}")
    return runs


def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are present and finite."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def activation_order(runs: Iterable[RunLog]) -> list[str]:
    """Activations in a stable order: relu2, leaky2, asqu first, then others by name."""
    known = ["relu2", "leaky2", "asqu"]
    names = {r.mlp_activation for r in runs}
    return [a for a in known if a in names] + sorted(names - set(known))
