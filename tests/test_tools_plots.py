"""Tests of tools/plots.py: every plotted point inside its axes, seeds and activations told apart,
bars from zero, labels and titles present, the deciding number's statistics, betas read exactly
from state dicts and int6 artifacts, and the three output formats."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import plots  # noqa: E402
import runlog  # noqa: E402
from synth_log import make_log, sliding_pair  # noqa: E402

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF"}
SEEDS = (1337, 42, 2024)


def study_runs(layers: int = 3) -> list:
    """3 activations x 3 seeds; val curves start at 4.1 BPB and end near 1.2 (a wide y range)."""
    runs = []
    for a, act in enumerate(("relu2", "leaky2", "asqu")):
        for s, seed in enumerate(SEEDS):
            post = 1.20 - 0.004 * a + 0.001 * s
            text = make_log(seed=seed, activation=act, steps=600, val_every=100, train_every=50, layers=layers,
                            step_avg_ms=80.0 + 3 * a + s, post_ema=(post * 1.69, post),
                            roundtrip=((post + 0.008) * 1.69, post + 0.008),
                            sliding=sliding_pair(2.0 - 0.01 * a + 0.002 * s))
            runs.append(runlog.parse_text(text, f"{act}_seed{seed}.log"))
    return runs


def _inside(ax, display_xy: np.ndarray, what: str) -> None:
    xy = display_xy[np.isfinite(display_xy).all(axis=1)]
    x0, y0, x1, y1 = ax.bbox.extents
    tol = 1.0  # pixels
    bad = xy[(xy[:, 0] < x0 - tol) | (xy[:, 0] > x1 + tol) | (xy[:, 1] < y0 - tol) | (xy[:, 1] > y1 + tol)]
    assert not len(bad), f"{what} of axes {ax.get_title()!r}: points outside the axes (display {bad[:3]})"


def assert_every_point_inside(fig) -> int:
    """Every vertex of every line, collection and patch lies within its axes (their data limits)."""
    fig.canvas.draw()
    checked = 0
    for ax in fig.axes:
        if not ax.axison:
            continue
        xlim, ylim = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        for line in ax.get_lines():
            xy = np.asarray(line.get_xydata(), dtype=float)
            _inside(ax, line.get_transform().transform(xy), f"line {line.get_label()!r}")
            if line.get_transform() == ax.transData:  # also in data coordinates
                xy = xy[np.isfinite(xy).all(axis=1)]
                assert ((xy[:, 0] >= xlim[0]) & (xy[:, 0] <= xlim[1])).all()
                assert ((xy[:, 1] >= ylim[0]) & (xy[:, 1] <= ylim[1])).all()
            checked += len(xy)
        for coll in ax.collections:
            if isinstance(coll, PathCollection):
                xy = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float))
                _inside(ax, xy, "scatter")
            else:
                for path in coll.get_paths():
                    _inside(ax, coll.get_transform().transform(path.vertices), type(coll).__name__)
                    checked += len(path.vertices)
        for patch in ax.patches:
            _inside(ax, patch.get_verts(), type(patch).__name__)
            checked += 1
    assert checked, "the figure plots nothing"
    return checked


def assert_labelled(fig, legend: bool = True) -> None:
    visible = [ax for ax in fig.axes if ax.axison]
    assert visible
    for ax in visible:
        assert ax.get_xlabel() and ax.get_ylabel(), f"axes {ax.get_title()!r} lacks an axis label"
        assert ax.get_title(), "axes without a title"
    if legend:
        assert any(ax.get_legend() is not None for ax in visible), "no legend"


def assert_bars_from_zero(ax) -> int:
    bars = [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]
    for bar in bars:
        assert bar.get_y() == 0.0, "a bar does not start at zero"
    lo, hi = ax.get_ylim()
    assert min(lo, hi) <= 0.0 <= max(lo, hi), "zero is not on the axis of a bar chart"
    return len(bars)


def marker_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() not in (None, "None", "", " ") and len(ln.get_xdata())]


def test_every_figure_keeps_its_points_inside_and_is_labelled():
    runs = study_runs()
    for name, make in plots.LOG_FIGURES:
        fig = make(runs)
        assert fig is not None, name
        assert_every_point_inside(fig)
        assert_labelled(fig)
        plots.plt.close(fig)


def test_titles_fit_a_narrow_figure_and_a_long_run_name():
    """One activation gives the narrowest figures; a long run name lengthens the beta panel's title."""
    text = make_log(seed=1337, activation="asqu", steps=600, val_every=100, train_every=50, post_ema=(2.0, 1.2),
                    roundtrip=(2.1, 1.21), sliding=sliding_pair(2.0))
    run = runlog.parse_text(text, "quickstart_asqu_20261204-165500_a_long_run_name_seed1337.log")
    for name, make in plots.LOG_FIGURES:
        fig = make([run])
        fig.tight_layout()
        fig.canvas.draw()
        for ax in fig.axes:
            title = ax.title.get_window_extent()
            assert fig.bbox.x0 <= title.x0 and title.x1 <= fig.bbox.x1, f"{name}: title {ax.get_title()!r} clipped"
        plots.plt.close(fig)


def test_val_bpb_curves_band_and_styles():
    runs = study_runs()
    fig = plots.fig_val_bpb(runs)
    whole, half = fig.axes
    assert_every_point_inside(fig)
    # the curves start at ~4.1 BPB: the whole-run panel shows step 0, not a zoom that cuts it off
    assert max(whole.get_ylim()) > 4.0
    # one mean +- std band per activation in each panel
    assert len(whole.collections) == 3 and len(half.collections) == 3
    # single runs: colour = activation, marker and line style = seed
    lines = marker_lines(whole)
    assert len(lines) == 9
    assert len({ln.get_color() for ln in lines}) == 3
    assert len({ln.get_marker() for ln in lines}) == 3
    assert len({(ln.get_color(), ln.get_marker()) for ln in lines}) == 9
    assert len({ln.get_linestyle() for ln in lines}) == 3
    legend = [t.get_text() for t in whole.get_legend().get_texts()]
    assert {"relu2", "leaky2", "asqu", "seed 42", "seed 1337", "seed 2024"} <= set(legend)
    # the second-half panel only plots steps >= half of the last step
    assert all(min(ln.get_xdata()) >= 300 for ln in half.get_lines())
    plots.plt.close(fig)


def test_band_is_mean_and_std_over_the_common_steps():
    a = runlog.parse_text(make_log(seed=1, activation="asqu", steps=300, val_every=100, train_every=100))
    b = runlog.parse_text(make_log(seed=2, activation="asqu", steps=200, val_every=100, train_every=100,
                                   stopped_early=False))
    steps, mean, std = plots.band([a, b])
    assert list(steps) == [0, 100, 200]
    va = {p.step: p.val_bpb for p in a.val_points}
    vb = {p.step: p.val_bpb for p in b.val_points}
    for k, s in enumerate(steps):
        np.testing.assert_allclose(mean[k], (va[s] + vb[s]) / 2)
        np.testing.assert_allclose(std[k], abs(va[s] - vb[s]) / math.sqrt(2))
    assert list(plots.band([a, b], min_step=150)[0]) == [200]


def test_mean_ci_is_the_student_t_interval():
    mean, half, n = plots.mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert plots.mean_ci([1.5]) == (1.5, None, 1)
    assert plots.mean_ci([1.0, float("nan"), 3.0])[2] == 2


def test_deciding_number_plot_shows_each_seed_and_the_interval():
    runs = study_runs()
    fig = plots.fig_final_val_loss(runs)
    (ax,) = fig.axes
    assert_every_point_inside(fig)
    assert "final_int6_sliding_window val_loss" in ax.get_ylabel()
    points = [ln for ln in marker_lines(ax) if ln.get_linestyle() == "None" and ln.get_marker() != "_"]
    plotted = sorted(float(ln.get_ydata()[0]) for ln in points)
    assert plotted == pytest.approx(sorted(r.sliding_val_loss for r in runs))
    assert len({(ln.get_color(), ln.get_marker()) for ln in points}) == 9
    asqu = [r.sliding_val_loss for r in runs if r.mlp_activation == "asqu"]
    mean, half, _ = plots.mean_ci(asqu)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert f"{mean:.5f} ± {half:.5f}" in ticks[2] and ticks[2].startswith("asqu\nn=3")
    # the interval is drawn: an error bar from mean - half to mean + half
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    assert any(np.allclose(sorted(seg[:, 1]), [mean - half, mean + half]) for seg in segments)
    plots.plt.close(fig)


def test_deciding_number_falls_back_to_the_roundtrip_without_sliding_lines():
    legacy = runlog.parse_log(FIXTURES / "legacy_seed2024.log")
    metric, values = plots.deciding_values([legacy])
    assert "roundtrip" in metric and values[0][1] == legacy.roundtrip_val_loss
    fig = plots.fig_final_val_loss([legacy])
    assert "roundtrip" in fig.axes[0].get_ylabel()
    assert_every_point_inside(fig)
    plots.plt.close(fig)


def test_quant_gap_and_step_time_bars_start_at_zero():
    runs = study_runs()
    fig = plots.fig_quant_gap(runs)
    assert assert_bars_from_zero(fig.axes[0]) == 3
    heights = [p.get_height() for c in fig.axes[0].containers for p in c.patches]
    assert heights == pytest.approx([0.008] * 3, abs=1e-6)
    assert_every_point_inside(fig)
    plots.plt.close(fig)
    fig = plots.fig_step_time(runs)
    assert assert_bars_from_zero(fig.axes[1]) == 3
    assert_every_point_inside(fig)
    plots.plt.close(fig)
    # a negative gap is a bar from zero downwards, still inside the axes
    neg = runlog.parse_text(make_log(activation="asqu", steps=200, val_every=100, train_every=100,
                                     post_ema=(2.0, 1.20), roundtrip=(1.99, 1.19)))
    fig = plots.fig_quant_gap([neg])
    assert assert_bars_from_zero(fig.axes[0]) == 1
    assert_every_point_inside(fig)
    plots.plt.close(fig)


def test_runs_of_one_activation_with_different_configurations_are_not_pooled():
    runs = study_runs()
    for run in runs:
        run.config_fingerprint = "aaaaaaaaaaaa" if run.seed != 2024 else "bbbbbbbbbbbb"
    notes = []
    groups = plots.group_runs(runs, notes)
    assert len(groups) == 6
    assert len(notes) == 6 and all("not pooled" in n for n in notes)
    asqu = [g for g in groups if g.activation == "asqu"]
    assert [g.label for g in asqu] == ["asqu [aaaaaaaaaaaa]", "asqu [bbbbbbbbbbbb]"]
    assert asqu[0].color != asqu[1].color
    plain = plots.group_runs(study_runs())
    assert [g.label for g in plain] == ["relu2", "leaky2", "asqu"]
    assert [len(g.runs) for g in plain] == [3, 3, 3]


def _artifact(state: dict, path: Path) -> None:
    import io

    import train_gpt as tg

    payload, _ = tg.quantize_state_dict(state, [0.999, 1.0], 0.0)
    buf = io.BytesIO()
    torch.save(payload, buf)
    path.write_bytes(tg.compress(buf.getvalue(), "zstd"))


def test_betas_are_read_exactly_from_state_dicts_artifacts_and_run_folders(tmp_path):
    torch.manual_seed(0)
    betas = {i: torch.randn(48) * 0.4 + 0.5 for i in (2, 0, 1)}
    state = {f"blocks.{i}.mlp.asqu.beta": b for i, b in betas.items()}
    state["blocks.0.mlp.fc.weight"] = torch.randn(48, 64)
    state["tok_emb.weight"] = torch.randn(32, 16)
    work = tmp_path / "work"
    (work / "runs" / "asqu_s1").mkdir(parents=True)
    (work / "runs" / "asqu_s2").mkdir(parents=True)
    torch.save(state, work / "runs" / "asqu_s1" / "final_model.pt")
    _artifact(state, work / "runs" / "asqu_s2" / "final_model.int6.ptz")
    for path in (work / "runs" / "asqu_s1" / "final_model.pt", work / "runs" / "asqu_s2" / "final_model.int6.ptz"):
        loaded = plots.load_betas(path)
        assert list(loaded) == [0, 1, 2]
        for i in betas:  # bit-exact fp32, from the raw state dict and from the int6 artifact
            np.testing.assert_array_equal(loaded[i], betas[i].numpy().astype(np.float64))
    (work / "runs" / "relu2_s1").mkdir()
    torch.save({"tok_emb.weight": torch.zeros(2, 2)}, work / "runs" / "relu2_s1" / "final_model.pt")
    assert [label for label, _, _ in plots.beta_sources([work])] == ["asqu_s1", "asqu_s2", "relu2_s1"]
    assert [label for label, _ in plots.load_beta_sources([work])] == ["asqu_s1", "asqu_s2"]  # relu2 skipped
    assert [label for label, *_ in plots.beta_sources([work / "runs" / "asqu_s1" / "final_model.pt"])] == ["asqu_s1"]
    with pytest.raises(plots.ToolError, match="no blocks"):  # a named file without betas is an error
        plots.load_beta_sources([work / "runs" / "relu2_s1" / "final_model.pt"])
    logit = plots.load_betas(work / "runs" / "asqu_s1" / "final_model.pt", sigmoid=True)
    np.testing.assert_allclose(logit[0], torch.sigmoid(betas[0]).numpy(), rtol=1e-6)


def test_beta_histograms_have_labels_and_a_title_per_layer(tmp_path):
    torch.manual_seed(1)
    one = {i: (torch.randn(200) * 0.5 + 0.5).double().numpy() for i in range(5)}
    two = {i: (torch.randn(200) * 0.3 + 0.4).double().numpy() for i in range(5)}
    fig = plots.fig_beta_hist([("asqu_s1", one), ("asqu_s2", two)])
    layers = [ax for ax in fig.axes if ax.axison]
    assert len(layers) == 5
    assert [ax.get_title().split(":")[0] for ax in layers] == [f"layer {i}" for i in range(5)]
    assert_labelled(fig)
    assert_every_point_inside(fig)
    for ax in layers:
        assert ax.get_xlabel() == "beta" and ax.get_ylabel() == "hidden channels"
        assert len(ax.patches) == 2  # one step histogram per run
    first, second = layers[0].patches
    assert (first.get_linestyle(), first.get_edgecolor()) != (second.get_linestyle(), second.get_edgecolor())
    plots.plt.close(fig)
    fig = plots.fig_beta_hist([("only", one)])
    assert "mean" in fig.axes[0].get_title() and "std" in fig.axes[0].get_title()
    plots.plt.close(fig)


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_cli_writes_every_plot_in_the_chosen_format(tmp_path, capsys, fmt):
    logs = tmp_path / "logs"
    logs.mkdir()
    for act in ("relu2", "asqu"):
        for seed in (1337, 42):
            (logs / f"{act}_seed{seed}.log").write_text(
                make_log(seed=seed, activation=act, steps=300, val_every=100, train_every=50, layers=2))
    torch.save({f"blocks.{i}.mlp.asqu.beta": torch.randn(64) for i in range(2)}, tmp_path / "final_model.pt")
    out = tmp_path / "plots"
    code = plots.main([str(logs), str(FIXTURES / "relu2_seed42_crashed.txt"), "--out", str(out),
                       "--state-dict", str(tmp_path / "final_model.pt"), "--format", fmt])
    assert code == 0
    names = [Path(p).name for p in capsys.readouterr().out.split()]
    expected = [f"{n}.{fmt}" for n in ("val_bpb", "final_val_loss", "quant_gap", "step_time", "asqu_beta_layers",
                                       "asqu_beta_hist")]
    assert names == expected
    for name in expected:
        data = (out / name).read_bytes()
        if fmt == "svg":
            assert b"<svg" in data[:2000]
        else:
            assert data.startswith(MAGIC[fmt])
        assert len(data) > 3000


def test_relu2_only_logs_skip_the_asqu_plots(tmp_path, capsys):
    relu = runlog.parse_text(make_log(activation="relu2", steps=200, val_every=100, train_every=100))
    written = plots.write_plots([relu], tmp_path / "p")
    assert [p.name for p in written] == ["val_bpb.png", "final_val_loss.png", "quant_gap.png", "step_time.png"]
    assert "asqu_beta_layers: no data" in capsys.readouterr().err


def test_bad_state_dicts_are_one_line_errors(tmp_path, capsys):
    torch.save({"tok_emb.weight": torch.zeros(2, 2)}, tmp_path / "relu.pt")
    assert plots.main(["--out", str(tmp_path / "p"), "--state-dict", str(tmp_path / "relu.pt")]) == 2
    assert "no blocks.<i>.mlp.asqu.beta tensors" in capsys.readouterr().err
    assert plots.main(["--out", str(tmp_path / "p"), "--state-dict", str(tmp_path / "missing.pt")]) == 2
    assert "no such state dict" in capsys.readouterr().err
    (tmp_path / "broken.int6.ptz").write_bytes(b"not an artifact")
    with pytest.raises(plots.ToolError, match="broken.int6.ptz"):
        plots.load_betas(tmp_path / "broken.int6.ptz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(plots.ToolError, match="holds no final_model.pt"):
        plots.beta_sources([tmp_path / "empty"])


def test_out_that_is_a_file_is_one_clear_error(tmp_path, capsys):
    log = tmp_path / "asqu_seed1.log"
    log.write_text(make_log(seed=1, steps=60, val_every=30, train_every=30))
    (tmp_path / "afile").write_text("keep me\n")
    assert plots.main([str(log), "--out", str(tmp_path / "afile" / "plots")]) == 2
    assert capsys.readouterr().err == (f"plots: error: --out {tmp_path / 'afile' / 'plots'}: cannot make this folder "
                                       "(Not a directory); give --out a new or existing folder\n")
    assert (tmp_path / "afile").read_text() == "keep me\n"
