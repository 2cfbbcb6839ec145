"""MLP_KERNEL=triton: the Triton activation kernels (train_gpt.py's TRITON KERNELS section) against the torch path,
eager and compiled, and whole runs against MLP_KERNEL=torch. On CPU the kernels run in Triton's interpreter
(conftest sets TRITON_INTERPRET=1): the same program a GPU runs, slowly, so the shapes here are small but ragged."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import train_gpt as tg
from conftest import REPO

pytestmark = pytest.mark.skipif(tg.triton is None, reason="needs the triton package (requirements-dev.txt)")

# Rows: not a multiple of the 32-row tile, and over 512 rows so the beta gradient adds several programs'
# partial sums; channels: not a multiple of the 128-channel tile, and more than one tile.
SHAPES = [(3, 37, 100), (1100, 200)]


def reference(h: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """The definition in float64: h^2 for h > 0, coef_c h^2 otherwise."""
    return torch.where(h > 0, h * h, coef * h * h)


def triton_grads(h, beta, neg_coef, g, scale=1.0):
    h = h.detach().clone().requires_grad_()
    b = None if beta is None else beta.detach().clone().requires_grad_()
    y = tg.squared_act(h, b, neg_coef, scale)
    y.backward(g)
    return y.detach(), h.grad, None if b is None else b.grad


def cases(dtype):
    torch.manual_seed(0)
    for shape in SHAPES:
        h = torch.randn(*shape).to(dtype)
        h.view(-1)[:5] = 0.0  # exact zeros take the negative branch (h <= 0)
        g = torch.randn(*shape).to(dtype)
        yield h, g


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("activation", ["relu2", "leaky2", "asqu"])
def test_forward_and_gradients_match_the_definition(activation, dtype):
    # fp32: the kernel computes in fp32 like the reference (a few ulps apart: other multiplication order).
    # bf16: one conversion of the fp32 result, within one bf16 ulp of the float64 value (rtol 2^-7): a GPU rounds to
    # nearest (half an ulp), Triton's interpreter truncates (up to one ulp; measured 0.0063 relative).
    # dbeta sums in fp32 either way: rtol 1e-5 of a sum of up to 1,100 terms.
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=2 ** -7, atol=1e-6)
    for h, g in cases(dtype):
        C = h.size(-1)
        beta = torch.linspace(-0.7, 1.6, C) if activation == "asqu" else None
        neg_coef = {"relu2": 0.0, "leaky2": 0.25, "asqu": 0.0}[activation]
        y, dh, dbeta = triton_grads(h, beta, neg_coef, g)
        assert y.dtype == dh.dtype == dtype and y.shape == dh.shape == h.shape
        h64, g64 = h.double(), g.double()
        coef = beta.double() if beta is not None else torch.full((C,), neg_coef, dtype=torch.float64)
        torch.testing.assert_close(y.double(), reference(h64, coef), **tol)
        torch.testing.assert_close(dh.double(), 2 * g64 * h64 * torch.where(h64 > 0, 1.0, coef), **tol)
        if activation == "asqu":
            expected = (g64 * h64 * h64 * (h64 <= 0)).reshape(-1, C).sum(0)
            assert dbeta.dtype == torch.float32
            torch.testing.assert_close(dbeta.double(), expected, rtol=1e-5, atol=1e-5)
        else:
            assert dbeta is None


def test_matches_the_torch_path_of_each_activation():
    """MLP_KERNEL=triton and torch give the same activation: relu2 and leaky2 as torch writes them, asqu's
    AsquFunction, with the same gradients."""
    torch.manual_seed(1)
    h = torch.randn(70, 130, dtype=torch.float64).float()
    g = torch.randn_like(h)
    beta = torch.linspace(-0.5, 1.2, 130)
    for neg_coef, torch_fn in ((0.0, lambda x: torch.relu(x).square()),
                               (0.09, lambda x: F.leaky_relu(x, 0.3).square())):
        y, dh, _ = triton_grads(h, None, neg_coef, g)
        x = h.clone().requires_grad_()
        torch_fn(x).backward(g)
        torch.testing.assert_close(y, torch_fn(h), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(dh, x.grad, rtol=1e-6, atol=1e-6)
    y, dh, dbeta = triton_grads(h, beta, 0.0, g)
    x, b = h.clone().requires_grad_(), beta.clone().requires_grad_()
    tg.AsquFunction.apply(x, b, 1.0).backward(g)
    torch.testing.assert_close(y, tg.AsquFunction.apply(h, beta, 1.0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dh, x.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dbeta, b.grad, rtol=1e-5, atol=1e-5)


def test_beta_gradient_scale_skip_and_determinism():
    torch.manual_seed(2)
    h, g = torch.randn(600, 150), torch.randn(600, 150)
    beta = torch.full((150,), 0.25)
    _, dh1, db1 = triton_grads(h, beta, 0.0, g, scale=1.0)
    _, dh3, db3 = triton_grads(h, beta, 0.0, g, scale=3.0)
    _, dh0, db0 = triton_grads(h, beta, 0.0, g, scale=0.0)
    _, dh1b, db1b = triton_grads(h, beta, 0.0, g, scale=1.0)
    assert torch.equal(db1, db1b) and torch.equal(dh1, dh1b)  # no atomics: the same bits every run
    assert torch.equal(dh1, dh3) and torch.equal(dh1, dh0)  # the scale touches dbeta only
    torch.testing.assert_close(db3, 3.0 * db1, rtol=1e-6, atol=0)
    assert torch.equal(db0, torch.zeros(150))  # skipped: zeros (DDP's reducer needs a gradient), not None
    assert db1.abs().sum() > 0


def test_asqu_module_and_sigmoid_beta_chain_through_the_kernel():
    torch.manual_seed(3)
    for sigmoid in (False, True):
        torch_mod = tg.ASQU(40, 0.3, sigmoid)
        triton_mod = tg.ASQU(40, 0.3, sigmoid)
        with torch.no_grad():
            for m in (torch_mod, triton_mod):
                m.beta.add_(torch.linspace(-0.2, 0.2, 40))
        h, g = torch.randn(50, 40), torch.randn(50, 40)
        triton_mod.triton_kernel = True  # what MLP_KERNEL=triton sets
        torch_mod(h).backward(g)
        triton_mod(h).backward(g)
        torch.testing.assert_close(triton_mod.beta.grad, torch_mod.beta.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu2", "asqu"])
def test_compiled_fullgraph_model_matches_eager(activation, monkeypatch):
    """The whole tiny model with the Triton MLP under torch.compile(fullgraph=True): the same loss and gradients as
    eager, and no graph beyond the beta-gradient variants (the custom op keeps one graph)."""
    import torch._dynamo

    names = {name for name, _, _ in tg.Hyperparameters.variables()}
    env = {k: v for k, v in os.environ.items() if k not in names}
    args = tg.Hyperparameters({**env, "NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
                               "MLP_MULT": "2", "ROPE_DIMS": "8", "VOCAB_SIZE": "64", "BIGRAM_VOCAB_SIZE": "32",
                               "BIGRAM_DIM": "16", "VE_DIM": "16", "XSA_LAST_N": "1", "MLP_KERNEL": "triton",
                               "MLP_ACTIVATION": activation})
    torch.manual_seed(0)
    model = tg.GPT(args)
    assert all(block.mlp.activation.triton_kernel for block in model.blocks)
    ids = torch.randint(0, 64, (2, 32))
    targets = torch.randint(0, 64, (2, 32))

    def loss_and_grads(m, **kw):
        model.zero_grad(set_to_none=True)
        loss = m(ids, targets, **kw)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager = loss_and_grads(model)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)
    got = loss_and_grads(compiled)
    torch.testing.assert_close(got[0], eager[0], rtol=1e-5, atol=1e-5)
    assert got[1].keys() == eager[1].keys()
    for name in eager[1]:
        torch.testing.assert_close(got[1][name], eager[1][name], rtol=1e-4, atol=1e-5, msg=name)
    graphs = tg.compiled_graphs()
    loss_and_grads(compiled)
    assert tg.compiled_graphs() == graphs  # a second call reuses the graph


def test_triton_needs_a_gpu_or_the_interpreter(monkeypatch):
    def pick(choice):
        return tg.pick_mlp_kernel(tg.Hyperparameters({"MLP_KERNEL": choice}), torch.device("cpu"))[0]

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(tg.ConfigError, match="MLP_KERNEL=triton needs a CUDA GPU.*TRITON_INTERPRET=1"):
        pick("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert pick("triton") == "triton"
    assert pick("auto") == "torch"  # auto reads the preflight's choices only on a GPU (tests/test_preflight.py)
    monkeypatch.setattr(tg, "triton", None)
    with pytest.raises(tg.ConfigError, match="MLP_KERNEL=triton but the triton package cannot be imported"):
        pick("triton")


def test_missing_triton_is_one_line_naming_the_variable(tmp_path):
    """A machine without Triton: MLP_KERNEL=triton ends in one error line and exit 2, nothing written."""
    blocker = tmp_path / "no_triton"
    blocker.mkdir()
    (blocker / "triton.py").write_text("raise ImportError('no triton here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker), "MLP_KERNEL": "triton", "DATA_PATH": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, str(REPO / "train_gpt.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: MLP_KERNEL=triton but the triton package cannot be imported; pip install triton, "
        "or set MLP_KERNEL=torch"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_triton"]


# ----- whole runs: MLP_KERNEL=triton against MLP_KERNEL=torch --------------------------------------------------

@pytest.fixture(scope="module")
def small_val_data(sample_data, tmp_path_factory) -> str:
    """The sample's train shards with a validation shard cut to 1,025 tokens: the interpreter scores a few
    thousand tokens a second, the sample's 47,000 would take minutes."""
    from shard_io import read_shard, write_shard

    root = tmp_path_factory.mktemp("small_val")
    src = Path(sample_data["data_path"])
    for shard in sorted(src.glob("fineweb_train_*.bin"))[:2]:
        (root / shard.name).symlink_to(shard)
    write_shard(root / "fineweb_val_000000.bin", read_shard(src / "fineweb_val_000000.bin")[:1025].astype(np.uint16))
    return str(root)


def final_state(run_dir: Path) -> dict:
    return torch.load(next(run_dir.glob("runs/*/final_model.pt")), map_location="cpu")


def losses(stdout: str) -> list[float]:
    return [float(line.split("train_loss:")[1].split()[0]) for line in stdout.splitlines() if "train_loss:" in line]


@pytest.mark.parametrize("compile_", ["0", "1"])
def test_two_process_run_matches_the_torch_kernel(run_train, small_val_data, tmp_path, compile_):
    """2 processes, asqu, 4 steps with late QAT switching on: the Triton and torch kernels give the same train losses
    within 2e-3 (fp32 throughout; the kernels differ by a few ulps per element, which 4 optimizer steps grow to
    about 1e-4 here, measured), the same final metrics within 1e-3, and beta moves the same way in every layer.
    2 layers (one XSA, one value-embedding layer): half the interpreted kernel calls and graph of TINY_ENV's 4."""
    env = dict(DATA_PATH=small_val_data, MLP_ACTIVATION="asqu", ITERATIONS=4, WARMDOWN_ITERS=4, VAL_LOSS_EVERY=0,
               FINAL_WEIGHTS="raw", EVAL_STRIDE=64, COMPILE=compile_, WARMUP_STEPS=4 if compile_ == "1" else 0,
               ASQU_LR=0.01, NUM_LAYERS=2, VE_LAYERS=1, XSA_LAST_N=1)
    results = {}
    for kernel in ("torch", "triton"):
        cwd = tmp_path / kernel
        cwd.mkdir()
        proc = run_train(nproc=2, cwd=cwd, timeout=900, MLP_KERNEL=kernel, **env)
        assert f"mlp_kernel:{kernel}" in proc.stdout
        if compile_ == "1":
            assert "recompiles_after_warmup:0" in proc.stdout
        finals = {line.split()[0]: float(line.split("val_bpb:")[1]) for line in proc.stdout.splitlines()
                  if line.startswith("final_int6_") and "_exact" in line}
        results[kernel] = (losses(proc.stdout), finals, final_state(cwd))
    torch_losses, torch_finals, torch_sd = results["torch"]
    triton_losses, triton_finals, triton_sd = results["triton"]
    assert len(torch_losses) == len(triton_losses) == 4
    np.testing.assert_allclose(triton_losses, torch_losses, atol=2e-3, rtol=0)
    assert torch_finals.keys() == triton_finals.keys() and len(torch_finals) == 2
    for name in torch_finals:
        assert abs(triton_finals[name] - torch_finals[name]) < 1e-3, name
    betas = [k for k in torch_sd if k.endswith("mlp.asqu.beta")]
    assert len(betas) == 2
    for key in betas:
        moved_torch, moved_triton = torch_sd[key] - 0.25, triton_sd[key] - 0.25
        assert moved_torch.abs().max() > 1e-3, key  # beta learned something
        agree = (torch.sign(moved_torch) == torch.sign(moved_triton)).float().mean()
        assert agree > 0.95, (key, agree)
        torch.testing.assert_close(moved_triton, moved_torch, rtol=0.05, atol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU answer")
def test_gpu_check_says_in_one_line_that_it_needs_a_gpu(tmp_path):
    script = REPO / "scripts" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    proc = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == ["gpu_check: no CUDA GPU visible to torch here; this check needs one (the CPU "
                                        "test suite covers the rest)"]
    assert not (tmp_path / "out").exists()
