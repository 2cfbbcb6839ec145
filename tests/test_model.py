"""The model (train_gpt.py's MODEL section): parameter counts, state-dict names, init, components, optimiser groups."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import train_gpt as tg

RT = tg.Runtime(0, 1, 0, False, torch.device("cpu"), False, False)

RECORD_PARAMS = 26_993_756
HIDDEN, LAYERS = 1536, 11


@pytest.fixture
def default_env(monkeypatch):
    for k in list(tg.os.environ):
        if k.isupper() and k not in ("PATH", "HOME") and hasattr(tg.Hyperparameters(), k.lower()):
            monkeypatch.delenv(k)
    return monkeypatch


def make(monkeypatch, **env):
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    args = tg.Hyperparameters()
    torch.manual_seed(0)
    return args, tg.GPT(args)


@pytest.mark.parametrize("act,extra", [("relu2", 0), ("leaky2", 0), ("leaky_relu2", 0), ("asqu", LAYERS * HIDDEN)])
def test_parameter_count_by_activation(default_env, act, extra):
    _, model = make(default_env, MLP_ACTIVATION=act)
    assert sum(p.numel() for p in model.parameters()) == RECORD_PARAMS + extra


def test_record_state_dict_names_and_shapes(default_env):
    _, model = make(default_env, MLP_ACTIVATION="relu2")
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expect = {
        "tok_emb.weight": (1024, 512), "bigram.scale": (), "bigram.embed.weight": (2048, 128),
        "bigram.proj.weight": (512, 128), "smear.gate": (512,), "skip_weights": (5, 512),
        "ve_shared.scale": (), "ve_shared.embed.weight": (1024, 128), "ve_shared.proj.weight": (256, 128),
        "ve_layer_scales.0": (1,), "ve_layer_scales.1": (1,),
    }
    for i in range(LAYERS):
        expect.update({
            f"blocks.{i}.attn_scale": (512,), f"blocks.{i}.mlp_scale": (512,), f"blocks.{i}.resid_mix": (2, 512),
            f"blocks.{i}.attn.q_gain": (8,), f"blocks.{i}.attn.c_q.weight": (512, 512),
            f"blocks.{i}.attn.c_k.weight": (256, 512), f"blocks.{i}.attn.c_v.weight": (256, 512),
            f"blocks.{i}.attn.proj.weight": (512, 512), f"blocks.{i}.mlp.fc.weight": (1536, 512),
            f"blocks.{i}.mlp.proj.weight": (512, 1536),
        })
    assert sd == expect


def test_asqu_adds_only_beta_and_checkpoints_interchange(default_env):
    _, relu = make(default_env, MLP_ACTIVATION="relu2")
    _, leaky = make(default_env, MLP_ACTIVATION="leaky2")
    args, asqu = make(default_env, MLP_ACTIVATION="asqu")
    extra = set(asqu.state_dict()) - set(relu.state_dict())
    assert extra == {f"blocks.{i}.mlp.asqu.beta" for i in range(LAYERS)}
    assert all(asqu.state_dict()[k].dtype == torch.float32 and torch.all(asqu.state_dict()[k] == 0.25) for k in extra)
    leaky.load_state_dict(relu.state_dict(), strict=True)  # relu2 <-> leaky2 checkpoints load strictly


def test_init_rules(default_env):
    args, model = make(default_env, MLP_ACTIVATION="relu2")
    sd = model.state_dict()
    for i in range(LAYERS):
        assert torch.count_nonzero(sd[f"blocks.{i}.attn.proj.weight"]) == 0
        assert torch.count_nonzero(sd[f"blocks.{i}.mlp.proj.weight"]) == 0
        w = sd[f"blocks.{i}.attn.c_q.weight"]
        torch.testing.assert_close(w @ w.T, torch.eye(512), atol=1e-4, rtol=0)  # orthogonal
    w = sd["bigram.proj.weight"]  # (512, 128): orthonormal columns scaled by 1/sqrt(2L)
    torch.testing.assert_close(w.T @ w, torch.eye(128) / (2 * LAYERS), atol=1e-5, rtol=0)
    assert abs(sd["tok_emb.weight"].std().item() - 0.005) < 2e-4
    assert torch.count_nonzero(sd["bigram.embed.weight"]) == 0
    assert sd["bigram.scale"].item() == pytest.approx(0.05) and sd["ve_shared.scale"].item() == pytest.approx(0.1)
    assert torch.all(sd["blocks.0.attn.q_gain"] == 1.5)
    assert torch.all(sd["blocks.3.resid_mix"][0] == 1) and torch.all(sd["blocks.3.resid_mix"][1] == 0)


def test_bigram_hash_buckets():
    big = tg.BigramHash(2048, 8, 16)
    ids = torch.tensor([[5, 900, 3, 1023]])
    got = big.bucket_ids(ids)[0].tolist()
    prev, cur = [5, 900, 3], [900, 3, 1023]
    assert got == [2047] + [((36313 * c) ^ (27191 * p)) % 2047 for c, p in zip(cur, prev)]


def test_smear_gate_mixes_previous_position():
    sg = tg.SmearGate(4)
    with torch.no_grad():
        sg.gate.fill_(math.log(3))  # sigmoid = 0.75
    x = torch.randn(1, 3, 4)
    y = sg(x)
    torch.testing.assert_close(y[:, 0], 0.25 * x[:, 0])
    torch.testing.assert_close(y[:, 2], 0.25 * x[:, 2] + 0.75 * x[:, 1])


def test_partial_rope_rotates_only_first_dims_and_ntk_scales():
    cos, sin = tg.rotary_tables(16, 8, 10000.0, torch.device("cpu"))
    x = torch.randn(1, 16, 2, 32)
    y = tg.apply_rotary(x, cos, sin)
    assert torch.equal(y[..., 8:], x[..., 8:])
    torch.testing.assert_close(y[..., :8].norm(dim=-1), x[..., :8].norm(dim=-1))  # a rotation
    torch.testing.assert_close(y[:, 0], x[:, 0])  # position 0 is unrotated
    # beyond 1024 tokens the base becomes base * (T/1024)^(r/(r-2))
    c2, _ = tg.rotary_tables(2048, 16, 10000.0, torch.device("cpu"))
    base = 10000.0 * 2.0 ** (16 / 14)
    inv = 1.0 / base ** (torch.arange(0, 16, 2).float() / 16)
    torch.testing.assert_close(c2[0, 5, 0], torch.cos(5 * inv))


def test_xsa_output_orthogonal_to_own_value(monkeypatch):
    attn = tg.CausalSelfAttention(64, 4, 2, 1.5, xsa=True)
    torch.nn.init.eye_(attn.proj.weight)
    captured = {}
    orig = attn.kernel

    def spy(q, k, v):
        captured["v"] = v
        return orig(q, k, v)

    attn.kernel = spy
    cos, sin = tg.rotary_tables(6, 16, 10000.0, torch.device("cpu"))
    y = attn(torch.randn(2, 6, 64), cos, sin, None).reshape(2, 6, 2, 2, 16)
    vn = F.normalize(captured["v"], dim=-1).unsqueeze(-2)
    assert (y * vn).sum(-1).abs().max() < 1e-5


def test_sdpa_gqa_equals_repeated_heads(monkeypatch):
    """SDPA's enable_gqa (PyTorch >= 2.5, required) matches K/V repeated per query group (PR #1133's crash)."""
    q, k, v = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 2, 8), torch.randn(2, 5, 2, 8)
    q_, k_, v_ = (t.transpose(1, 2) for t in (q, k.repeat_interleave(2, 2), v.repeat_interleave(2, 2)))
    expect = F.scaled_dot_product_attention(q_, k_, v_, is_causal=True).transpose(1, 2)
    torch.testing.assert_close(tg.AttentionKernel("sdpa")(q, k, v), expect)


def test_optimizer_groups(default_env):
    args, model = make(default_env, MLP_ACTIVATION="asqu", ASQU_WD="0.01")
    groups = tg.param_groups(model)
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # each parameter exactly once
    names = {id(p): n for n, p in model.named_parameters()}
    asqu_names = {names[id(p)] for p in groups["asqu"]}
    assert asqu_names == {f"blocks.{i}.mlp.asqu.beta" for i in range(LAYERS)}
    muon = {names[id(p)] for p in groups["muon"]}
    assert "bigram.proj.weight" in muon and "ve_shared.proj.weight" in muon and len(muon) == 6 * LAYERS + 2
    assert {names[id(p)] for p in groups["embed"]} == {"tok_emb.weight", "bigram.embed.weight", "ve_shared.embed.weight"}
    assert "blocks.0.resid_mix" in {names[id(p)] for p in groups["scalar"]}
    opts = tg.build_optimizers(model, args, RT)
    beta_opt = [o for o in opts.values() if any(id(p) in set(map(id, groups["asqu"])) for g in o.param_groups for p in g["params"])]
    assert len(beta_opt) == 1 and len(beta_opt[0].param_groups) == 1
    g = beta_opt[0].param_groups[0]
    assert g["lr"] == 0.001 and g["base_lr"] == 0.001 and g["weight_decay"] == 0.01
    muon_opt = opts["muon"]
    assert isinstance(muon_opt, tg.Muon) and beta_opt[0] is opts["asqu"]
    assert muon_opt.param_groups[0]["lr"] == 0.025 and muon_opt.param_groups[0]["weight_decay"] == 0.04


def test_asqu_weight_decay_default_zero(default_env):
    args, model = make(default_env)
    opts = tg.build_optimizers(model, args, RT)
    assert opts["asqu"].param_groups[0]["weight_decay"] == 0.0 and args.asqu_wd == 0.0


def test_lr_schedule_fixed_and_wallclock(default_env):
    args, _ = make(default_env, MAX_WALLCLOCK_SECONDS=0, ITERATIONS=100, WARMDOWN_ITERS=40)
    assert tg.lr_scale(args, 50, 0) == 1.0 and tg.lr_scale(args, 80, 0) == pytest.approx(0.5)
    args, _ = make(default_env, ITERATIONS=2000, WARMDOWN_ITERS=3500)  # the seed's debug runs decayed from step 0
    assert tg.lr_scale(args, 0, 0) == pytest.approx(2000 / 3500)
    args, _ = make(default_env, MAX_WALLCLOCK_SECONDS=600, WARMDOWN_ITERS=3500, ITERATIONS=20000)
    # 100 ms/step: warmdown covers the last 350 s
    assert tg.lr_scale(args, 2000, 200_000) == 1.0
    assert tg.lr_scale(args, 4250, 425_000) == pytest.approx(175 / 350)


def test_muon_orthogonalizes_with_its_own_function():
    """Muon calls the Newton-Schulz it was given (build_optimizers: the compiled one under COMPILE=1); nothing
    rebinds the module's function."""
    p = torch.nn.Parameter(torch.randn(8, 4))
    p.grad = torch.randn(8, 4)
    calls = []

    def orthogonalize(G, steps):
        calls.append(steps)
        return tg.zeropower_via_newtonschulz5(G, steps)

    tg.Muon([p], lr=0.1, momentum=0.9, backend_steps=3, weight_decay=0.0, orthogonalize=orthogonalize).step()
    assert calls == [3]
    args = tg.Hyperparameters({"NUM_LAYERS": "2", "MODEL_DIM": "64", "ROPE_DIMS": "8", "XSA_LAST_N": "1"})
    assert tg.build_optimizers(tg.GPT(args), args, RT)["muon"].orthogonalize is tg.zeropower_via_newtonschulz5


def test_no_global_statement_in_the_trainer():
    """State lives in objects (Muon, CastedLinear, the runtime's AttentionKernel, ExitContext), not module globals."""
    source = Path(tg.__file__).read_text()
    assert not re.findall(r"^\s*global ", source, re.M)
