"""ASQU's cost against relu2: the activation alone, and whole training steps of train_gpt.py.

  python3 scripts/bench_asqu.py activation                   # fwd + bwd of the activation, eager and compiled
  python3 scripts/bench_asqu.py step                         # whole steps (Trainer.step), eager and COMPILE=1
  python3 scripts/bench_asqu.py step --mode compiled --rounds 7
  python3 scripts/bench_asqu.py step --default-config        # the record's model (meant for a GPU)
  python3 scripts/bench_asqu.py all

Variants are interleaved round by round (order rotated every round), so machine noise hits them alike; the step
benchmark builds and compiles every variant's model (train_gpt.py's build_trainer and warm_up) in this process
before timing anything. Ratios are taken within a round and printed, like absolute times, as the median with
the min and max over rounds, under a header with the date, torch version, device and threads. Whole-step goals
(asqu / relu2): eager <= 1.25, compiled <= 1.03 ("goal not met" where the median misses one). CPU timings on a
shared machine are noisy: quote medians of at least 5 rounds with their spread.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train_gpt as tg  # noqa: E402
from configs import named_config  # noqa: E402

DEFAULT_ROUNDS = 5
STEP_GOALS = {"eager": 1.25, "compiled": 1.03}  # whole-step asqu / relu2
ACTIVATION_GOAL = 1.05  # the activation alone, asqu / relu2, both on the Triton kernels


# ----- statistics and reporting (shared with bench_export_eval.py) -------------------

def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of a non-empty list (statistics.median raises a ValueError on an empty one)."""
    return statistics.median(values), min(values), max(values)


def per_round_ratios(num: list[float], den: list[float]) -> list[float]:
    """num[r] / den[r] for every round r (both measured in the same round); a ValueError on unequal rounds."""
    return [a / b for a, b in zip(num, den, strict=True)]


def fmt_spread(values: list[float], fmt: str = "{:.3f}") -> str:
    """'median [min .., max ..]'."""
    med, lo, hi = spread(values)
    return f"{fmt.format(med)} [min {fmt.format(lo)}, max {fmt.format(hi)}]"


def goal_verdict(ratios: list[float], goal: float) -> str:
    """Plain words on a ratio goal (<= goal), judged by the median over rounds."""
    med, _, hi = spread(ratios)
    if med > goal:
        return f"goal not met (goal <= {goal:.2f}, median {med:.3f})"
    if hi > goal:
        return f"goal <= {goal:.2f} met by the median, not in every round (max {hi:.3f})"
    return f"goal <= {goal:.2f} met in every round"


def rotated(items: list, round_index: int) -> list:
    """The items in the order for one round: rotated by the round number."""
    k = round_index % len(items) if items else 0
    return items[k:] + items[:k]


def interleaved(rounds: int, variants: list, measure) -> dict:
    """{variant: [measure(variant), one a round]}: every round measures every variant, in rotated order."""
    results = {v: [] for v in variants}
    for r in range(rounds):
        for v in rotated(variants, r):
            results[v].append(measure(v))
    return results


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(0)})"
    try:
        names = re.findall(r"^model name[^:]*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        names = []
    return f"cpu ({names[0].strip() if names else platform.processor() or platform.machine()})"


def header(title: str, rounds: int, device: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    lines = [
        f"# {title}",
        f"# date {now}; torch {torch.__version__}; python {platform.python_version()}",
        f"# device {device_description(device)}; threads: torch {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS {omp}, cpu_count {os.cpu_count()}",
        f"# {rounds} round(s), variants interleaved round by round; figures: median [min, max] over rounds",
    ]
    if rounds < DEFAULT_ROUNDS:
        lines.append(f"# NOTE: fewer than {DEFAULT_ROUNDS} rounds: a smoke run, not figures to quote")
    return "\n".join(lines)


# ----- the activation alone ---------------------------------------------------------

def activation_fns(slope: float = 0.5, triton: bool = False) -> dict:
    fns = {
        "relu2": lambda h, b: torch.relu(h).square(),
        "leaky2": lambda h, b: F.leaky_relu(h, slope).square(),
        "asqu_naive": lambda h, b: torch.where(h > 0, h * h, b.to(h.dtype) * h * h),  # the seed PR's style
        "asqu": lambda h, b: tg.AsquFunction.apply(h, b, 1.0),
        "asqu_beta_frozen": lambda h, b: tg.AsquFunction.apply(h, b.detach(), 1.0),
    }
    if triton:  # train_gpt.py's MLP_KERNEL=triton custom ops
        fns.update({
            "relu2_triton": lambda h, b: tg.squared_act(h, None, 0.0, 0.0),
            "leaky2_triton": lambda h, b: tg.squared_act(h, None, slope * slope, 0.0),
            "asqu_triton": lambda h, b: tg.squared_act(h, b, 0.0, 1.0),
        })
    return fns


def time_fn(fn, h, beta, g, iters: int) -> float:
    """Seconds per forward + backward, after 2 untimed calls (which compile on first use)."""
    def calls(n: int) -> None:
        for _ in range(n):
            h.grad = beta.grad = None
            fn(h, beta).backward(g)
        tg.sync(h.device)

    calls(2)
    t0 = time.perf_counter()
    calls(iters)
    return (time.perf_counter() - t0) / iters


def bench_activation(device: str, tokens: int, hidden: int, dtype: torch.dtype, rounds: int, iters: int) -> None:
    h = torch.randn(tokens, hidden, device=device, dtype=dtype, requires_grad=True)
    beta = torch.full((hidden,), 0.25, device=device, requires_grad=True)
    g = torch.randn_like(h)
    triton = device == "cuda" and tg.triton is not None
    if not triton:
        print("# Triton variants left out: they need a CUDA GPU and the triton package (on CPU Triton only interprets)")
    eager = activation_fns(triton=triton)
    fns = {("eager", k): f for k, f in eager.items()}
    fns.update({("compiled", k): torch.compile(f, fullgraph=True, dynamic=False) for k, f in eager.items()})
    times = interleaved(rounds, list(fns), lambda key: time_fn(fns[key], h, beta, g, iters))
    dt = str(dtype).removeprefix("torch.")
    for mode in ("eager", "compiled"):
        print(f"\nactivation fwd+bwd, {mode}, {device} {dt}, {tokens}x{hidden}, {iters} calls per round:")
        base = times[(mode, "relu2")]
        for name in eager:
            t = [x * 1e3 for x in times[(mode, name)]]
            ratio = per_round_ratios(times[(mode, name)], base)
            print(f"  {name:17s} {fmt_spread(t)} ms   {name}/relu2 x{fmt_spread(ratio)}")
        for name in (n for n in eager if n.endswith("_triton")):
            torch_name = name.removesuffix("_triton")
            ratio = per_round_ratios(times[(mode, name)], times[(mode, torch_name)])
            print(f"  {name:17s} / {torch_name} (torch) x{fmt_spread(ratio)}")
        if "asqu_triton" in eager:
            ratio = per_round_ratios(times[(mode, "asqu_triton")], times[(mode, "relu2_triton")])
            print(f"  asqu_triton / relu2_triton x{fmt_spread(ratio)}: "
                  f"{goal_verdict(ratio, ACTIVATION_GOAL)} (goal of issue 20, compiled)")


# ----- whole training steps ----------------------------------------------------------

STEP_ENV = named_config("mlp_heavy")
RECORD_ENV = {  # the record's model (minus data-dependent settings): meant for a GPU
    "MODEL_DIM": "512", "MLP_MULT": "3", "NUM_LAYERS": "11", "NUM_HEADS": "8", "NUM_KV_HEADS": "4",
    "TRAIN_SEQ_LEN": "2048", "EVAL_SEQ_LEN": "2048", "TRAIN_BATCH_TOKENS": "786432", "XSA_LAST_N": "4",
    "VE_LAYERS": "9,10", "VE_DIM": "128", "BIGRAM_VOCAB_SIZE": "2048", "BIGRAM_DIM": "128",
}


def build_trainer(act: str, compiled: bool, warmup: int, data: dict, extra: dict):
    """train_gpt.py's own Trainer for one variant, built and warmed up as a run builds it (every graph compiled)."""
    env = dict(STEP_ENV, **extra, MLP_ACTIVATION=act, COMPILE=str(int(compiled)), WARMUP_STEPS=str(warmup),
               DATA_PATH=data["data_path"], TOKENIZER_PATH=data["tokenizer"], MLP_KERNEL="torch")
    args = tg.Hyperparameters(env)
    rt = tg.runtime_from_env(args)
    tg.check_fits(args, rt)
    tg.init_distributed(rt, args.dist_timeout_s)
    files = sorted(Path(data["data_path"]).glob("fineweb_train_*.bin"))
    tr = tg.build_trainer(args, rt, files)
    tg.warm_up(tr, files, lambda line: None)
    tr.steps_done = 0
    return tr


def time_steps(tr, steps: int) -> float:
    """ms per optimizer step over `steps` steps of the trainer (the timed loop's own Trainer.step)."""
    tg.sync(tr.rt.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.step(tr.steps_done, 1.0, qat=False)
        tr.steps_done += 1
    tg.sync(tr.rt.device)
    return 1000.0 * (time.perf_counter() - t0) / steps


def sample_data() -> dict:
    sys.path.insert(0, str(REPO / "data"))
    from build_sample import build_sample, existing_shards

    root = Path(tempfile.gettempdir()) / "asqu_golf_bench_sample"
    if not existing_shards(root / "ds"):
        build_sample(root / "ds", root / "tok", vocab_size=1024)
    return {"data_path": str(root / "ds"), "tokenizer": str(root / "tok" / "sample_1024_bpe.model")}


def bench_steps(rounds: int, steps: int, modes: list[str], extra: dict, config_name: str) -> None:
    """Every variant's model lives in this process, compiled before any timing; each round times `steps` steps
    of every variant in turn (order rotated), so machine noise and clock drift hit them alike. MLP_KERNEL is torch:
    scripts/gpu_preflight.py measures the kernels against each other."""
    data = sample_data()
    variants = [(mode, act) for mode in modes for act in ("relu2", "asqu")]
    trainers = {(mode, act): build_trainer(act, mode == "compiled", 3 if mode == "compiled" else 1, data, extra)
                for mode, act in variants}
    graphs = tg.compiled_graphs()
    times = interleaved(rounds, variants, lambda v: time_steps(trainers[v], steps))
    if tg.compiled_graphs() != graphs:  # a graph compiled inside a timed block: its times are not step times
        print(f"WARNING: {tg.compiled_graphs() - graphs} graph(s) compiled during the timed steps")
    print(f"\ntrain_gpt.py Trainer.step, {config_name} model, {steps} steps per variant per round, in one process, "
          f"sample data; config {' '.join(f'{k}={v}' for k, v in {**STEP_ENV, **extra}.items())}")
    for mode in modes:
        label = "COMPILE=1" if mode == "compiled" else "eager"
        relu, asqu = times[(mode, "relu2")], times[(mode, "asqu")]
        ratio = per_round_ratios(asqu, relu)
        print(f"  {label:9s} MLP_KERNEL=torch  relu2 {fmt_spread(relu, '{:.2f}')} ms/step   "
              f"asqu {fmt_spread(asqu, '{:.2f}')} ms/step")
        print(f"  {label:9s} MLP_KERNEL=torch  asqu/relu2 x{fmt_spread(ratio)}: "
              f"{goal_verdict(ratio, STEP_GOALS[mode])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["activation", "step", "all"])
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds (default {DEFAULT_ROUNDS})")
    p.add_argument("--mode", choices=["eager", "compiled", "both"], default="both", help="step benchmark modes")
    p.add_argument("--steps", type=int, default=10, help="steps per variant per round (step benchmark)")
    p.add_argument("--tokens", type=int, default=16384, help="rows of the activation benchmark's input")
    p.add_argument("--hidden", type=int, default=1024, help="columns of the activation benchmark's input")
    p.add_argument("--iters", type=int, default=20, help="calls per round (activation benchmark)")
    p.add_argument("--default-config", action="store_true",
                   help="step benchmark with the record's default model instead of the MLP-heavy small one (GPU)")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.steps < 1 or a.iters < 1:
        p.error("--rounds, --steps and --iters must be >= 1")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(header(f"scripts/bench_asqu.py {' '.join(sys.argv[1:] if argv is None else argv)}", a.rounds, device))
    try:
        if a.what in ("activation", "all"):
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            bench_activation(device, a.tokens, a.hidden, dtype, a.rounds, a.iters)
        if a.what in ("step", "all"):
            modes = ["eager", "compiled"] if a.mode == "both" else [a.mode]
            extra, name = (RECORD_ENV, "record-size") if a.default_config else ({}, "MLP-heavy small")
            bench_steps(a.rounds, a.steps, modes, extra, name)
    except tg.ConfigError as exc:  # a setting train_gpt.py refuses
        print(f"bench_asqu: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
