"""torch.compile(fullgraph=True) on CPU: the whole model traces without graph breaks for every activation,
and the compiled forward and backward (including ASQU's beta gradient) agree with eager."""
from __future__ import annotations

import pytest
import torch

from test_cuda_path import tiny_args, tiny_model


@pytest.mark.parametrize("act", ["relu2", "leaky2", "asqu"])
def test_whole_model_compiles_fullgraph_and_matches_eager(act):
    model = tiny_model(tiny_args(MLP_ACTIVATION=act))  # non-zero projections: every path carries gradient
    ids = torch.randint(0, 1024, (2, 64))
    tgt = torch.randint(0, 1024, (2, 64))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, dynamic=False)  # fullgraph: any graph break raises

    def run(m):
        model.zero_grad(set_to_none=True)
        loss = m(ids, tgt)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager_loss, eager_grads = run(model)
    comp_loss, comp_grads = run(compiled)
    torch.testing.assert_close(comp_loss, eager_loss, rtol=1e-5, atol=1e-5)
    assert eager_grads.keys() == comp_grads.keys()
    for n in eager_grads:
        torch.testing.assert_close(comp_grads[n], eager_grads[n], rtol=1e-3, atol=1e-6, msg=n)
    if act == "asqu":
        assert eager_grads["blocks.0.mlp.asqu.beta"].abs().sum() > 0
    with torch.no_grad():  # the logits path used by the sliding-window eval compiles too
        torch.testing.assert_close(compiled(ids), model(ids), rtol=1e-4, atol=1e-4)
