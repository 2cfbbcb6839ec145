"""ASQU and its relatives (train_gpt.py's MODEL section): identities, float64 gradient checks, the beta gradient."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import train_gpt as tg

C = 12


def asqu_reference(h: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The definition, written independently with where(): h^2 for h > 0, beta_c h^2 otherwise."""
    return torch.where(h > 0, h * h, beta * h * h)


def asqu(h, beta, scale=1.0):
    return tg.AsquFunction.apply(h, beta, scale)


@pytest.fixture
def h():
    torch.manual_seed(0)
    x = torch.randn(3, 5, C, dtype=torch.float64)
    x[0, 0, :3] = 0.0  # exact zeros take the negative branch (h <= 0)
    return x


def test_beta_zero_is_relu2(h):
    assert torch.equal(asqu(h, torch.zeros(C, dtype=h.dtype)), torch.relu(h).square())


def test_beta_s_squared_is_leaky2(h):
    for s in (0.5, 0.3):
        beta = torch.full((C,), s * s, dtype=h.dtype)
        torch.testing.assert_close(asqu(h, beta), F.leaky_relu(h, s).square(), rtol=1e-12, atol=0)


def test_default_init_starts_at_leaky2_half(monkeypatch):
    for k in list(tg.os.environ):
        if k in ("MLP_ACTIVATION", "ASQU_BETA_INIT", "ASQU_SIGMOID_BETA"):
            monkeypatch.delenv(k)
    args = tg.Hyperparameters()
    assert args.mlp_activation == "asqu"
    mod = tg.ASQU(C, args.asqu_beta_init, args.asqu_sigmoid_beta)
    x = torch.randn(4, C)
    torch.testing.assert_close(mod(x), F.leaky_relu(x, 0.5).square())


def test_forward_matches_definition_per_channel(h):
    beta = torch.linspace(-0.7, 1.6, C, dtype=h.dtype)  # negative and > 1 betas occur in training
    torch.testing.assert_close(asqu(h, beta), asqu_reference(h, beta), rtol=1e-12, atol=0)


def test_gradcheck_float64_including_beta(h):
    beta = torch.linspace(-0.5, 1.2, C, dtype=torch.float64)
    h = h.clone().requires_grad_()
    beta.requires_grad_()
    # gradcheck needs points away from the kink at 0
    with torch.no_grad():
        h[h.abs() < 1e-3] = 0.5
    assert torch.autograd.gradcheck(lambda a, b: asqu(a, b), (h, beta), eps=1e-6, atol=1e-7)


def test_gradients_equal_closed_form(h):
    beta = torch.linspace(-0.5, 1.2, C, dtype=torch.float64, requires_grad=True)
    h = h.clone().requires_grad_()
    g = torch.randn_like(h)
    (asqu(h, beta) * g).sum().backward()
    neg = h.detach() <= 0
    hd = h.detach()
    torch.testing.assert_close(h.grad, torch.where(neg, 2 * beta.detach() * hd, 2 * hd) * g)
    torch.testing.assert_close(beta.grad, (g * hd * hd * neg).sum(dim=(0, 1)))


def test_matches_autograd_of_reference(h):
    beta = torch.linspace(-0.5, 1.2, C, dtype=torch.float64)
    g = torch.randn_like(h)
    grads = []
    for fn in (asqu, asqu_reference):
        hh, bb = h.clone().requires_grad_(), beta.clone().requires_grad_()
        (fn(hh, bb) * g).sum().backward()
        grads.append((hh.grad, bb.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_beta_grad_scale_k_and_skip(h):
    beta = torch.full((C,), 0.25, dtype=torch.float64)
    g = torch.randn_like(h)
    out = {}
    for scale in (1.0, 4.0, 0.0):
        hh, bb = h.clone().requires_grad_(), beta.clone().requires_grad_()
        (asqu(hh, bb, scale) * g).sum().backward()
        out[scale] = (hh.grad, bb.grad)
    assert torch.equal(out[1.0][0], out[4.0][0]) and torch.equal(out[1.0][0], out[0.0][0])  # dh unaffected
    torch.testing.assert_close(out[4.0][1], 4 * out[1.0][1])
    assert torch.equal(out[0.0][1], torch.zeros(C, dtype=torch.float64))


def test_beta_stays_fp32_and_grad_accumulates_in_fp32():
    beta = torch.nn.Parameter(torch.full((C,), 0.25))
    h = torch.randn(64, C, dtype=torch.bfloat16, requires_grad=True)
    y = asqu(h, beta)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert beta.grad.dtype == torch.float32 and h.grad.dtype == torch.bfloat16
    expect = (h.detach().float().clamp(max=0) ** 2).sum(0)
    torch.testing.assert_close(beta.grad, expect, rtol=2e-2, atol=1e-2)


def test_sigmoid_beta_parameterisation():
    mod = tg.ASQU(C, 0.25, sigmoid_beta=True)
    torch.testing.assert_close(mod.effective_beta(), torch.full((C,), 0.25))
    x = torch.randn(8, C, dtype=torch.float32)
    torch.testing.assert_close(mod(x), F.leaky_relu(x, 0.5).square())
    mod(x).sum().backward()
    # chain rule through the sigmoid: d beta_eff / d param = b (1 - b)
    expect = (x.clamp(max=0) ** 2).sum(0) * 0.25 * 0.75
    torch.testing.assert_close(mod.beta.grad, expect)


def test_mlp_activation_switch(monkeypatch):
    monkeypatch.setenv("MODEL_DIM", "64")
    monkeypatch.setenv("NUM_HEADS", "4")
    monkeypatch.setenv("NUM_KV_HEADS", "2")
    x = torch.randn(2, 3, 64)
    outs = {}
    for act in ("relu2", "leaky2", "asqu"):
        monkeypatch.setenv("MLP_ACTIVATION", act)
        torch.manual_seed(0)
        mlp = tg.MLP(64, 128, tg.Hyperparameters())
        torch.nn.init.normal_(mlp.proj.weight)
        outs[act] = mlp(x)
    torch.testing.assert_close(outs["asqu"], outs["leaky2"])  # beta 0.25 = leaky2(0.5)
    assert not torch.allclose(outs["relu2"], outs["leaky2"])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_beta_grad_every_k_micro_steps(monkeypatch, k):
    """Accumulating 4 micro-batches as the training loop does: beta's gradient is k times the sum over
    micro-steps 0, k, 2k, ...; every other parameter's gradient is untouched; k = 1 is the plain gradient."""
    monkeypatch.setenv("MLP_ACTIVATION", "asqu")
    monkeypatch.setenv("ASQU_BETA_GRAD_EVERY", str(k))
    args = tg.Hyperparameters()
    torch.manual_seed(0)
    mlp = tg.MLP(16, 32, args)
    torch.nn.init.normal_(mlp.proj.weight)
    batches = [torch.randn(3, 5, 16) for _ in range(4)]
    per_batch = []
    for x in batches:
        mlp.zero_grad()
        mlp(x).square().sum().backward()
        per_batch.append({n: p.grad.clone() for n, p in mlp.named_parameters()})
    mlp.zero_grad()
    for i, x in enumerate(batches):
        mlp(x, beta_grad_every=k if i % k == 0 else 0).square().sum().backward()  # the training loop's rule
    plain = [b["asqu.beta"] for b in per_batch]  # beta_grad_every=1 (the default): the plain gradient
    expect_beta = k * sum(plain[i] for i in range(0, 4, k))
    torch.testing.assert_close(mlp.asqu.beta.grad, expect_beta)
    for name in ("fc.weight", "proj.weight"):
        torch.testing.assert_close(dict(mlp.named_parameters())[name].grad, sum(b[name] for b in per_batch))
    if k == 1:  # exactly the plain autograd gradient of the definition
        ref = mlp.asqu.beta.detach().clone().requires_grad_()
        total = 0
        for x in batches:
            h = mlp.fc(x).detach()
            total = total + mlp.proj(torch.where(h > 0, h * h, ref * h * h)).square().sum()
        total.backward()
        torch.testing.assert_close(mlp.asqu.beta.grad, ref.grad, rtol=1e-5, atol=1e-4)


class Cubic2(tg.Activation):
    """A throwaway fourth activation: f(h) = h^2 (h > 0), gamma_c h^2 (h <= 0) with gamma through tanh, its own
    per-channel parameter. Everything it needs is this class and one table entry."""
    settings = ("MLP_LEAKY_SLOPE",)

    def __init__(self, hidden: int):
        super().__init__()
        self.gamma = torch.nn.Parameter(torch.full((hidden,), 0.1))

    @classmethod
    def from_args(cls, args, hidden):
        return cls(hidden)

    per_channel = 1
    group = ("SCALAR_LR", "ASQU_WD")  # settings of its own AdamW group: here, two existing ones

    def diagnostics(self) -> str:
        return f"gamma_mean:{torch.tanh(self.gamma).mean().item():.4f}"

    def forward(self, h, beta_grad_every=1):
        return torch.where(h > 0, h * h, torch.tanh(self.gamma) * h * h)


def test_a_fourth_activation_is_one_class_and_one_table_entry(monkeypatch):
    monkeypatch.setitem(tg.ACTIVATIONS, "cubic2", Cubic2)
    env = {"MLP_ACTIVATION": "cubic2", "NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
           "MLP_MULT": "2", "ROPE_DIMS": "8", "VOCAB_SIZE": "64", "BIGRAM_VOCAB_SIZE": "32", "BIGRAM_DIM": "16",
           "VE_DIM": "16", "XSA_LAST_N": "1"}
    args = tg.Hyperparameters(env)
    model = tg.GPT(args)
    names = {n for n, _ in model.named_parameters() if ".mlp.cubic2." in n}
    assert names == {"blocks.0.mlp.cubic2.gamma", "blocks.1.mlp.cubic2.gamma"}
    assert tg.parameter_count(args) == sum(p.numel() for p in model.parameters())
    assert all(tg.is_control(n) for n in names)  # fp32, never quantized
    rt = tg.Runtime(0, 1, 0, False, torch.device("cpu"), False, False)
    opts = tg.build_optimizers(model, args, rt)
    assert opts["cubic2"].param_groups[0]["lr"] == args.scalar_lr and len(opts["cubic2"].param_groups[0]["params"]) == 2
    ids = torch.randint(0, 64, (2, 16))
    model(ids, ids).backward()
    assert model.blocks[1].mlp.cubic2.gamma.grad is not None
    lines = []
    tg.log_activation_diagnostics(model, lines.append)
    assert lines == [f"cubic2_diag layer:{i} gamma_mean:0.0997" for i in range(2)]
    payload, _ = tg.quantize_state_dict(model.state_dict(), [1.0], 1.0)
    assert payload["meta"]["blocks.0.mlp.cubic2.gamma"]["kind"] == "fp32"
    assert Cubic2.summary(args) == "mlp_activation:cubic2 mlp_leaky_slope:0.5"
    assert tg.Hyperparameters({}).mlp_activation == "asqu"  # the table's other entries untouched
