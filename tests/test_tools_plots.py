"""Tests of tools/plots.py: every plot is a real, non-empty PNG."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import plots  # noqa: E402
import runlog  # noqa: E402
from synth_log import make_log  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 5000, f"{path} is suspiciously small ({len(data)} bytes)"


def test_all_plots_from_logs_and_a_state_dict(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    for act in ("relu2", "leaky2", "asqu"):
        for seed in (1337, 42):
            (logs / f"{act}_seed{seed}.log").write_text(
                make_log(seed=seed, activation=act, steps=600, val_every=200, train_every=100, layers=3))
    state = {f"blocks.{i}.mlp.asqu.beta": torch.randn(96) * 0.3 + 0.5 for i in range(3)}
    state["tok_emb.weight"] = torch.zeros(8, 4)
    torch.save(state, tmp_path / "final_model.pt")
    out = tmp_path / "plots"
    code = plots.main([str(logs), str(FIXTURES / "relu2_seed42_crashed.txt"), "--out", str(out),
                       "--state-dict", str(tmp_path / "final_model.pt")])
    assert code == 0
    printed = capsys.readouterr().out.split()
    expected = ["val_bpb_vs_step.png", "val_bpb_vs_time.png", "step_time.png", "asqu_beta_layers.png",
                "asqu_beta_hist.png"]
    assert [Path(p).name for p in printed] == expected
    for name in expected:
        assert_png(out / name)


def test_beta_loading_and_no_asqu_plot_without_asqu_runs(tmp_path):
    state = {f"blocks.{i}.mlp.asqu.beta": torch.full((16,), 0.1 * i) for i in (2, 0, 1)}
    torch.save(state, tmp_path / "m.pt")
    betas = plots.load_betas(tmp_path / "m.pt")
    assert list(betas) == [0, 1, 2]
    np.testing.assert_allclose(betas[2], np.full(16, 0.2, dtype=np.float32))
    relu = runlog.parse_text(make_log(activation="relu2", steps=200, val_every=100, train_every=100))
    written = plots.write_plots([relu], tmp_path / "p")
    assert sorted(p.name for p in written) == ["step_time.png", "val_bpb_vs_step.png", "val_bpb_vs_time.png"]


def test_state_dict_without_betas_is_an_error(tmp_path, capsys):
    torch.save({"tok_emb.weight": torch.zeros(2, 2)}, tmp_path / "relu.pt")
    assert plots.main(["--out", str(tmp_path / "p"), "--state-dict", str(tmp_path / "relu.pt")]) == 2
    assert "no blocks.<i>.mlp.asqu.beta tensors" in capsys.readouterr().err
    with pytest.raises(plots.ToolError, match="cannot load state dict"):
        plots.load_betas(tmp_path / "missing.pt")
