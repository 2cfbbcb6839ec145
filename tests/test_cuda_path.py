"""The record's CUDA path rehearsed on CPU (issue 9): late QAT and ASQU_BETA_GRAD_EVERY without recompiles
under torch.compile, CPU_BF16=1 (bf16 autocast and the record's bf16 parameter layout), and both
FlashAttention call paths driven through stand-in modules."""
from __future__ import annotations

import re
import sys
import textwrap

import pytest
import torch

import train_gpt as tg
from conftest import REPO, TINY_ENV

sys.path.insert(0, str(REPO / "tools"))
import runlog  # noqa: E402

CPU = torch.device("cpu")


def tiny_args(**env) -> tg.Hyperparameters:
    return tg.Hyperparameters({**TINY_ENV, "NUM_LAYERS": "2", "VE_LAYERS": "1", "XSA_LAST_N": "1",
                               **{k: str(v) for k, v in env.items()}})


def tiny_model(args) -> tg.GPT:
    torch.manual_seed(0)
    model = tg.GPT(args)
    with torch.no_grad():  # non-zero projections, so every path carries gradient
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.normal_(0, 0.02)
    return model


def loss_and_grads(model, m, ids, tgt, **kw):
    model.zero_grad(set_to_none=True)
    loss = m(ids, tgt, **kw)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compiled_qat_and_beta_grad_switches_match_eager_without_recompiles():
    args = tiny_args(MLP_ACTIVATION="asqu", ASQU_BETA_GRAD_EVERY=2)
    model = tiny_model(args)
    ids, tgt = torch.randint(0, 1024, (2, 64)), torch.randint(0, 1024, (2, 64))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)
    variants = [(q, b) for q in (False, True) for b in (2, 0)]
    for qat, every in variants:  # the warm-up: every variant the timed loop uses, once
        loss_and_grads(model, compiled, ids, tgt, qat=qat, beta_grad_every=every)
    graphs = tg.compiled_graphs()
    assert graphs >= 1
    losses = {}
    for qat, every in variants + variants[::-1]:  # switching back and forth: no new graph
        c_loss, c_grads = loss_and_grads(model, compiled, ids, tgt, qat=qat, beta_grad_every=every)
        e_loss, e_grads = loss_and_grads(model, model, ids, tgt, qat=qat, beta_grad_every=every)
        torch.testing.assert_close(c_loss, e_loss, rtol=1e-5, atol=1e-5)
        for n in e_grads:
            if qat:  # a fake-quantized weight near a rounding boundary may round the other way: compare by norm
                assert (c_grads[n] - e_grads[n]).norm() <= 0.05 * e_grads[n].norm() + 1e-6, n
            else:
                torch.testing.assert_close(c_grads[n], e_grads[n], rtol=1e-3, atol=1e-6, msg=n)
        beta = c_grads["blocks.0.mlp.asqu.beta"]
        assert (beta.abs().sum() > 0) == (every > 0)  # skipped micro-steps give a zero beta gradient
        losses[qat] = c_loss.item()
    assert tg.compiled_graphs() == graphs
    assert abs(losses[True] - losses[False]) > 1e-4  # QAT really runs in the compiled graph (tolerance above: 1e-5)


def test_bf16_layout_is_the_records():
    args = tiny_args(MLP_ACTIVATION="asqu")
    rt = tg.Runtime(0, 1, 0, False, CPU, True, False)
    torch.manual_seed(3)
    fp32 = tg.GPT(args)
    torch.manual_seed(3)
    model = tg.build_model(args, rt)
    for (name, p), (_, ref) in zip(model.named_parameters(), fp32.named_parameters()):
        if name.endswith("embed.weight") or name == "tok_emb.weight":
            assert p.dtype == torch.bfloat16, name
        else:
            assert p.dtype == torch.float32, name
        assert torch.equal(p.float(), ref.bfloat16().float()), name  # values rounded through bf16 at creation
    assert torch.equal(model.blocks[0].mlp.asqu.beta, torch.full((128,), 0.25))  # beta = 0.25 survives bf16 exactly


@pytest.mark.parametrize("act", ["relu2", "leaky2", "asqu"])
def test_cpu_bf16_two_processes_compiled_end_to_end(run_train, tmp_path, act):
    # 2 layers (one XSA, one value-embedding layer): half the graph to compile of TINY_ENV's 4
    proc = run_train(nproc=2, timeout=900, CPU_BF16=1, COMPILE=1, MLP_ACTIVATION=act, RUN_ID="bf", ITERATIONS=3,
                     VAL_LOSS_EVERY=0, WARMUP_STEPS=2, LATE_QAT_THRESHOLD=0.5, EVAL_STRIDE=96, NUM_LAYERS=2,
                     VE_LAYERS=1, XSA_LAST_N=1)
    log = (tmp_path / "logs/bf.txt").read_text()
    assert re.search(r"^device:cpu dtype:bfloat16 attention:sdpa compile:1 mlp_kernel:torch$", log, re.M)
    run = runlog.parse_text(log)  # the tools' one reader follows the trainer's lines
    assert (run.device, run.dtype, run.compile, run.mlp_kernel) == ("cpu", "bfloat16", 1, "torch")
    assert run.late_qat_step == int(re.search(r"^late_qat:enabled step:(\d+) ", log, re.M).group(1))
    assert run.peak_allocated_mib is None and run.finished  # peak memory: CUDA only
    assert re.search(r"^recompiles_after_warmup:0$", log, re.M), log[-3000:]
    assert re.search(r"^warmup_done time:\d+ms graphs:[1-9]\d*$", log, re.M)
    assert re.search(r"^final_int6_sliding_window_exact val_loss:\d+\.\d{8} val_bpb:\d+\.\d{8}$", log, re.M)
    raw = torch.load(tmp_path / "runs/bf/final_model.pt")
    assert raw["tok_emb.weight"].dtype == torch.bfloat16 and raw["blocks.0.mlp.fc.weight"].dtype == torch.float32
    deq = tg.load_artifact((tmp_path / "final_model.int6.ptz").read_bytes(), "final_model.int6.ptz")[0]
    betas = [k for k in raw if k.endswith("asqu.beta")]
    assert bool(betas) == (act == "asqu")
    for k in betas:
        assert raw[k].dtype == torch.float32 and torch.equal(deq[k], raw[k])  # bit-exact through the artifact
    assert "Traceback" not in proc.stderr


STANDINS = {
    "flash_attn_interface.py": '''
        import torch.nn.functional as F

        def flash_attn_func(q, k, v, causal=False, softmax_scale=None):
            """FlashAttention 3's call: (B, T, H, D) tensors, GQA by head count; returns (out, lse)."""
            rep = q.size(2) // k.size(2)
            k, v = k.repeat_interleave(rep, 2), v.repeat_interleave(rep, 2)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
            return out.transpose(1, 2), None
    ''',
    "flash_attn/__init__.py": '''
        import torch.nn.functional as F

        __version__ = "2.6.3"

        def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False):
            """FlashAttention 2's call: (B, T, H, D) tensors, GQA by head count; returns out."""
            rep = q.size(2) // k.size(2)
            k, v = k.repeat_interleave(rep, 2), v.repeat_interleave(rep, 2)
            return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                  is_causal=causal).transpose(1, 2)
    ''',
}


@pytest.fixture
def standins(tmp_path, monkeypatch):
    for name, src in STANDINS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(src))
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("flash_attn_interface", "flash_attn"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    return tmp_path


@pytest.mark.parametrize("backend", ["flash_attn_3", "flash_attn_2"])
def test_named_flash_attention_backends_compile_and_match_sdpa(standins, backend):
    args = tiny_args(MLP_ACTIVATION="asqu")
    model = tiny_model(args)
    ids, tgt = torch.randint(0, 1024, (2, 64)), torch.randint(0, 1024, (2, 64))
    assert tg.pick_attention_backend("sdpa", CPU) == tg.AttentionKernel("sdpa", None)
    ref_loss, ref_grads = loss_and_grads(model, model, ids, tgt)
    kernel = tg.pick_attention_backend(backend, CPU)
    assert kernel.name == backend and kernel.flash.__module__.startswith("flash_attn")
    for block in model.blocks:  # the same weights on the stand-in FlashAttention
        block.attn.kernel = kernel
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)
    loss, grads = loss_and_grads(model, compiled, ids, tgt)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for n in ref_grads:
        torch.testing.assert_close(grads[n], ref_grads[n], rtol=1e-3, atol=1e-6, msg=n)
    torch._dynamo.reset()


def test_auto_is_sdpa_on_cpu_and_missing_backends_are_errors(standins, monkeypatch):
    assert tg.pick_attention_backend("auto", CPU) == tg.AttentionKernel("sdpa", None)
    (standins / "flash_attn/__init__.py").write_text('__version__ = "2.5.9"\ndef flash_attn_func(*a, **k): pass\n')
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    with pytest.raises(tg.ConfigError, match=r"ATTENTION=flash_attn_2 but flash_attn >= 2\.6 cannot be imported"):
        tg.pick_attention_backend("flash_attn_2", CPU)
    (standins / "flash_attn_interface.py").unlink()
    monkeypatch.delitem(sys.modules, "flash_attn_interface", raising=False)
    with pytest.raises(tg.ConfigError, match=r"ATTENTION=flash_attn_3 but flash_attn_interface"):
        tg.pick_attention_backend("flash_attn_3", CPU)


def test_auto_on_cuda_without_flash_attention_warns(standins, monkeypatch):
    (standins / "flash_attn_interface.py").unlink()
    (standins / "flash_attn/__init__.py").unlink()
    for mod in ("flash_attn_interface", "flash_attn"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    cuda = torch.device("cuda", 0)
    kernel = tg.pick_attention_backend("auto", cuda)
    assert kernel == tg.AttentionKernel("sdpa", None)
    assert tg.attention_warning(tg.Runtime(0, 1, 0, False, CPU, False, False, attention=kernel)) is None
    warning = tg.attention_warning(tg.Runtime(0, 1, 0, False, cuda, True, True, attention=kernel))
    assert warning.startswith("WARNING: attention runs on PyTorch SDPA")
    assert "FlashAttention 3" in warning


def test_named_backend_runs_end_to_end(run_train, tmp_path, standins):
    proc = run_train(PYTHONPATH=str(standins), ATTENTION="flash_attn_3", RUN_ID="fa3", ITERATIONS=2, EVAL_STRIDE=0)
    assert "device:cpu dtype:float32 attention:flash_attn_3 compile:0" in (tmp_path / "logs/fa3.txt").read_text()
    assert "final_int6_roundtrip_exact" in proc.stdout
