#!/usr/bin/env python3
"""GPU preflight: the first ten minutes on a rented node, before the record run costs money.

  python3 scripts/gpu_preflight.py                 # on the GPU node, from anywhere
  python3 scripts/gpu_preflight.py --cpu           # smoke-test this script on a CPU machine (small model)

It prints what the 8-GPU run depends on, runs a short 1-GPU compiled training of the default model per activation
and MLP_KERNEL (torch, triton), as many at once as the node has GPUs (--steps after --warmup, WARMDOWN_ITERS half
the steps so late QAT switches on in the timed loop, export, int6 roundtrip, a coarse sliding eval) in a temporary
folder, kept with --keep or when a run failed, and reports what the logs say (README.md, "GPU preflight"), and per
activation the faster kernel of those that give the torch path's results (LOSS_RTOL, OP_RTOL): in the report,
--json and, on a GPU, train_gpt.py's KERNEL_CHOICE_FILE (for MLP_KERNEL=auto). Its last line is `GO` or `NO-GO:
<reasons>` (exit status 0 / 1). Your shell's train_gpt.py variables are ignored; --set NAME=VALUE changes one for
every run. Data: --data-path / --tokenizer-path, else DATA_PATH / TOKENIZER_PATH, else train_gpt.py's defaults,
else the offline sample (data/build_sample.py; val_bpb means nothing there).

--cpu: the same on CPU with configs/cpu_small.env on the offline sample, eager unless --compile, Triton in its
interpreter, ending `CPU-SMOKE-OK (...)` or `CPU-SMOKE-FAILED: <reason>`. Without --cpu and without CUDA it stops
after the environment with `NO-GO: no CUDA device`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools")]
import runlog  # noqa: E402  the one reader of log lines
from configs import named_config  # noqa: E402
TRAIN_SCRIPT = REPO / "train_gpt.py"
SIZE_LIMIT = runlog.trainer_constant("SIZE_LIMIT")
# FlashAttention 3 is not on the package registry; the records install this Hopper wheel (CUDA 12.8, PyTorch 2.9.1)
FA3_WHEELS = "https://windreamer.github.io/flash-attention3-wheels/"
FA3_INSTALL = f"pip install --no-deps flash_attn_3 --find-links {FA3_WHEELS}cu128_torch291/"
DEFAULT_DATA, DEFAULT_TOKENIZER = runlog.trainer_constant("DATA_PATH"), runlog.trainer_constant("TOKENIZER_PATH")
SAMPLE_DATA = REPO / "data" / "datasets" / "sample_sp1024"
SAMPLE_TOKENIZER = REPO / "data" / "tokenizers" / "sample_1024_bpe.model"

# Variables a launcher may leave behind that would make train_gpt.py think it runs under torchrun.
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                 "MASTER_PORT", "TORCHELASTIC_RUN_ID")
KERNELS = ("torch", "triton")  # MLP_KERNEL values measured per activation; torch is the reference
# A Triton kernel is chosen only when it gives the torch path's results. The same seed's train losses: bf16 keeps 8
# significant bits (0.4% per rounding) and the two paths round in other places, so within 1% at every timed step.
LOSS_RTOL = 0.01
# The activation alone (the record's per-GPU micro-batch, 98,304 x 1,536 bf16): output, dh and asqu's dbeta (fp32
# sums) each within 1% of the torch path's largest value (a wrong branch or channel is off by ~100%).
OP_RTOL = 0.01
RUNNING: set[subprocess.Popen] = set()  # the runs in progress: stopped when the preflight ends early


# ----- 1. Environment ------------------------------------------------------------------------------------------------

def _module(name: str):
    """(the module, None), or (None, the first line of what importing it raised)."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from a mismatched CUDA build
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0][:160]


def check_environment() -> dict:
    """What the record run depends on. Every import is guarded: a broken install is reported, not raised."""
    env: dict = {"python": sys.version.split()[0]}
    try:
        import torch
        import torch.distributed as dist
    except Exception as exc:  # noqa: BLE001 - report whatever a broken install raises
        return {**env, "torch": None, "torch_error": f"{type(exc).__name__}: {exc}", "cuda_available": False}
    cuda = bool(torch.cuda.is_available())
    env.update(torch=torch.__version__, torch_cuda_build=torch.version.cuda, cuda_available=cuda)
    devices = map(torch.cuda.get_device_properties, range(torch.cuda.device_count() if cuda else 0))
    env["gpus"] = [{"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_mib": p.total_memory // 2**20}
                   for p in devices]
    if cuda:
        env["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    env["nccl_available"] = bool(dist.is_available() and dist.is_nccl_available())
    env["nccl_version"] = None
    if env["nccl_available"] and cuda:
        try:
            v = torch.cuda.nccl.version()
            env["nccl_version"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception as exc:  # noqa: BLE001
            env["nccl_version"] = f"unknown ({type(exc).__name__})"
    fa3, env["fa3_error"] = _module("flash_attn_interface")  # FlashAttention 3 (Hopper): train_gpt.py's first choice
    env["fa3"] = "available" if hasattr(fa3, "flash_attn_func") else None
    if fa3 and not env["fa3"]:
        env["fa3_error"] = "flash_attn_interface has no flash_attn_func"
    fa2, env["fa2_error"] = _module("flash_attn")  # FlashAttention 2: train_gpt.py uses it from 2.6 on
    env["fa2"] = getattr(fa2, "__version__", "unknown") if fa2 else None
    fa2_version = tuple(map(int, re.findall(r"\d+", env["fa2"] or "")[:2]))
    env["fa2_usable"] = hasattr(fa2, "flash_attn_func") and fa2_version >= (2, 6)
    for name in ("triton", "zstandard", "brotli"):
        env[name] = getattr(_module(name)[0], "__version__", None)
    return env


def expected_attention(env: dict) -> str:
    """The backend train_gpt.py's ATTENTION=auto should pick on this machine."""
    cuda = env.get("cuda_available")
    return "flash_attn_3" if cuda and env.get("fa3") else "flash_attn_2" if cuda and env.get("fa2_usable") else "sdpa"


def format_environment(env: dict) -> list[str]:
    rows = {"python": env["python"]}
    if env.get("torch") is None:
        rows["torch"] = f"NOT IMPORTABLE ({env.get('torch_error')})"
        return [f"  {name:<18}{value}" for name, value in rows.items()]
    gpus = env["gpus"] if env["cuda_available"] else []
    fa2 = f"flash_attn {env.get('fa2')}" + ("" if env.get("fa2_usable") else " (too old: train_gpt.py needs >= 2.6)")
    rows.update({
        "torch": f"{env['torch']} (CUDA build: {env.get('torch_cuda_build') or 'none, CPU-only'})",
        "CUDA devices": f"{len(gpus)} x {', '.join(sorted({g['name'] for g in gpus}))} (capability "
                        f"{', '.join(sorted({g['capability'] for g in gpus}))}, {min(g['memory_mib'] for g in gpus)} "
                        f"MiB each); bf16: {'yes' if env.get('bf16_supported') else 'NO'}"
                        if gpus else "none (torch.cuda.is_available() is False)",
        "NCCL": ("available" if env.get("nccl_available") else "NOT available")
                + (f" (version {env['nccl_version']})" if env.get("nccl_version") else ""),
        "FlashAttention 3": "flash_attn_interface importable" if env.get("fa3")
                            else f"not importable ({env.get('fa3_error', '?')})",
        "FlashAttention 2": fa2 if env.get("fa2") else f"not importable ({env.get('fa2_error', '?')})",
        "triton": env.get("triton") or "not installed",
        # EXPORT_COMPRESSOR=auto keeps the smallest of zstd, brotli, lzma
        **{name: env.get(name) or "NOT installed (auto cannot try it: a larger artifact?)"
           for name in ("zstandard", "brotli")},
        "attention (auto)": expected_attention(env),
    })
    return [f"  {name:<18}{value}" for name, value in rows.items()]


# ----- 2. What a log says: tools/runlog.py reads it (the only reader of log lines) ----------------------------------

@dataclass
class LogFacts:
    """A run's log as runlog reads it, and the step times the preflight derives from it."""

    run: runlog.RunLog = field(default_factory=lambda: runlog.RunLog(path=Path("<none>")))

    @property
    def step_deltas(self) -> list[tuple[int, float]]:
        """(step, ms) for every timed step: train_time deltas between consecutive train lines, per step."""
        points = sorted({p.step: p.train_time_ms for p in self.run.train_points}.items())
        pairs = zip([(0, 0.0), *points], points)
        return [(step, (ms - prev_ms) / (step - prev)) for (prev, prev_ms), (step, ms) in pairs if step > prev]

    @property
    def step_spread(self) -> tuple[float, float, float] | None:
        """(median, min, max) ms of the timed steps."""
        deltas = [d for _, d in self.step_deltas]
        return (statistics.median(deltas), min(deltas), max(deltas)) if deltas else None

    @property
    def steady_step_ms(self) -> float | None:
        return self.step_spread[0] if self.step_spread else None

    @property
    def slowest_step(self) -> tuple[int, float] | None:
        return max(self.step_deltas, key=lambda x: x[1], default=None)


def parse_log(text: str, path: str | Path = "<text>") -> LogFacts:
    """A train_gpt.py log (file or console), read by runlog after its header: the source dump never counts."""
    return LogFacts(run=runlog.parse_text(text, path))


# ----- 3. Runs -------------------------------------------------------------------------------------------------------

@dataclass
class RunResult:
    activation: str
    run_id: str
    workdir: Path
    returncode: int | None = None  # None = did not finish (timeout)
    wall_s: float = 0.0
    log_path: Path | None = None
    console_path: Path | None = None
    facts: LogFacts = field(default_factory=LogFacts)
    tail: list[str] = field(default_factory=list)  # last console lines, for a failed run
    timed_out: bool = False

    def failure(self) -> str | None:
        """Why this run does not count as finished, or None."""
        if self.timed_out:
            return f"{self.activation} run timed out after {self.wall_s:.0f}s"
        if self.returncode != 0:
            err = next((t for t in reversed(self.tail) if re.match(r"error:|[\w.]*(Error|Exception): ", t)), None)
            return f"{self.activation} run failed (exit {self.returncode})" + (f": {err}" if err else "")
        missing = ([] if self.log_path else ["log file"]) + self.facts.run.missing_final  # runlog decides "finished"
        if missing:
            return f"{self.activation} run log lacks {', '.join(missing)}"
        return None


def child_env(base: dict, overrides: dict, cpu: bool) -> tuple[dict, list[str]]:
    """The run's environment: the caller's minus train_gpt.py's settings (its Hyperparameters table: so the default
    config runs) and launcher variables, plus overrides. Returns (env, names of the caller's variables dropped)."""
    import train_gpt

    names = {v[0] for v in train_gpt.Hyperparameters.variables()}
    env = {k: v for k, v in base.items() if k not in names and k not in LAUNCHER_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(overrides)
    dropped = sorted(k for k in base if k in names and k not in LAUNCHER_VARS and env.get(k) != base[k])
    return env, dropped


_ECHO = re.compile(r"^(warmup_done|recompiles_after_warmup|late_qat|device:|peak memory|Total submission|"
                   r"final_int6_roundtrip |final_int6_sliding_window |DIAGNOSTIC|WARNING|error:|interrupted:|"
                   r"Traceback|\w*Error)")
_STEP = re.compile(r"^step:(\d+)/(\d+) ")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the run and its compile workers: the process group this script started for it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_training(activation: str, workdir: Path, env: dict, timeout_s: float, echo=print) -> RunResult:
    """Run train_gpt.py once (1 process) in workdir; stream its console to workdir/console.txt."""
    run_id = env["RUN_ID"]
    workdir.mkdir(parents=True, exist_ok=True)
    res = RunResult(activation=activation, run_id=run_id, workdir=workdir, console_path=workdir / "console.txt")
    t0 = time.perf_counter()
    with open(res.console_path, "w", encoding="utf-8") as console:
        proc = subprocess.Popen([sys.executable, str(TRAIN_SCRIPT)], cwd=workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        RUNNING.add(proc)

        def pump():
            for line in proc.stdout:
                console.write(line)
                console.flush()
                s = line.rstrip()
                res.tail = (res.tail + [s])[-40:]
                m = _STEP.match(s)
                if _ECHO.match(s) or (m and (int(m.group(1)) % 10 == 0 or m.group(1) == m.group(2))):
                    echo(f"    [{activation}] {s}")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            res.timed_out = True
            _stop(proc)
        RUNNING.discard(proc)
        reader.join(timeout=10)
    res.wall_s = time.perf_counter() - t0
    res.returncode = None if res.timed_out else proc.returncode
    log = workdir / "logs" / f"{run_id}.txt"
    res.log_path = log if log.is_file() else None
    # no log file (a config error before the logger): what the console said
    source = res.log_path or res.console_path
    res.facts = parse_log(source.read_text(encoding="utf-8", errors="replace"), source)
    return res


def resolve_data(args, cpu: bool, tmp: Path, notes: list[str]) -> tuple[Path, Path]:
    """(data_path, tokenizer_path), absolute. May build the offline sample inside tmp."""

    def absolute(p: str) -> Path:
        path = Path(p).expanduser()
        if path.is_absolute():
            return path
        here = Path.cwd() / path
        return (here if here.exists() or not (REPO / path).exists() else REPO / path).resolve()

    explicit_data = args.data_path or (None if cpu else os.environ.get("DATA_PATH"))
    explicit_tok = args.tokenizer_path or (None if cpu else os.environ.get("TOKENIZER_PATH"))
    data, tok = absolute(explicit_data or DEFAULT_DATA), absolute(explicit_tok or DEFAULT_TOKENIZER)
    if explicit_data or explicit_tok:
        return data, tok
    if not cpu:
        if any(data.glob("fineweb_val_*.bin")) and any(data.glob("fineweb_train_*.bin")) and tok.is_file():
            return data, tok
        notes.append(f"FineWeb data not found at {data}: using the offline sample; val_bpb is not comparable "
                     "(get the data with: python3 data/cached_challenge_fineweb.py --variant sp1024)")
    if any(SAMPLE_DATA.glob("fineweb_val_*.bin")) and SAMPLE_TOKENIZER.is_file():
        return SAMPLE_DATA, SAMPLE_TOKENIZER
    sys.path.insert(0, str(REPO / "data"))
    from build_sample import build_sample  # noqa: E402 - the repository's own builder

    info = build_sample(tmp / "sample" / "ds", tmp / "sample" / "tok", vocab_size=1024)
    notes.append(f"built the offline sample in {tmp / 'sample'} (data/build_sample.py)")
    return Path(info["out_dir"]).resolve(), Path(info["tokenizer"]).resolve()


def run_overrides(args, activation: str, kernel: str, data: Path, tok: Path, cpu: bool, stamp: str) -> dict:
    o = {
        "MLP_ACTIVATION": activation, "MLP_KERNEL": kernel, "RUN_ID": f"preflight_{activation}_{kernel}_{stamp}",
        "DATA_PATH": str(data), "TOKENIZER_PATH": str(tok),
        "ITERATIONS": str(args.steps), "WARMUP_STEPS": str(args.warmup), "MAX_WALLCLOCK_SECONDS": "0",
        "WARMDOWN_ITERS": str(max(1, args.steps // 2)), "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1",
        "EVAL_STRIDE": str(args.eval_stride),
    }
    if cpu:
        o.update(named_config("cpu_small"))
    o["COMPILE"] = "1" if args.compile or not cpu else "0"
    o["EMA_DECAY"] = f"{max(0.0, 1 - 4 / args.steps):.4g}"  # an EMA these few steps fill: no "short for" warning
    o.update(item.split("=", 1) for item in args.set)
    return o


def run_all(args, data: Path, tok: Path, tmp: Path, gpus: list[str], notes: list[str]) -> dict[str, RunResult]:
    """Every activation x kernel, labelled `act` (torch) or `act/triton`: one run per free GPU at once (one at a time
    on CPU), in the order activation by activation. Ctrl-C or an error stops the runs in progress."""
    stamp, free = time.strftime("%Y%m%d-%H%M%S"), list(gpus)
    variants = [(act, kernel) for act in args.activations for kernel in KERNELS]

    def run(variant: tuple[str, str]) -> RunResult:
        act, kernel = variant
        gpu, name = free.pop(0), label(act, kernel)
        overrides = run_overrides(args, act, kernel, data, tok, args.cpu, stamp)
        cenv, dropped = child_env(dict(os.environ), {**overrides, "CUDA_VISIBLE_DEVICES": gpu}, args.cpu)
        if dropped and variant == variants[0]:
            notes.append(f"ignored from your environment (default config): {' '.join(dropped)}")
        shown = " ".join(f"{k}={v}" for k, v in overrides.items() if k not in ("DATA_PATH", "TOKENIZER_PATH"))
        print(f"run {name}{f' on GPU {gpu}' if gpu else ''}: {shown}", flush=True)
        try:
            return run_training(name, tmp / name.replace("/", "_"), cenv, args.timeout)
        finally:
            free.append(gpu)

    pool = ThreadPoolExecutor(max(1, len(gpus)))
    try:
        return {label(*v): res for v, res in zip(variants, pool.map(run, variants))}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(RUNNING):
            _stop(proc)


def label(activation: str, kernel: str) -> str:
    return activation if kernel == "torch" else f"{activation}/{kernel}"


# ----- 4. Kernel choice ----------------------------------------------------------------------------------------------

def kernel_op_errors(activations: list[str], cpu: bool) -> dict[str, str]:
    """Per activation whose Triton kernel differs here from the torch path by more than OP_RTOL (output, dh, asqu's
    dbeta), or could not run: why, in one line. On a GPU: the record's per-GPU micro-batch in bf16 on its first GPU;
    on CPU (the interpreter): a small fp32 one."""
    import torch
    import train_gpt as tg

    device, dtype, shape = ("cpu", torch.float32, (1024, 160)) if cpu else ("cuda", torch.bfloat16, (98304, 1536))
    gen = torch.Generator(device).manual_seed(0)
    h, g = (torch.randn(shape, generator=gen, device=device).to(dtype) for _ in range(2))
    errors = {}
    for act in activations:
        try:
            grads = []
            for kernel in KERNELS:
                module = tg.ACTIVATIONS[act].from_args(tg.Hyperparameters({"MLP_ACTIVATION": act}), shape[1])
                module.triton_kernel, x = kernel == "triton", h.clone().requires_grad_()
                y = module.to(device)(x)
                y.backward(g)
                grads.append([y, x.grad, *(q.grad for q in module.parameters())])
            for name, ref, got in zip(("output", "dh", "dbeta"), *grads):
                err = ((got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30)).item()
                if not err <= OP_RTOL:
                    errors[act] = f"its {name} differs from the torch path's by {err:.2%} of the largest value " \
                                  f"(tolerance {OP_RTOL:.0%})"
        except Exception as exc:  # noqa: BLE001 - a kernel that does not compile or run here is not chosen
            errors[act] = f"the kernel check failed: {type(exc).__name__}: {exc}".splitlines()[0][:200]
    return errors


def triton_problem(ref: RunResult, run: RunResult | None, op_error: str | None, cpu: bool) -> str | None:
    """Why this Triton run's kernel cannot be chosen, or None."""
    if run is None or run.failure() or ref.failure():
        return "not measured" if run is None else run.failure() or f"no torch run to check it against ({ref.failure()})"
    if op_error:
        return op_error
    if run.facts.run.recompiles_after_warmup and not cpu:
        return f"{run.facts.run.recompiles_after_warmup} recompile(s) after warm-up"
    torch_loss = {p.step: p.train_loss for p in ref.facts.run.train_points}
    gaps = [(abs(p.train_loss - torch_loss[p.step]) / abs(torch_loss[p.step]), p.step)
            for p in run.facts.run.train_points if p.step in torch_loss]
    worst = max(((gap if gap == gap else float("inf"), step) for gap, step in gaps), default=(float("inf"), None))
    if worst[0] > LOSS_RTOL:  # a nan loss counts as infinitely far
        return (f"train loss at step {worst[1]} differs from the torch run's by {worst[0]:.2%} (tolerance "
                f"{LOSS_RTOL:.0%})" if worst[1] else "no train losses to compare with the torch run's")
    return None


def choose_kernels(results: dict[str, RunResult], op_errors: dict[str, str], cpu: bool) -> dict[str, dict]:
    """Per activation: each kernel's step time (median, min, max ms; None without one), the kernel chosen (the faster
    of torch and a Triton kernel that agrees with it) and why Triton was not chosen (None when it was, or slower)."""
    choice = {}
    for act in dict.fromkeys(name.split("/")[0] for name in results):
        ref, tri = results[act], results.get(label(act, "triton"))
        why = triton_problem(ref, tri, op_errors.get(act), cpu)
        ms = {k: r.facts.step_spread if r else None for k, r in (("torch", ref), ("triton", tri))}
        faster = why is None and ms["triton"][0] < ms["torch"][0]
        choice[act] = {"chosen": "triton" if faster else "torch", "torch_ms": ms["torch"], "triton_ms": ms["triton"],
                       "triton_rejected": why}
    return choice


def record_choice(path: Path, gpu: str, choice: dict[str, dict]) -> None:
    """Merge `GPU name/activation=kernel` lines into train_gpt.py's KERNEL_CHOICE_FILE (other GPUs' lines kept)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept = [ln for ln in lines if ln.rsplit("=", 1)[0] not in {f"{gpu}/{act}" for act in choice}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ln}\n" for ln in kept + [f"{gpu}/{a}={c['chosen']}" for a, c in choice.items()]))


# ----- 5. Verdict ----------------------------------------------------------------------------------------------------

def step_ratio(results: dict[str, RunResult]) -> float | None:
    """asqu / relu2 steady step time, when both ran and have step times."""
    a, r = results.get("asqu"), results.get("relu2")
    if not a or not r or a.facts.steady_step_ms is None or not r.facts.steady_step_ms:
        return None
    return a.facts.steady_step_ms / r.facts.steady_step_ms


def spike(f: LogFacts) -> tuple[int, float, float] | None:
    """(step, ms, median) of a timed step far slower than the rest (a recompile's signature), else None."""
    med, slow = f.steady_step_ms, f.slowest_step
    if med is None or slow is None or len(f.step_deltas) < 3:
        return None
    return (slow[0], slow[1], med) if slow[1] > max(5 * med, med + 1000.0) else None


def fa3_missing(env: dict) -> str:
    """What is missing for FlashAttention 3, and the command that installs it."""
    why = env.get("fa3_error") or "not importable"
    return (f"FlashAttention 3 (module flash_attn_interface) is missing ({why}); install it with: {FA3_INSTALL} "
            f"(that wheel index is for CUDA 12.8 + PyTorch 2.9.1; this Python has PyTorch {env.get('torch')}: pick "
            f"the folder of {FA3_WHEELS} that matches)")


def verdict(env: dict, results: dict[str, RunResult], cpu: bool, size_limit=SIZE_LIMIT) -> tuple[bool, str, list[str]]:
    """(ok, final line, warnings) on the runs of the chosen kernels. GPU: `GO` or `NO-GO: a; b`. --cpu: CPU-SMOKE-OK /
    CPU-SMOKE-FAILED. Step times are no reason: speed is the campaign's rule (STEP_MARGIN)."""
    reasons, warns = [], []
    log_warnings: dict[str, list[str]] = {}  # a WARNING line of the runs' logs -> the runs that wrote it
    if not cpu:
        if env.get("torch") is None:
            return False, "NO-GO: torch is not importable", warns
        if not env.get("cuda_available"):
            return False, "NO-GO: no CUDA device (torch.cuda.is_available() is False)", warns
        if not env.get("nccl_available"):
            reasons.append("NCCL is not available (the 8-GPU run needs it)")
        n = len(env.get("gpus", []))
        if n < 8:
            warns.append(f"this node has {n} GPU(s); the record run uses 8 (torchrun --nproc_per_node=8)")
        if any("H100" not in g["name"] for g in env.get("gpus", [])):
            warns.append("not an H100: step times are not comparable with the record's 84.56 ms (8xH100)")
        warns += [f"{name} is not installed: EXPORT_COMPRESSOR=auto cannot try it (the artifact may be larger)"
                  for name in ("zstandard", "brotli") if not env.get(name)]
    if not results:
        reasons.append("no training run")
    for act, res in results.items():
        fail = res.failure()
        if fail:
            reasons.append(fail)
            continue
        f, log = res.facts, res.facts.run
        if not cpu:
            if log.attention is None:
                reasons.append(f"{act}: the log has no device/attention line")
            elif log.attention == "sdpa" and (log.device or "").startswith("cuda"):
                reasons.append(f"{act}: attention is sdpa on CUDA: " + (
                    "flash_attn_interface is importable here, so the run chose SDPA (ATTENTION=sdpa?)" if env.get("fa3")
                    else fa3_missing(env)))
            if log.device is not None and not log.device.startswith("cuda"):
                reasons.append(f"{act}: the run used device {log.device}, not CUDA")
            elif log.attention not in (None, expected_attention(env)):
                warns.append(f"{act}: the run used attention {log.attention}; this Python offers "
                             f"{expected_attention(env)}")
        recompiles = log.recompiles_after_warmup
        if recompiles:
            (warns if cpu else reasons).append(f"{act}: {recompiles} recompile(s) after warm-up (compile time inside "
                                               "the clock)")
        if recompiles is None:
            warns.append(f"{act}: recompiles after warm-up unknown (the log has no recompiles_after_warmup line)")
        if sp := spike(f):  # without the recompile line on a GPU, a spike is taken for a recompile
            slow = f"{act}: step {sp[0]} took {sp[1]:.0f} ms against a median of {sp[2]:.0f} ms"
            if recompiles is None and not cpu:
                reasons.append(slow + " (a recompile inside the clock?)")
            else:
                warns.append(slow)
        if log.warmup_ms is None:
            warns.append(f"{act}: compile/warm-up time unknown (the log has no warmup_done line)")
        if log.submission_bytes is not None and log.submission_bytes > size_limit:
            (warns if cpu else reasons).append(f"{act}: artifact {log.submission_bytes:,} bytes > {size_limit:,}")
        if log.compressor == "zlib":
            warns.append(f"{act}: artifact compressed with zlib (zstandard missing in the run's Python)")
        for w in log.warnings:
            log_warnings.setdefault(w, []).append(act)
    warns += [f"{', '.join(acts)} log: {w}" for w, acts in log_warnings.items()]
    if reasons:
        return False, f"{failed_word(cpu)}: " + "; ".join(reasons), warns
    return True, ("CPU-SMOKE-OK (the script and the training path ran on CPU; the GPU checks - attention kernel, "
                  "NCCL, bf16 step time, peak memory - were not possible)" if cpu else "GO"), warns


def failed_word(cpu: bool) -> str:
    return "CPU-SMOKE-FAILED" if cpu else "NO-GO"


# ----- 6. Report ------------------------------------------------------------------------------------------------------

def _ms(v: float | None) -> str:
    return "unknown" if v is None else f"{v:,.0f} ms" if v >= 100 else f"{v:.2f} ms"


def format_runs(results: dict[str, RunResult], cpu: bool) -> list[str]:
    lines = []
    for act, res in results.items():
        f, log = res.facts, res.facts.run
        lines.append(f"  {act}:")
        status = "ok" if res.failure() is None else f"FAILED ({res.failure()})"
        lines.append(f"    run                 {status}; {res.wall_s:.0f} s wall; "
                     f"log {res.log_path or res.console_path}")
        lines.append(f"    device / attention  {log.device or 'unknown'} {log.dtype or ''} "
                     f"attention:{log.attention or 'unknown'} "
                     f"compile:{'unknown' if log.compile is None else log.compile}")
        graphs = "" if log.warmup_graphs is None else f" ({log.warmup_graphs} graphs)"
        lines.append(f"    compile / warm-up   {_ms(log.warmup_ms)}{graphs}")
        slow = f.slowest_step
        slow_s = f"; slowest step {slow[0]}: {_ms(slow[1])}" if slow else ""
        lines.append(f"    steady step time    {_ms(f.steady_step_ms)} (median of {len(f.step_deltas)} steps; "
                     f"last step_avg {_ms(log.step_avg_ms)}{slow_s})")
        recompiles = log.recompiles_after_warmup
        lines.append(f"    recompiles after warm-up  {'unknown' if recompiles is None else recompiles}"
                     + ("" if log.late_qat_step is None else f" (late QAT switched on at step {log.late_qat_step})"))
        peak = (f"{log.peak_allocated_mib:,} MiB allocated, {log.peak_reserved_mib:,} MiB reserved"
                if log.peak_allocated_mib is not None else "n/a on CPU" if cpu else "unknown")
        lines.append(f"    peak memory         {peak}")
        size = "unknown" if log.submission_bytes is None else f"{log.submission_bytes:,} bytes"
        if log.submission_bytes is not None and log.code_bytes is not None:
            size += f" (code {log.packed_code_bytes or log.code_bytes:,} + {log.compressor} {log.serialized_bytes:,})"
        lines.append(f"    artifact            {size} (after {len(f.step_deltas)} steps)")
        rt = "unknown" if log.roundtrip_val_bpb is None else f"{log.roundtrip_val_bpb:.6f}"
        sl = "" if log.sliding_val_bpb is None else f"; sliding {log.sliding_val_bpb:.6f}"
        lines.append(f"    int6 roundtrip val_bpb  {rt}{sl}")
        if res.failure() and res.tail:
            lines.append("    last console lines:")
            lines += [f"      {t}" for t in res.tail[-15:]]
    return lines


def format_choice(choice: dict[str, dict], ratio: float | None, cpu: bool) -> list[str]:
    def spread(ms):
        return "not measured" if not ms else f"{_ms(ms[0])} [{_ms(ms[1])}, {_ms(ms[2])}]"

    lines = [f"kernels (MLP_KERNEL): step time median [min, max] over the timed steps; chosen: the faster of those "
             f"that agree with torch (losses {LOSS_RTOL:.0%}, activation {OP_RTOL:.0%})"]
    lines += [f"  {act:8s} torch {spread(c['torch_ms'])}; triton {spread(c['triton_ms'])}; chosen: {c['chosen']}"
              for act, c in choice.items()]
    lines += [f"  {a}: triton not chosen: {c['triton_rejected']}" for a, c in choice.items() if c["triton_rejected"]]
    if ratio is not None:
        lines.append(f"  asqu/relu2 step time under the chosen kernels: {ratio:.3f} ("
                     + ("meaningless on CPU)" if cpu else "the campaign KILLs at stage 0 above 1 + STEP_MARGIN)"))
    return lines


JSON_FIELDS = ("device", "dtype", "attention", "compile", "mlp_kernel", "warmup_ms", "warmup_graphs",
               "recompiles_after_warmup", "late_qat_step", "peak_allocated_mib", "peak_reserved_mib",
               "submission_bytes", "compressor", "roundtrip_val_bpb", "sliding_val_bpb", "model_params")


def write_json(path: str | None, env: dict, results: dict[str, RunResult], report: dict) -> None:
    """The report as JSON at path (--json): report's items (ok, final, kernels, ...) and every run's figures."""
    if not path:
        return
    runs = {name: {"run_id": res.run_id, "returncode": res.returncode, "timed_out": res.timed_out,
                   "failure": res.failure(), "wall_s": round(res.wall_s, 2),
                   "log": str(res.log_path) if res.log_path else None,
                   **{name: getattr(res.facts.run, name) for name in JSON_FIELDS},
                   "steady_step_ms": res.facts.steady_step_ms, "step_ms_spread": res.facts.step_spread,
                   "timed_steps": len(res.facts.step_deltas), "last_step_avg_ms": res.facts.run.step_avg_ms,
                   "slowest_step": res.facts.slowest_step} for name, res in results.items()}
    Path(path).write_text(json.dumps({"environment": env, "runs": runs, **report}, indent=2))


# ----- main ----------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="smoke-test on CPU with a small configuration (forces CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed training steps per run (default 40; --cpu 20)")
    p.add_argument("--warmup", type=int, default=None, help="WARMUP_STEPS (default 10; --cpu 2)")
    p.add_argument("--activations", default="relu2,leaky2,asqu", help="comma-separated (default relu2,leaky2,asqu)")
    p.add_argument("--eval-stride", type=int, default=None,
                   help="EVAL_STRIDE of the final sliding eval; 0 skips it (default 1024: the path, not the figure; "
                        "--cpu 128)")
    p.add_argument("--compile", action="store_true", help="--cpu: COMPILE=1 (slow on CPU; the GPU runs always compile)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a train_gpt.py variable for every run (repeatable; not MLP_KERNEL: both are measured)")
    p.add_argument("--data-path", help="shard folder (default: DATA_PATH, else ./data/datasets/fineweb10B_sp1024)")
    p.add_argument("--tokenizer-path", help="SentencePiece model (default: TOKENIZER_PATH, else the sp1024 one)")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per run before it is stopped (default 1200)")
    p.add_argument("--workdir",
                   help="make the temporary folder inside this folder, created if missing (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, artifacts)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    a = p.parse_args(argv)
    a.steps = a.steps if a.steps is not None else (20 if a.cpu else 40)
    a.warmup = a.warmup if a.warmup is not None else (2 if a.cpu else 10)
    a.eval_stride = a.eval_stride if a.eval_stride is not None else (128 if a.cpu else 1024)
    a.activations = [x.strip() for x in a.activations.split(",") if x.strip()]
    if a.steps < 1 or a.warmup < 0 or a.eval_stride < 0 or not a.activations:
        p.error("--steps must be >= 1, --warmup and --eval-stride >= 0, --activations not empty")
    for item in a.set:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", item) or item.startswith("MLP_KERNEL="):
            p.error(f"--set {item!r}: expected NAME=VALUE, not MLP_KERNEL (the preflight runs every kernel)")
    if a.json and (Path(a.json).is_dir() or not Path(a.json).resolve().parent.is_dir()):
        p.error(f"--json {a.json}: name a file in an existing folder (the report is written there at the end)")
    if a.workdir and Path(a.workdir).exists() and not Path(a.workdir).is_dir():
        p.error(f"--workdir {a.workdir} is a file; name a folder (created if missing)")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.cpu:  # before train_gpt.py is imported: its Triton kernels then run in the interpreter (and in the runs)
        os.environ.setdefault("TRITON_INTERPRET", "1")
    mode = "CPU smoke test (small configuration)" if args.cpu else "GPU preflight (default configuration, 1 GPU a run)"
    print(f"asqu-golf preflight: {mode}; repository {REPO}")
    env = check_environment()
    print("environment:", *format_environment(env), sep="\n")
    notes: list[str] = []
    if not args.cpu and not env.get("cuda_available"):
        ok, final, warns = verdict(env, {}, cpu=False)
        print("the GPU checks are not possible without CUDA; `--cpu` smoke-tests this script on CPU.")
        print(final)
        write_json(args.json, env, {}, {"ok": ok, "final": final, "warnings": warns, "notes": notes})
        return 1

    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="asqu_preflight_", dir=args.workdir))
    print(f"working folder: {tmp}")
    results: dict[str, RunResult] = {}
    try:
        data, tok = resolve_data(args, args.cpu, tmp, notes)
        print(f"data: {data}\ntokenizer: {tok}")
        op_errors = kernel_op_errors(args.activations, args.cpu)
        gpus = [""] if args.cpu else (os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(
            map(str, range(len(env["gpus"]))))).split(",")
        if args.compile or not args.cpu:
            notes.append("compile caches are shared between the runs: later runs may warm up faster")
        results = run_all(args, data, tok, tmp, gpus, notes)
        print("results:", *format_runs(results, args.cpu), sep="\n")
        choice = choose_kernels(results, op_errors, args.cpu)
        chosen = {act: results[label(act, c["chosen"])] for act, c in choice.items()}
        print(*format_choice(choice, step_ratio(chosen), args.cpu), sep="\n")
        ok, final, warns = verdict(env, chosen, args.cpu)
        choice_file = None
        measured = {act: c for act, c in choice.items() if not results[act].failure()}
        if measured and not args.cpu:  # what MLP_KERNEL=auto takes on this GPU model from now on
            import train_gpt as tg

            choice_file = tg.KERNEL_CHOICE_FILE
            record_choice(choice_file, env["gpus"][0]["name"], measured)
            notes.append(f"kernel choice recorded for MLP_KERNEL=auto on {env['gpus'][0]['name']}: {choice_file}")
        for n in notes:
            print(f"note: {n}")
        for w in warns:
            print(f"WARN: {w}")
        write_json(args.json, env, results, {"kernels": choice, "asqu_relu2_ratio": step_ratio(chosen),
                                             "choice_file": choice_file and str(choice_file), "ok": ok,
                                             "final": final, "warnings": warns, "notes": notes})
    except Exception as exc:  # a preflight must always end with its verdict line
        ok = False
        final = f"{failed_word(args.cpu)}: the preflight itself failed ({type(exc).__name__}: {exc})"
        args.keep = True
    finally:
        failed = any(r.failure() for r in results.values())
        if args.keep or failed:
            print(f"kept {tmp}" + (" (a run failed: its logs are there)" if failed and not args.keep else ""))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            print(f"removed {tmp} and the runs' logs in it (--keep keeps them)")
    print(final)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
