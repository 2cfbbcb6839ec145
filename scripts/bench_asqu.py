"""Benchmarks for ASQU's cost (issue: ASQU at no throughput cost). Prints ratios measured in one run.

  python3 scripts/bench_asqu.py activation   # the activation alone, forward + backward, eager and compiled
  python3 scripts/bench_asqu.py step         # whole training steps of train_gpt.py, relu2 vs asqu
  python3 scripts/bench_asqu.py all

Implementations are interleaved round by round so that machine noise hits all of them alike; each
figure is the median over rounds, and ratios are against relu2 measured in the same rounds.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train_gpt as tg  # noqa: E402


def naive_asqu(h, beta):
    """The straightforward formulation (the seed PR's style): where() under plain autograd."""
    return torch.where(h > 0, h * h, beta.to(h.dtype) * h * h)


def activation_fns(slope: float = 0.5):
    return {
        "relu2": lambda h, b: torch.relu(h).square(),
        "leaky2": lambda h, b: F.leaky_relu(h, slope).square(),
        "asqu_naive": naive_asqu,
        "asqu": lambda h, b: tg.AsquFunction.apply(h, b, 1.0),
        "asqu_beta_frozen": lambda h, b: tg.AsquFunction.apply(h, b.detach(), 1.0),
    }


def time_fn(fn, h, beta, g, iters: int) -> float:
    for _ in range(2):
        h.grad = beta.grad = None
        fn(h, beta).backward(g)
    t0 = time.perf_counter()
    for _ in range(iters):
        h.grad = beta.grad = None
        fn(h, beta).backward(g)
    if h.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def bench_activation(device: str, tokens: int, hidden: int, dtype: torch.dtype, rounds: int, iters: int) -> None:
    h = torch.randn(tokens, hidden, device=device, dtype=dtype, requires_grad=True)
    beta = torch.full((hidden,), 0.25, device=device, requires_grad=True)
    g = torch.randn_like(h)
    for mode in ("eager", "compiled"):
        fns = activation_fns()
        if mode == "compiled":
            fns = {k: torch.compile(f, fullgraph=True, dynamic=False) for k, f in fns.items()}
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, f in fns.items():
                times[k].append(time_fn(f, h, beta, g, iters))
        base = statistics.median(times["relu2"])
        print(f"activation fwd+bwd {mode:8s} {device} {str(dtype).removeprefix('torch.')} ({tokens}x{hidden}):")
        for k, t in times.items():
            print(f"  {k:18s} {statistics.median(t) * 1e3:8.3f} ms   x{statistics.median(t) / base:.3f} vs relu2")


STEP_ENV = {  # the MLP-heavy small model: the MLP dominates, so ASQU's cost is exposed
    "MODEL_DIM": "64", "MLP_MULT": "16", "NUM_LAYERS": "4", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "ROPE_DIMS": "16",
    "TRAIN_SEQ_LEN": "256", "EVAL_SEQ_LEN": "256", "TRAIN_BATCH_TOKENS": "16384", "XSA_LAST_N": "2", "VE_LAYERS": "2,3",
    "VE_DIM": "32", "BIGRAM_VOCAB_SIZE": "256", "BIGRAM_DIM": "32", "VAL_LOSS_EVERY": "0", "EVAL_STRIDE": "0",
    "MAX_WALLCLOCK_SECONDS": "0", "TRAIN_LOG_EVERY": "1000", "LATE_QAT_THRESHOLD": "0",
}


def run_steps(act: str, compile_: bool, steps: int, warmup: int, data: dict, extra: dict) -> float:
    env = dict(os.environ, **STEP_ENV, **extra, MLP_ACTIVATION=act, COMPILE=str(int(compile_)), ITERATIONS=str(steps),
               WARMUP_STEPS=str(warmup), DATA_PATH=data["data_path"], TOKENIZER_PATH=data["tokenizer"], RUN_ID="bench")
    with tempfile.TemporaryDirectory() as cwd:
        out = subprocess.run([sys.executable, str(REPO / "train_gpt.py")], cwd=cwd, env=env, capture_output=True,
                             text=True, check=True).stdout
    return float(re.findall(rf"^step:{steps}/{steps} val_loss:\S+ val_bpb:\S+ train_time:\d+ms step_avg:(\S+)ms$",
                            out, re.M)[-1])


def bench_steps(rounds: int, steps: int, extra: dict) -> None:
    sys.path.insert(0, str(REPO / "data"))
    from build_sample import build_sample, existing_shards

    root = Path(tempfile.gettempdir()) / "asqu_golf_bench_sample"
    if not existing_shards(root / "ds"):
        build_sample(root / "ds", root / "tok", vocab_size=1024)
    data = {"data_path": str(root / "ds"), "tokenizer": str(root / "tok" / "sample_1024_bpe.model")}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for compile_ in (False, True):
        warmup = 3 if compile_ else 1
        times = {"relu2": [], "asqu": []}
        for _ in range(rounds):
            for act in times:
                times[act].append(run_steps(act, compile_, steps, warmup, data, extra))
        r, a = statistics.median(times["relu2"]), statistics.median(times["asqu"])
        mode = "COMPILE=1" if compile_ else "eager"
        print(f"train step {mode:9s} {device}: relu2 {r:.2f} ms  asqu {a:.2f} ms  asqu/relu2 x{a / r:.3f}  "
              f"(median of {rounds} interleaved runs of {steps} steps; config {extra or 'MLP-heavy small'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["activation", "step", "all"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20, help="training steps per run (step benchmark)")
    p.add_argument("--tokens", type=int, default=16384, help="rows of the activation benchmark's input")
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--default-config", action="store_true",
                   help="step benchmark with the record's default model instead of the MLP-heavy small one (GPU)")
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.what in ("activation", "all"):
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        bench_activation(device, a.tokens, a.hidden, dtype, a.rounds, iters=20)
    if a.what in ("step", "all"):
        extra = {}
        if a.default_config:  # the record's model (minus data-dependent settings): meant for a GPU
            extra = {"MODEL_DIM": "512", "MLP_MULT": "3", "NUM_LAYERS": "11", "NUM_HEADS": "8", "NUM_KV_HEADS": "4",
                     "TRAIN_SEQ_LEN": "2048", "EVAL_SEQ_LEN": "2048", "TRAIN_BATCH_TOKENS": "786432",
                     "XSA_LAST_N": "4", "VE_LAYERS": "9,10", "VE_DIM": "128", "BIGRAM_VOCAB_SIZE": "2048",
                     "BIGRAM_DIM": "128"}
        bench_steps(a.rounds, a.steps, extra)

if __name__ == "__main__":
    main()
