#!/usr/bin/env python3
"""Plot train_gpt.py runs: validation curves, the deciding number, quant gap, step time, ASQU betas.
The files and what each shows: tools/README.md, "plots.py"."""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

import runlog  # noqa: E402
from runlog import RunLog, ToolError  # noqa: E402

FORMATS = ("png", "svg", "pdf")
ACTIVATION_COLORS = {"relu2": "tab:blue", "leaky2": "tab:orange", "asqu": "tab:green"}
_EXTRA_COLORS = ["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
SEED_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]
SEED_LINESTYLES = ["-", "--", ":", "-."]
BETA_KEY = re.compile(r"(?:.*\.)?blocks\.(\d+)\.mlp\.asqu\.beta")
MODEL_FILES = ("final_model.pt", "final_model.int6.ptz")


# ----- grouping and styles --------------------------------------------------------

@dataclass
class Group:
    """Runs of one activation and one configuration: one colour, one band, one mean."""

    activation: str
    fingerprint: str | None
    label: str = ""
    color: str = ""
    runs: list[RunLog] = field(default_factory=list)


def group_runs(runs: list[RunLog], notes: list[str] | None = None) -> list[Group]:
    """runlog.groups, each with a label and a colour. When one activation has several groups, each label
    names its fingerprint (or a number) and a line per group is appended to ``notes``."""
    groups = [Group(g[0].mlp_activation, g[0].config_fingerprint, runs=g) for g in runlog.groups(runs)]
    extra = iter(_EXTRA_COLORS * 10)
    for group in groups:
        same = [g for g in groups if g.activation == group.activation]
        if len(same) == 1:
            group.label = group.activation
        elif group.fingerprint and len({g.fingerprint for g in same}) == len(same):
            group.label = f"{group.activation} [{group.fingerprint}]"
        else:
            group.label = f"{group.activation} (config {same.index(group) + 1})"
        if len(same) > 1 and notes is not None:
            notes.append(f"{group.label}: {len(group.runs)} run(s), not pooled with other {group.activation} "
                         f"runs: {runlog.group_label(group.runs[0])}")
        default = group is same[0] and group.activation in ACTIVATION_COLORS
        group.color = ACTIVATION_COLORS[group.activation] if default else next(extra)
    return groups


def _seed_key(run: RunLog):
    return run.seed if run.seed is not None else run.name


class SeedStyles:
    """One marker and line style per seed, the same in every plot of one call."""

    def __init__(self, runs: list[RunLog]):
        keys = sorted({_seed_key(r) for r in runs}, key=lambda k: (isinstance(k, str), str(k).zfill(12)))
        self.index = {k: i for i, k in enumerate(keys)}

    def marker(self, run: RunLog) -> str:
        return SEED_MARKERS[self.index[_seed_key(run)] % len(SEED_MARKERS)]

    def linestyle(self, run: RunLog) -> str:
        return SEED_LINESTYLES[self.index[_seed_key(run)] % len(SEED_LINESTYLES)]

    def handles(self) -> list[Line2D]:
        """Legend entries (grey) naming the seed of each marker / line style."""
        return [Line2D([], [], color="0.35", marker=SEED_MARKERS[i % len(SEED_MARKERS)],
                       ls=SEED_LINESTYLES[i % len(SEED_LINESTYLES)],
                       label=f"seed {key}" if isinstance(key, int) else key) for key, i in self.index.items()]


# ----- statistics ------------------------------------------------------------------

def mean_ci(values, level: float = 0.95) -> tuple[float, float | None, int]:
    """(mean, half-width of the two-sided Student-t interval or None when n < 2, n)."""
    data = runlog.finite(values)
    n = len(data)
    if n < 2:
        return (data[0] if data else math.nan), None, n
    return float(np.mean(data)), float(scipy_stats.t.ppf(0.5 + level / 2, n - 1) * scipy_stats.sem(data)), n


def band(runs: list[RunLog], min_step: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps (>= min_step) where every run logged a finite val_bpb; mean and std (ddof 1) there."""
    series = [{p.step: p.val_bpb for p in r.val_points if math.isfinite(p.val_bpb)} for r in runs]
    if not series:
        return np.array([]), np.array([]), np.array([])
    steps = sorted(s for s in set.intersection(*(set(d) for d in series)) if s >= min_step)
    values = np.array([[d[s] for s in steps] for d in series], dtype=float).reshape(len(series), len(steps))
    std = values.std(axis=0, ddof=1) if len(series) > 1 else np.zeros(len(steps))
    return np.array(steps), values.mean(axis=0), std


# ----- the figures (each returns a matplotlib Figure, or None without data) ----------

def _axes(ax, xlabel: str, ylabel: str, title: str, grid: str = "both") -> None:
    """Labels, title and a light grid (grid="y": horizontal lines only); a step axis shows whole numbers."""
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, wrap=True)  # wrapped at the figure's edge: a narrow figure or a long run name is not clipped
    ax.grid(axis=grid, alpha=0.3)
    if xlabel == "step":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _finish_legend(ax, groups: list[Group], styles: SeedStyles, extra: list | None = None, **kw) -> None:
    handles = [Line2D([], [], color=g.color, lw=3, label=g.label) for g in groups]
    ax.legend(handles=handles + styles.handles() + (extra or []), fontsize=8, **kw)


def fig_val_bpb(runs: list[RunLog]):
    runs = [r for r in runs if runlog.finite(p.val_bpb for p in r.val_points)]
    if not runs:
        return None
    groups, styles = group_runs(runs), SeedStyles(runs)
    last = max(p.step for r in runs for p in r.val_points)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, min_step, title in ((axes[0], 0, "whole run"),
                                (axes[1], last // 2, f"second half (steps >= {last // 2})")):
        for group in groups:
            for run in group.runs:
                pts = [(p.step, p.val_bpb) for p in run.val_points if p.step >= min_step and math.isfinite(p.val_bpb)]
                if pts:
                    ax.plot(*zip(*pts), color=group.color, lw=0.9, alpha=0.6, ms=4,
                            marker=styles.marker(run), ls=styles.linestyle(run))
            steps, mean, std = band(group.runs, min_step)
            if len(steps):
                ax.plot(steps, mean, color=group.color, lw=2.4)
                if len(group.runs) > 1:
                    ax.fill_between(steps, mean - std, mean + std, color=group.color, alpha=0.2, lw=0)
        _axes(ax, "step", "validation BPB", title)
    band_entry = Line2D([], [], color="0.35", lw=2.4, label="mean over seeds (band: ± std)")
    _finish_legend(axes[0], groups, styles, [band_entry])
    fig.suptitle("Validation BPB per activation (thin: single seeds; thick and band: mean ± std over seeds)")
    return fig


def _finite_pairs(runs: list[RunLog], value) -> list[tuple[RunLog, float]]:
    """(run, value(run)) for the runs whose value is present and finite."""
    return [(run, float(v)) for run in runs if (v := value(run)) is not None and math.isfinite(v)]


def deciding_values(runs: list[RunLog]) -> tuple[str, list[tuple[RunLog, float]]]:
    """(metric name, [(run, value)]): each run's score line's val_loss (train_gpt.py's: the sliding window)."""
    values = _finite_pairs(runs, lambda run: run.score_val_loss)
    return f"final {', '.join(sorted({run.score for run, _ in values}))} val_loss" if values else "", values


def fig_final_val_loss(runs: list[RunLog]):
    metric, values = deciding_values(runs)
    if not values:
        return None
    kept = [r for r, _ in values]
    value_of = {id(r): v for r, v in values}
    groups, styles = group_runs(kept), SeedStyles(kept)
    fig, ax = plt.subplots(figsize=(max(5.5, 2.4 * len(groups) + 2), 5))
    ticks = []
    for i, group in enumerate(groups):
        _seed_points(ax, i - 0.1, [(r, value_of[id(r)]) for r in group.runs], styles, group.color)
        mean, half, n = mean_ci([value_of[id(r)] for r in group.runs])
        ax.errorbar([i + 0.25], [mean], yerr=None if half is None else [[half], [half]], fmt="_", ms=22, mew=2.5,
                    color=group.color, ecolor="k", elinewidth=1.2, capsize=6)
        spread = f"\n{mean:.5f} ± {half:.5f}" if half is not None else f"\n{mean:.5f} (one seed)"
        ticks.append(f"{group.label}\nn={n}{spread}")
    ax.set_xticks(range(len(groups)), ticks, fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    _axes(ax, "activation (tick: mean ± 95% t-interval half-width)", f"{metric} (nats/token)",
          "Deciding number per seed, with mean and 95% t-interval per activation", grid="y")
    mean_entry = Line2D([], [], color="k", marker="_", ms=14, mew=2.5, ls="-", lw=1.2,
                        label="mean, 95% t-interval")
    _finish_legend(ax, groups, styles, [mean_entry])
    return fig


def _seed_points(ax, center: float, pairs: list[tuple[RunLog, float]], styles: SeedStyles, color: str) -> None:
    """Each (run, value) as a point in its seed's marker, spread side by side around x = center."""
    n = len(pairs)
    for k, (run, v) in enumerate(pairs):
        x = center + (k - (n - 1) / 2) * min(0.07, 0.42 / n)
        ax.plot([x], [v], ls="none", marker=styles.marker(run), ms=6.5, color=color, markeredgecolor="k",
                markeredgewidth=0.5)


def _bars_with_seeds(ax, groups: list[Group], styles: SeedStyles, value) -> None:
    """Per group: a bar from zero at the mean of value(run) over its runs, and each run as a point."""
    for i, group in enumerate(groups):
        if pairs := _finite_pairs(group.runs, value):
            ax.bar([i], [float(np.mean([v for _, v in pairs]))], width=0.6, bottom=0, color=group.color, alpha=0.45,
                   edgecolor=group.color)
            _seed_points(ax, i, pairs, styles, group.color)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(groups)), [f"{g.label}\nn={len(g.runs)}" for g in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)


def fig_quant_gap(runs: list[RunLog]):
    runs = [r for r in runs if r.quant_gap_bpb is not None and math.isfinite(r.quant_gap_bpb)]
    if not runs:
        return None
    groups, styles = group_runs(runs), SeedStyles(runs)
    fig, ax = plt.subplots(figsize=(max(5.5, 1.8 * len(groups) + 2.5), 4.8))
    _bars_with_seeds(ax, groups, styles, lambda r: r.quant_gap_bpb)
    _axes(ax, "activation", "int6 roundtrip BPB − post-EMA BPB",
          "Quantization gap (bars from zero: mean over seeds; points: seeds)", grid="y")
    _finish_legend(ax, groups, styles)
    return fig


def fig_step_time(runs: list[RunLog]):
    runs = [r for r in runs if r.train_points or r.val_points]
    if not runs:
        return None
    groups, styles = group_runs(runs), SeedStyles(runs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [2, 1]})
    for group in groups:
        for run in group.runs:
            points = sorted({(p.step, p.train_time_ms) for p in [*run.train_points, *run.val_points]})
            # ms per step at each logged step; the first interval (from step 0) holds start-up costs
            rates = [(s1, (t1 - t0) / (s1 - s0)) for (s0, t0), (s1, t1) in zip(points, points[1:]) if s1 > s0 > 0]
            if rates:
                left.plot(*zip(*rates), lw=1, ms=3, color=group.color, alpha=0.8, marker=styles.marker(run),
                          ls=styles.linestyle(run))
    _axes(left, "step", "ms per step (between logged steps)", "Step time during training")
    _finish_legend(left, groups, styles)
    _bars_with_seeds(right, groups, styles, lambda r: r.step_avg_ms)
    _axes(right, "activation", "final step_avg (ms)", "Mean step time (bars from zero)", grid="y")
    return fig


def fig_beta_layers(runs: list[RunLog]):
    runs = [r for r in runs if r.final_betas()]
    if not runs:
        return None
    styles = SeedStyles(runs)
    color = ACTIVATION_COLORS["asqu"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.7 / len(runs)
    for k, run in enumerate(runs):
        betas = run.final_betas()
        xs = np.array([b.layer for b in betas], dtype=float) + (k - (len(runs) - 1) / 2) * width
        left.vlines(xs, [b.min for b in betas], [b.max for b in betas], alpha=0.3, lw=3, color=color)
        left.errorbar(xs, [b.mean for b in betas], yerr=[b.std for b in betas], fmt=styles.marker(run), ms=5,
                      capsize=3, color=color, markeredgecolor="k", markeredgewidth=0.5)
    left.set_xticks(sorted({b.layer for run in runs for b in run.final_betas()}))
    left.axhline(0.0, color="k", lw=0.8, ls=":")
    left.axhline(0.25, color="tab:orange", lw=0.8, ls="--")
    _axes(left, "layer", "beta (point ± std; bar: min..max)", "ASQU beta per layer, final asqu_diag lines")
    refs = [Line2D([], [], color="k", lw=0.8, ls=":", label="beta 0 = relu2"),
            Line2D([], [], color="tab:orange", lw=0.8, ls="--", label="beta 0.25 = leaky2(0.5)")]
    left.legend(handles=styles.handles() + refs, fontsize=8)
    run = runs[0]
    layers = sorted({b.layer for b in run.asqu_diag})
    cmap = plt.get_cmap("viridis")
    for i, layer in enumerate(layers):
        series = {b.step: b.mean for b in run.asqu_diag if b.layer == layer and b.step is not None}
        if series:
            right.plot(*zip(*sorted(series.items())), marker=".",
                       color=cmap(i / max(1, len(layers) - 1)), label=f"layer {layer}")
    _axes(right, "step", "beta mean over channels", f"beta mean over training ({run.name}, colour: layer)")
    if right.get_lines():
        right.legend(fontsize=7, ncol=2)
    return fig


# ----- betas from checkpoints ------------------------------------------------------

def _load_state(path: Path) -> dict:
    import torch

    try:
        if path.suffix == ".ptz":
            tg = runlog.import_trainer()  # the artifact reader: one implementation of the format
            return tg.load_artifact(path.read_bytes(), str(path))[0]
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is one line naming the file
        raise ToolError(f"cannot load state dict {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ToolError(f"{path} does not hold a state dict")
    return state


def load_betas(path: str | Path, sigmoid: bool = False) -> dict[int, np.ndarray]:
    """Per-layer beta vectors from final_model.pt (raw state dict) or final_model.int6.ptz (artifact);
    ``sigmoid``: the run used ASQU_SIGMOID_BETA=1, so the stored tensor is the logit of beta."""
    path = Path(path)
    betas = {}
    for key, value in _load_state(path).items():
        match = BETA_KEY.fullmatch(str(key))
        if match and hasattr(value, "detach"):
            v = value.detach().float().reshape(-1).cpu()
            betas[int(match.group(1))] = (v.sigmoid() if sigmoid else v).numpy().astype(np.float64)
    if not betas:
        raise ToolError(f"{path} has no blocks.<i>.mlp.asqu.beta tensors (not an ASQU model?)")
    return dict(sorted(betas.items()))


def _model_file(folder: Path) -> Path | None:
    return next((folder / name for name in MODEL_FILES if (folder / name).is_file()), None)


def beta_sources(paths: list[str | Path]) -> list[tuple[str, Path, bool]]:
    """(label, file, named) per --state-dict argument: a file, or a folder's runs/*/ model files (the first of
    MODEL_FILES in each). ``named`` is False for those: the ones without betas (relu2 / leaky2 runs) are skipped."""
    out: list[tuple[str, Path, bool]] = []
    for path in map(Path, paths):
        if path.is_file():  # final_model.* is named by its folder (the run)
            out.append((path.resolve().parent.name if path.name in MODEL_FILES else path.name, path, True))
        elif path.is_dir():
            found = [f for run in sorted((path / "runs").glob("*")) if (f := _model_file(run))]
            if not found:
                raise ToolError(f"{path} holds no final_model.pt or final_model.int6.ptz in runs/*/")
            out += [(f.parent.name, f, False) for f in found]
        else:
            raise ToolError(f"no such state dict or folder: {path}")
    return out


def load_beta_sources(paths: list[str | Path], sigmoid: bool = False) -> list[tuple[str, dict[int, np.ndarray]]]:
    """(label, betas per layer) for every --state-dict argument (see beta_sources)."""
    loaded, skipped = [], []
    for label, path, named in beta_sources(paths):
        try:
            loaded.append((label, load_betas(path, sigmoid)))
        except ToolError:
            if named:
                raise
            skipped.append(label)
    if skipped:
        print(f"plots: runs without ASQU betas skipped: {', '.join(skipped)}", file=sys.stderr)
    if paths and not loaded:
        raise ToolError("no ASQU betas in " + ", ".join(str(p) for p in paths))
    return loaded


def fig_beta_hist(sources: list[tuple[str, dict[int, np.ndarray]]]):
    if not sources:
        return None
    layers = sorted({layer for _, betas in sources for layer in betas})
    ncols = min(4, len(layers))
    nrows = math.ceil(len(layers) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        values = [(label, b[layer]) for label, b in sources if layer in b]
        finite = np.concatenate([v[np.isfinite(v)] for _, v in values])
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
        for k, (label, v) in enumerate(values):
            ax.hist(v[np.isfinite(v)], bins=bins, histtype="step", lw=1.3, color=f"C{k % 10}",
                    ls=SEED_LINESTYLES[k % len(SEED_LINESTYLES)], label=f"{label} (mean {np.nanmean(v):.3f})")
        for ref, style in ((0.0, dict(color="k", ls=":")), (0.25, dict(color="tab:orange", ls="--"))):
            if lo <= ref <= hi:  # a reference line only where it sits among the data
                ax.axvline(ref, lw=0.8, **style)
        n = len(values[0][1])
        stats = f"mean {np.nanmean(values[0][1]):.3f}, std {np.nanstd(values[0][1]):.3f}" if len(values) == 1 else \
            f"{len(values)} runs"
        _axes(ax, "beta", "hidden channels", f"layer {layer}: {n} channels, {stats}")
        ax.title.set_fontsize(9)
        ax.ticklabel_format(axis="x", useOffset=False)  # plain beta values, even for a narrow spread
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(axis="x", labelsize=8)
        if len(values) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    labels = ", ".join(label for label, _ in sources)
    fig.suptitle(f"Final ASQU beta per hidden channel ({labels}); dotted: 0 = relu2, dashed: 0.25 = leaky2(0.5)",
                 fontsize=10)
    return fig


# ----- writing ---------------------------------------------------------------------

LOG_FIGURES = (
    ("val_bpb", fig_val_bpb),
    ("final_val_loss", fig_final_val_loss),
    ("quant_gap", fig_quant_gap),
    ("step_time", fig_step_time),
    ("asqu_beta_layers", fig_beta_layers),
)


def write_plots(runs: list[RunLog], out_dir: str | Path, state_dicts: list[str | Path] = (),
                fmt: str = "png", sigmoid_beta: bool = False) -> list[Path]:
    """Write every plot that has data; return the files written (skipped plots noted on stderr)."""
    if fmt not in FORMATS:
        raise ToolError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    out_dir = Path(out_dir)
    sources = load_beta_sources(list(state_dicts), sigmoid_beta)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolError(f"--out {out_dir}: cannot make this folder ({exc.strerror or exc}); give --out a new or "
                        "existing folder") from exc
    for run in (r for r in runs if r.family == "eval_only"):
        print(f"plots: note: {run.path} is an EVAL_ONLY re-score, not a training run; not plotted", file=sys.stderr)
    runs = [r for r in runs if r.family != "eval_only"]
    written: list[Path] = []
    figures = [(name, lambda f=f: f(runs)) for name, f in LOG_FIGURES] if runs else []
    figures.append(("asqu_beta_hist", lambda: fig_beta_hist(sources)))
    for name, make in figures:
        fig = make()
        if fig is None:
            if name != "asqu_beta_hist":  # (no --state-dict given: nothing to say)
                print(f"plots: {name}: no data, skipped", file=sys.stderr)
            continue
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.{fmt}", dpi=110)
        plt.close(fig)
        written.append(out_dir / f"{name}.{fmt}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = runlog.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="*", metavar="LOG_OR_DIR", help="run log files or folders")
    parser.add_argument("--out", required=True, help="folder for the plot files (created)")
    parser.add_argument("--format", choices=FORMATS, default="png", help="file format (default png)")
    parser.add_argument("--state-dict", action="append", default=[], metavar="PATH",
                        help="a model file or working folder to histogram ASQU betas from (repeatable)")
    parser.add_argument("--sigmoid-beta", action="store_true", help="the state dicts are of ASQU_SIGMOID_BETA=1 runs")
    args = parser.parse_args(argv)
    if not args.paths and not args.state_dict:
        parser.error("give run logs and/or --state-dict files")

    def work() -> int:
        runs = runlog.load_runs(args.paths) if args.paths else []
        written = write_plots(runs, args.out, args.state_dict, args.format, args.sigmoid_beta)
        notes: list[str] = []
        group_runs(runs, notes)
        print("".join(f"plots: note: {note}\n" for note in notes), end="", file=sys.stderr)
        if not written:
            raise ToolError("nothing to plot (no validation lines, step lines or betas)", code=1)
        print("\n".join(map(str, written)))
        return 0

    return runlog.one_line_errors("plots", work)


if __name__ == "__main__":
    runlog.run_main(main)
