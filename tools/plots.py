#!/usr/bin/env python3
"""Plot run logs (PNG): validation BPB, step time and ASQU beta distributions.

    python tools/plots.py sweeps/ab1/ --out sweeps/ab1/plots
    python tools/plots.py logs/asqu_seed1337.txt --state-dict final_model.pt --out plots

Writes, under --out:

* ``val_bpb_vs_step.png``, ``val_bpb_vs_time.png``: validation BPB of every run against
  step and against training time, coloured by activation (post-EMA, roundtrip and
  sliding figures marked at the end);
* ``step_time.png``: time per step between consecutive logged steps, and the final
  step_avg of each run;
* ``asqu_beta_layers.png``: per-layer beta mean / std / min / max from each ASQU run's
  final ``asqu_diag`` lines, and the per-layer mean over training (when logged);
* ``asqu_beta_hist.png``: histograms of the betas per layer from each ``--state-dict``
  (a ``final_model.pt`` raw state dict with ``blocks.{i}.mlp.asqu.beta`` tensors).

A plot without data (say, no ASQU run) is skipped with a note.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_TOOLS_DIR = str(Path(__file__).resolve().parent)
if _TOOLS_DIR not in sys.path:  # sibling modules (runlog, ...) also under `python -m tools.X`
    sys.path.insert(0, _TOOLS_DIR)
import runlog  # noqa: E402
from runlog import RunLog  # noqa: E402

ACTIVATION_COLORS = {"relu2": "tab:blue", "leaky2": "tab:orange", "asqu": "tab:green"}
_EXTRA_COLORS = ["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
BETA_KEY = re.compile(r"(?:.*\.)?blocks\.(\d+)\.mlp\.asqu\.beta")


class ToolError(Exception):
    """An error the user can fix; printed as one line, exit status 2."""


def activation_colors(runs: list[RunLog]) -> dict[str, str]:
    colors = dict(ACTIVATION_COLORS)
    extra = iter(_EXTRA_COLORS * 10)
    for act in runlog.activation_order(runs):
        if act not in colors:
            colors[act] = next(extra)
    return colors


def _label(run: RunLog) -> str:
    return f"{run.mlp_activation} s{run.seed}" if run.seed is not None else run.name


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_val_bpb(runs: list[RunLog], out_dir: Path) -> list[Path]:
    """Validation BPB against step and against training time (minutes)."""
    runs = [r for r in runs if r.val_points]
    if not runs:
        return []
    colors = activation_colors(runs)
    written = []
    for x_kind, filename, xlabel in (
        ("step", "val_bpb_vs_step.png", "step"),
        ("time", "val_bpb_vs_time.png", "training time (min)"),
    ):
        fig, ax = plt.subplots(figsize=(8, 5))
        seen: set[str] = set()
        for run in runs:
            xs = [p.step if x_kind == "step" else p.train_time_ms / 60000 for p in run.val_points]
            ys = [p.val_bpb for p in run.val_points]
            act = run.mlp_activation
            ax.plot(xs, ys, marker="o", ms=3, lw=1.2, color=colors[act], alpha=0.85,
                    label=act if act not in seen else None)
            seen.add(act)
            end_x = xs[-1]
            for value, marker in ((run.post_ema_val_bpb, "s"), (run.roundtrip_val_bpb, "x"),
                                  (run.sliding_val_bpb, "*")):
                if value is not None and math.isfinite(value):
                    ax.plot([end_x], [value], marker=marker, color=colors[act], ms=7, ls="none")
        finals = runlog.finite(p.val_bpb for r in runs for p in r.val_points[-1:])
        finals += runlog.finite(v for r in runs for v in (r.post_ema_val_bpb, r.sliding_val_bpb))
        if finals:  # zoom on the interesting end, keeping the start visible when it is close
            lo = min(finals)
            ax.set_ylim(lo - 0.02, max(lo + 0.4, min(max(finals) + 0.3, 8.0)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation BPB")
        ax.set_title("Validation BPB (square: post-EMA, x: int6 roundtrip, star: sliding)")
        ax.grid(alpha=0.3)
        ax.legend(title="mlp_activation")
        written.append(_save(fig, out_dir / filename))
    return written


def plot_step_time(runs: list[RunLog], out_dir: Path) -> list[Path]:
    """Per-interval ms/step against step, and the final step_avg of every run."""
    runs = [r for r in runs if r.train_points or r.val_points]
    if not runs:
        return []
    colors = activation_colors(runs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    seen: set[str] = set()
    for run in runs:
        points = sorted({(p.step, p.train_time_ms) for p in [*run.train_points, *run.val_points]})
        xs, ys = [], []
        for (s0, t0), (s1, t1) in zip(points, points[1:]):
            if s1 > s0 and s0 > 0:
                xs.append(s1)
                ys.append((t1 - t0) / (s1 - s0))
        act = run.mlp_activation
        if xs:
            left.plot(xs, ys, lw=1, color=colors[act], alpha=0.8, label=act if act not in seen else None)
            seen.add(act)
    left.set_xlabel("step")
    left.set_ylabel("ms per step (between logged steps)")
    left.set_title("Step time")
    left.grid(alpha=0.3)
    if seen:
        left.legend(title="mlp_activation")
    ordered = sorted(runs, key=lambda r: (runlog.activation_order(runs).index(r.mlp_activation), r.seed or 0))
    values = [r.step_avg_ms if r.step_avg_ms is not None else 0.0 for r in ordered]
    right.bar(range(len(ordered)), values, color=[colors[r.mlp_activation] for r in ordered])
    right.set_xticks(range(len(ordered)), [_label(r) for r in ordered], rotation=45, ha="right")
    right.set_ylabel("final step_avg (ms)")
    positive = [v for v in values if v > 0]
    if positive:
        right.set_ylim(min(positive) * 0.9, max(positive) * 1.05)
    right.set_title("Mean step time per run")
    return [_save(fig, out_dir / "step_time.png")]


def plot_beta_layers(runs: list[RunLog], out_dir: Path) -> list[Path]:
    """Per-layer beta statistics from the final asqu_diag lines (and their evolution)."""
    runs = [r for r in runs if r.final_betas()]
    if not runs:
        return []
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(runs)
    for k, run in enumerate(runs):
        betas = run.final_betas()
        layers = np.array([b.layer for b in betas], dtype=float) + (k - (len(runs) - 1) / 2) * width
        means = np.array([b.mean for b in betas])
        color = f"C{k % 10}"
        left.errorbar(layers, means, yerr=[b.std for b in betas], fmt="o", capsize=3, color=color,
                      label=f"{_label(run)} mean ± std")
        left.vlines(layers, [b.min for b in betas], [b.max for b in betas], alpha=0.3, lw=4, color=color)
    all_layers = sorted({b.layer for run in runs for b in run.final_betas()})
    left.set_xticks(all_layers)
    left.axhline(0.0, color="k", lw=0.8, ls=":", label="relu2 (beta 0)")
    left.axhline(0.25, color="tab:orange", lw=0.8, ls="--", label="leaky2(0.5) (beta 0.25)")
    left.set_xlabel("layer")
    left.set_ylabel("beta (bars: min..max)")
    left.set_title(f"ASQU beta per layer at step {runs[0].final_betas()[0].step}")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    run = runs[0]
    layer_ids = sorted({b.layer for b in run.asqu_diag})
    cmap = plt.get_cmap("viridis")
    for i, layer in enumerate(layer_ids):
        series = {}
        for b in run.asqu_diag:
            if b.layer == layer and b.step is not None:
                series[b.step] = b.mean
        if series:
            steps = sorted(series)
            right.plot(steps, [series[s] for s in steps], marker=".", color=cmap(i / max(1, len(layer_ids) - 1)),
                       label=f"layer {layer}")
    right.set_xlabel("step")
    right.set_ylabel("beta mean")
    right.set_title(f"beta mean over training ({_label(run)})")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, ncol=2)
    return [_save(fig, out_dir / "asqu_beta_layers.png")]


def load_betas(path: str | Path) -> dict[int, np.ndarray]:
    """Per-layer beta vectors from a raw state dict (``final_model.pt``)."""
    import torch  # only needed here

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any load failure in one line
        raise ToolError(f"cannot load state dict {path}: {exc}") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ToolError(f"{path} does not hold a state dict")
    betas = {}
    for key, value in state.items():
        match = BETA_KEY.fullmatch(str(key))
        if match and hasattr(value, "detach"):
            betas[int(match.group(1))] = value.detach().float().reshape(-1).cpu().numpy()
    if not betas:
        raise ToolError(f"{path} has no blocks.<i>.mlp.asqu.beta tensors (not an ASQU model?)")
    return dict(sorted(betas.items()))


def plot_beta_histograms(state_dicts: list[str | Path], out_dir: Path) -> list[Path]:
    """One histogram per layer, overlaying every given state dict."""
    if not state_dicts:
        return []
    loaded = [(Path(p), load_betas(p)) for p in state_dicts]
    layers = sorted({layer for _, betas in loaded for layer in betas})
    ncols = min(4, len(layers))
    nrows = math.ceil(len(layers) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        for path, betas in loaded:
            if layer in betas:
                values = betas[layer]
                ax.hist(values, bins=40, alpha=0.6, label=f"{path.parent.name or path.name}")
        ax.axvline(0.0, color="k", lw=0.8, ls=":")
        ax.axvline(0.25, color="tab:orange", lw=0.8, ls="--")
        means = ", ".join(f"{float(np.mean(b[layer])):.3f}" for _, b in loaded if layer in b)
        ax.set_title(f"layer {layer} (mean {means})", fontsize=9)
    for ax in list(axes.flat)[len(layers):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("ASQU beta per hidden channel (dotted: 0 = relu2, dashed: 0.25 = leaky2(0.5))")
    return [_save(fig, out_dir / "asqu_beta_hist.png")]


def write_plots(runs: list[RunLog], out_dir: str | Path, state_dicts: list[str | Path] = ()) -> list[Path]:
    """Write every plot that has data; return the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for plot in (plot_val_bpb, plot_step_time, plot_beta_layers):
        written += plot(runs, out_dir)
    written += plot_beta_histograms(list(state_dicts), out_dir)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Plot train_gpt.py run logs (PNG files).")
    parser.add_argument("paths", nargs="*", metavar="LOG_OR_DIR", help="run log files or folders")
    parser.add_argument("--out", required=True, help="folder for the PNG files (created)")
    parser.add_argument("--state-dict", action="append", default=[], metavar="PT",
                        help="final_model.pt to histogram ASQU betas from (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.paths and not args.state_dict:
        parser.error("give run logs and/or --state-dict files")
    try:
        try:
            runs = runlog.collect_runs(args.paths) if args.paths else []
        except runlog.LogError as exc:
            raise ToolError(str(exc)) from exc
        if args.paths and not runs:
            raise ToolError("no run logs found in " + ", ".join(args.paths))
        written = write_plots(runs, args.out, args.state_dict)
    except ToolError as exc:
        print(f"plots: error: {exc}", file=sys.stderr)
        return 2
    if not written:
        print("plots: nothing to plot (no validation lines, step lines or betas)", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
