"""
asqu-golf: the March 22 Parameter Golf record stack (11L/512d GQA, XSA, partial RoPE, LN scale,
value embeddings, SmearGate, BigramHash, U-Net skips, Muon + AdamW, EMA, late QAT, GPTQ-lite int6
export, sliding-window BPB) with an MLP activation switch: relu2 | leaky2 | asqu.

    torchrun --standalone --nproc_per_node=8 train_gpt.py      # the record regime (8xH100, 600 s)
    python3 train_gpt.py                                        # one process, CPU or one GPU
    python3 train_gpt.py --help                                 # every setting, its default and meaning

All configuration is environment variables (see Hyperparameters). Everything a submission counts
lives in this file; tools, tests and data scripts live beside it.
"""
from __future__ import annotations

import base64
import contextlib
import copy
import difflib
import gc
import hashlib
import io
import linecache
import lzma
import math
import os
import pickle
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

if __name__ == "__main__":  # Ctrl-C during the imports: one line (the handler for the run is set in __main__)
    signal.signal(signal.SIGINT, lambda *_: sys.exit("interrupted: SIGINT (during start-up)"))
import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

if tuple(int(part) for part in torch.__version__.split(".")[:2]) < (2, 5):  # SDPA's enable_gqa, torch.library ops
    sys.exit(f"error: train_gpt.py needs PyTorch >= 2.5; this Python has {torch.__version__}")

try:  # the artifact's compressors beside lzma (EXPORT_COMPRESSOR)
    import zstandard
except ImportError:
    zstandard = None
try:
    import brotli
    brotli.Decompressor().process(b"", output_buffer_limit=1)  # >= 1.2: bounded decompression
except (ImportError, TypeError):
    brotli = None

# -----------------------------
# HYPERPARAMETERS
# -----------------------------
# Every variable, its default and meaning (`python3 train_gpt.py --help` prints them); defaults = the March 22 record.

class ConfigError(ValueError):
    """Bad user input: printed as one line, exit code 2."""

class RunError(RuntimeError):
    """A run that cannot go on (diverged, unwritable output, unreadable artifact): one line, exit code 1."""

# Variables that do not change results: left out of config_fingerprint.
NOT_FINGERPRINTED = ("SEED", "RUN_ID", "DATA_PATH", "TOKENIZER_PATH", "TRAIN_LOG_EVERY", "VAL_LOSS_EVERY",
                     "COMPILE", "ATTENTION", "MLP_KERNEL", "EVAL_ONLY", "DIST_TIMEOUT_S", "EXPORT_COMPRESSOR",
                     "EXPORT_SHUFFLE")
# Settings that define the function an artifact computes: stored in it, compared by EVAL_ONLY.
MODEL_SETTINGS = ("MLP_ACTIVATION", "VOCAB_SIZE", "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "MLP_MULT",
                  "MLP_LEAKY_SLOPE", "ASQU_SIGMOID_BETA", "TIE_EMBEDDINGS", "LOGIT_SOFTCAP", "ROPE_BASE", "ROPE_DIMS",
                  "XSA_LAST_N", "LN_SCALE", "BIGRAM_VOCAB_SIZE", "BIGRAM_DIM", "VE_DIM", "VE_LAYERS")

@dataclass(frozen=True)
class Bound:
    """A number setting's allowed values, named in its error message."""
    words: str
    ok: Callable[[float], bool]

POSITIVE = Bound("positive", lambda x: x > 0)
NON_NEGATIVE = Bound(">= 0", lambda x: x >= 0)
BELOW_ONE = Bound("in [0, 1)", lambda x: 0 <= x < 1)
SEED_RANGE = Bound(f"in 0..{2**32 - 1}", lambda x: 0 <= x < 2**32)
FP16_SCALES = Bound("in [0, 2031120) (int6 scales floor / 31 reach inf in fp16)", lambda x: 0 <= x < 31 * 65520)
INT_LIMIT = 2**32  # whole-number settings above this mean nothing here (a run of 10^23 steps never ends)

# Every setting: name, default, kind, meaning (`--help` prints them), and its allowed values (a Bound or the choices).
SETTINGS = (
    # Data and run identity.
    ("DATA_PATH", "./data/datasets/fineweb10B_sp1024", str, "folder of fineweb_{train,val}_*.bin shards"),
    ("TOKENIZER_PATH", "./data/tokenizers/fineweb_1024_bpe.model", str, "SentencePiece model of VOCAB_SIZE pieces"),
    ("SEED", 1337, int, "seed of init and everything random", SEED_RANGE),
    ("MLP_ACTIVATION", "asqu", str, "relu2 | leaky2 (alias leaky_relu2) | asqu"),
    ("RUN_ID", None, str, "names logs/<RUN_ID>.txt and runs/<RUN_ID>/ (default <activation>_seed<SEED>_<time>)"),
    # Schedule.
    ("ITERATIONS", 20000, int, "step limit; the schedule's length in fixed-step mode", POSITIVE),
    ("MAX_WALLCLOCK_SECONDS", 600.0, float, "training-time cap in seconds (0 = off: fixed-step mode)", NON_NEGATIVE),
    ("WARMDOWN_ITERS", 3500, int, "LR decay over the last N steps, by wall clock when capped (0 = off)", NON_NEGATIVE),
    ("WARMUP_STEPS", 20, int, "compile warm-up steps before the clock (then weights and data reset)", NON_NEGATIVE),
    ("TRAIN_BATCH_TOKENS", 786_432, int, "global tokens per optimizer step", POSITIVE),
    ("TRAIN_SEQ_LEN", 2048, int, "training sequence length", POSITIVE),
    ("TRAIN_LOG_EVERY", 500, int, "train-loss line every N steps and the first 10 (0 = off)", NON_NEGATIVE),
    ("VAL_LOSS_EVERY", 4000, int, "validation every N steps (0 = only at the end)", NON_NEGATIVE),
    # Evaluation.
    ("VAL_BATCH_SIZE", 524_288, int, "validation tokens per batch, all ranks", POSITIVE),
    ("EVAL_SEQ_LEN", 2048, int, "evaluation window length", POSITIVE),
    ("EVAL_STRIDE", 64, int, "sliding-window stride of the final eval (0 = no sliding eval)", NON_NEGATIVE),
    ("EVAL_BATCH_SEQS", 32, int, "windows per sliding-eval batch", POSITIVE),
    ("EVAL_ONLY", None, str, "score this final_model.int6.ptz, no training (other settings: its run's)"),
    # Model.
    ("VOCAB_SIZE", 1024, int, "vocabulary size", POSITIVE),
    ("NUM_LAYERS", 11, int, "blocks (first half encoders, the rest decoders with U-Net skips)", POSITIVE),
    ("MODEL_DIM", 512, int, "model width", POSITIVE),
    ("NUM_HEADS", 8, int, "query heads", POSITIVE),
    ("NUM_KV_HEADS", 4, int, "key/value heads (GQA)", POSITIVE),
    ("MLP_MULT", 3.0, float, "MLP hidden width = MLP_MULT x MODEL_DIM"),
    ("MLP_LEAKY_SLOPE", 0.5, float, "leaky2: f(h<=0) = (s h)^2"),
    ("ASQU_BETA_INIT", 0.25, float, "asqu: f(h<=0) = beta_i h^2, initial beta (0.25 = leaky2(0.5))"),
    ("ASQU_SIGMOID_BETA", False, bool, "1: beta = sigmoid(parameter), in (0, 1)"),
    ("TIE_EMBEDDINGS", True, bool, "output head tied to the token embedding"),
    ("TIED_EMBED_INIT_STD", 0.005, float, "std of the token-embedding init", NON_NEGATIVE),
    ("LOGIT_SOFTCAP", 30.0, float, "logits = c tanh(z / c)", POSITIVE),
    ("ROPE_BASE", 10000.0, float, "RoPE base (NTK-scaled beyond 1024 tokens)", POSITIVE),
    ("ROPE_DIMS", 16, int, "RoPE on the first N dims of each head (0 = all)", NON_NEGATIVE),
    ("QK_GAIN_INIT", 1.5, float, "initial per-head query gain"),
    ("XSA_LAST_N", 4, int, "XSA on the last N layers (0 = off)", NON_NEGATIVE),
    ("LN_SCALE", True, bool, "scale normed block inputs by 1/sqrt(layer+1)"),
    ("BIGRAM_VOCAB_SIZE", 2048, int, "BigramHash buckets (0 = off)", NON_NEGATIVE),
    ("BIGRAM_DIM", 128, int, "BigramHash embedding width", POSITIVE),
    ("VE_DIM", 128, int, "value-embedding width", POSITIVE),
    ("VE_LAYERS", None, str, "layers with value embeddings, e.g. 9,10 (default: the last two; 'none' = off)"),
    # Optimizers. Every LR is multiplied by the schedule's scale.
    ("MATRIX_LR", 0.025, float, "Muon LR (block matrices, bigram.proj, ve_shared.proj)", NON_NEGATIVE),
    ("MUON_MOMENTUM", 0.99, float, "Muon momentum after its warm-up", BELOW_ONE),
    ("MUON_MOMENTUM_WARMUP_START", 0.92, float, "Muon momentum at step 0", BELOW_ONE),
    ("MUON_MOMENTUM_WARMUP_STEPS", 1500, int, "steps of the momentum warm-up", NON_NEGATIVE),
    ("MUON_BACKEND_STEPS", 5, int, "Newton-Schulz iterations", POSITIVE),
    ("MUON_WD", 0.04, float, "Muon decoupled weight decay", NON_NEGATIVE),
    ("TIED_EMBED_LR", 0.035, float, "AdamW LR of the embedding tables", NON_NEGATIVE),
    ("EMBED_LR", 0.6, float, "AdamW LR of tok_emb when TIE_EMBEDDINGS=0", NON_NEGATIVE),
    ("HEAD_LR", 0.008, float, "Adam LR of lm_head when TIE_EMBEDDINGS=0", NON_NEGATIVE),
    ("SCALAR_LR", 0.025, float, "AdamW LR of scalars and control tensors", NON_NEGATIVE),
    ("ASQU_LR", 0.001, float, "AdamW LR of ASQU beta, its own group", NON_NEGATIVE),
    ("ASQU_WD", 0.0, float, "weight decay on beta (it decays toward relu2)", NON_NEGATIVE),
    ("ASQU_BETA_GRAD_EVERY", 1, int, "beta's gradient on every k-th micro-step only, times k", POSITIVE),
    ("ADAM_WD", 0.04, float, "AdamW weight decay (embeddings, scalars)", NON_NEGATIVE),
    ("BETA1", 0.9, float, "Adam beta1", BELOW_ONE),
    ("BETA2", 0.95, float, "Adam beta2", BELOW_ONE),
    ("ADAM_EPS", 1e-8, float, "Adam epsilon", POSITIVE),
    ("GRAD_CLIP_NORM", 0.3, float, "global gradient-norm clip (0 = off)", NON_NEGATIVE),
    # Weight averaging, QAT and export.
    ("EMA_DECAY", 0.997, float, "EMA of all weights, every step", BELOW_ONE),
    ("FINAL_WEIGHTS", "ema", str, "weights exported and scored: ema | swa | raw", ("ema", "swa", "raw")),
    ("SWA_EVERY", 50, int, "FINAL_WEIGHTS=swa: snapshot every N steps once the LR scale < 0.2", POSITIVE),
    ("LATE_QAT_THRESHOLD", 0.15, float, "fake-quantize int6 matrices once LR scale < this (0 = off)", NON_NEGATIVE),
    ("INT6_CLIP_PERCENTILES", "0.999,0.9995,0.9999,0.99999,1.0", str, "candidate row clips of the int6 export"),
    # Row clips below this are raised to it (scale >= floor/31 for int6, /127 for int8; also in QAT).
    # 1.0 is the record's clamp_min(1/31): coarser codes for small rows, a smaller artifact.
    ("QUANT_SCALE_FLOOR", 1.0, float, "floor of int6/int8 row clips, export and QAT (0 = none)", FP16_SCALES),
    ("EXPORT_COMPRESSOR", "auto", str, "auto (the smallest of those installed) | zstd | brotli | lzma",
     ("auto", "zstd", "brotli", "lzma")),
    ("EXPORT_SHUFFLE", True, bool, "artifact: store multi-byte tensors byte-shuffled (lossless; compresses better)"),
    # Runtime.
    ("COMPILE", None, bool, "torch.compile(fullgraph=True) the model (default: 1 on CUDA, 0 on CPU)"),
    ("ATTENTION", "auto", str, "auto (FA3, FA2 >= 2.6, SDPA) | flash_attn_3 | flash_attn_2 | sdpa",
     ("auto", "flash_attn_3", "flash_attn_2", "sdpa")),
    ("MLP_KERNEL", "auto", str, "auto (preflight's choice, else torch) | triton | torch", ("auto", "triton", "torch")),
    ("CPU_BF16", False, bool, "on CPU, the CUDA numerics: bf16 autocast and bf16 embedding tables"),
    ("DIST_TIMEOUT_S", 600.0, float, "seconds a process waits for the others (rendezvous, each collective)", POSITIVE),
)

class Hyperparameters:
    """SETTINGS read from the environment (attribute = NAME.lower()); validate() checks their combinations."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self._set: dict[str, str] = {}  # NAME -> raw value, for settings away from their default
        for name, default, kind, _, *allowed in SETTINGS:
            setattr(self, name.lower(), self._read(name, default, kind, allowed[0] if allowed else None))
        self.validate()

    def _read(self, name: str, default, kind, allowed: Bound | tuple[str, ...] | None):
        """The setting's value from the environment (unset: the default), checked against its kind and bounds."""
        example = 1 if default is None else int(default) if kind is bool else default
        raw = self._environ.get(name)
        if raw is None:
            return default
        raw = raw.strip()
        if not raw:
            example_text = "" if default is None and kind is str else f", e.g. {name}={example}"
            raise ConfigError(f"{name} is set but empty; give it a value{example_text}, or unset it")
        try:
            if kind is bool and raw not in ("0", "1"):
                raise ValueError
            value = raw == "1" if kind is bool else kind(raw)
            if kind is float and not math.isfinite(value):
                raise ValueError
        except ValueError:
            what = {bool: "0 or 1", int: "a whole number", float: "a finite number", str: "text"}[kind]
            raise ConfigError(f"{name}={raw!r} is not {what}; set it to e.g. {name}={example} or unset it") from None
        if kind is int and abs(value) >= INT_LIMIT:
            raise ConfigError(f"{name}={raw} is too large to mean anything here (at most {INT_LIMIT - 1}), "
                              f"e.g. {name}={example}")
        if isinstance(allowed, Bound) and not allowed.ok(value):
            raise ConfigError(f"{name}={raw} must be {allowed.words}, e.g. {name}={example}")
        if isinstance(allowed, tuple):
            value = value.lower()
            if value not in allowed:
                raise ConfigError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
        if value != default:
            self._set[name] = raw
        return value

    @staticmethod
    def variables() -> list[tuple[str, object, str]]:
        """(NAME, default, meaning) of every setting, in SETTINGS' order."""
        return [(name, default, doc) for name, default, _, doc, *_ in SETTINGS]

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)
        self.mlp_activation = ACTIVATION_ALIASES.get(self.mlp_activation.lower(), self.mlp_activation.lower())
        need(self.mlp_activation in ACTIVATIONS, f"MLP_ACTIVATION={self.mlp_activation!r} is not one of "
             f"{', '.join(ACTIVATIONS)} (or {', '.join(ACTIVATION_ALIASES)})")
        if self.run_id is None or self.eval_only:  # EVAL_ONLY: a name of its own, never the training run's RUN_ID
            kind = "eval_only" if self.eval_only else f"seed{self.seed}"
            self.run_id = f"{self.run_id or self.mlp_activation}_{kind}_{time.strftime('%Y%m%d-%H%M%S')}_{os.getpid()}"
        need(self.run_id not in (".", "..") and self.run_id == self.run_id.strip()
             and not any(c in "/\\" or not c.isprintable() for c in self.run_id),
             f"RUN_ID={self.run_id!r} names a file: no path separators, control characters (newlines, tabs) or "
             "surrounding spaces, e.g. RUN_ID=exp_run1")
        need(len(self.run_id.encode()) <= 200, f"RUN_ID is {len(self.run_id.encode())} bytes long; it names files "
             "(logs/<RUN_ID>.txt, runs/<RUN_ID>/), whose names allow 255 bytes: keep it to 200, e.g. RUN_ID=exp_run1")
        need(self.model_dim % self.num_heads == 0 and self.num_heads % self.num_kv_heads == 0,
             f"MODEL_DIM={self.model_dim} must divide by NUM_HEADS={self.num_heads}, and NUM_HEADS by "
             f"NUM_KV_HEADS={self.num_kv_heads}, e.g. 512, 8, 4")
        head_dim = self.model_dim // self.num_heads
        rd = self.rope_dims or head_dim
        need(rd % 2 == 0 and 4 <= rd <= head_dim,
             f"ROPE_DIMS={self.rope_dims} must be even, >= 4 and <= head_dim={head_dim}")
        need(self.xsa_last_n <= self.num_layers, f"XSA_LAST_N={self.xsa_last_n} exceeds NUM_LAYERS={self.num_layers}")
        if self.ve_layers is None:  # the last two layers: the record's 9,10 at 11 layers
            self.ve_layers = ",".join(str(i) for i in range(max(0, self.num_layers - 2), self.num_layers))
        self.ve_layers = "" if self.ve_layers.strip().lower() == "none" else self.ve_layers
        try:
            self.ve_layer_list = [int(s) for s in self.ve_layers.split(",") if s.strip()]
        except ValueError:
            self.ve_layer_list = []
        need(bool(self.ve_layer_list) or not self.ve_layers, f"VE_LAYERS={self.ve_layers!r} must be comma-separated "
             "layer indices, e.g. VE_LAYERS=9,10, or none")
        self.ve_layers = ",".join(map(str, self.ve_layer_list))  # one spelling: compared by EVAL_ONLY
        distinct = len(set(self.ve_layer_list)) == len(self.ve_layer_list)
        need(distinct and all(0 <= i < self.num_layers for i in self.ve_layer_list),
             f"VE_LAYERS={self.ve_layers!r}: indices must be distinct and in 0..{self.num_layers - 1}")
        need(self.bigram_vocab_size != 1, "BIGRAM_VOCAB_SIZE must be 0 (off) or >= 2, e.g. BIGRAM_VOCAB_SIZE=2048")
        try:
            self.clip_percentiles = [float(s) for s in self.int6_clip_percentiles.split(",") if s.strip()]
        except ValueError:
            self.clip_percentiles = []
        need(bool(self.clip_percentiles) and all(0.0 < p <= 1.0 for p in self.clip_percentiles),
             f"INT6_CLIP_PERCENTILES={self.int6_clip_percentiles!r} must be comma-separated values in (0, 1], "
             "e.g. INT6_CLIP_PERCENTILES=0.999,0.9999,1.0")
        need(self.export_compressor == "auto" or CODECS[self.export_compressor][0] is not None,
             f"EXPORT_COMPRESSOR={self.export_compressor} is not installed: pip install -r requirements.txt, or auto")
        need(self.eval_stride <= self.eval_seq_len,
             f"EVAL_STRIDE={self.eval_stride} exceeds EVAL_SEQ_LEN={self.eval_seq_len}")
        need(not self.asqu_sigmoid_beta or 0.0 < self.asqu_beta_init < 1.0,
             f"ASQU_BETA_INIT={self.asqu_beta_init} must be in (0, 1) with ASQU_SIGMOID_BETA=1")
        need(self.mlp_hidden >= 1, f"MLP_MULT={self.mlp_mult} gives an MLP hidden width of {max(self.mlp_hidden, 0)} "
             f"with MODEL_DIM={self.model_dim}: MLP_MULT x MODEL_DIM must be >= 1, e.g. MLP_MULT=3.0")
        for lr, wd in filter(None, (("MATRIX_LR", "MUON_WD"), ("TIED_EMBED_LR" if self.tie_embeddings else "EMBED_LR",
                                    "ADAM_WD"), ("SCALAR_LR", "ADAM_WD"), ACTIVATIONS[self.mlp_activation].group)):
            product = getattr(self, lr.lower()) * getattr(self, wd.lower())
            need(product < 1, f"{lr} x {wd} = {product:g} must be below 1: each step would scale those weights by "
                 f"1 - {product:g} <= 0 (decay past zero); lower {wd} or {lr}")
        need(self.final_weights != "swa" or self.max_wallclock_seconds > 0 or self.swa_snapshots() > 0,
             f"FINAL_WEIGHTS=swa takes no snapshot with ITERATIONS={self.iterations}, "
             f"WARMDOWN_ITERS={self.warmdown_iters}, SWA_EVERY={self.swa_every} (snapshots start at LR scale < 0.2); "
             "lower SWA_EVERY or use FINAL_WEIGHTS=ema")

    def swa_snapshots(self) -> int:
        """SWA snapshots a fixed-step run takes: steps s+1 on a multiple of SWA_EVERY with scale(s) < 0.2."""
        return sum(1 for s in range(max(0, self.iterations - self.warmdown_iters), self.iterations)
                   if (s + 1) % self.swa_every == 0 and lr_scale(self, s, 0.0) < 0.2)

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_mult * self.model_dim)

    def config_line(self) -> str:
        """config:NAME=value ... for every setting away from its default (paste it to rerun)."""
        changed = [f"{name}={shlex.quote(self._set[name])}" for name, _, _ in self.variables() if name in self._set]
        return "config:" + " ".join(changed)

    def model_settings(self) -> dict[str, object]:
        return {name: getattr(self, name.lower()) for name in MODEL_SETTINGS}

    def fingerprint(self) -> str:
        """12 hex digits of the effective settings that change results (not SEED, paths, logging knobs)."""
        text = "\n".join(f"{name}={getattr(self, name.lower())!r}" for name, _, _ in self.variables()
                         if name not in NOT_FINGERPRINTED)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

# Environment names that are never settings of this script (torchrun, CUDA, threads): not checked for typos.
FOREIGN_PREFIXES = ("CUDA", "NCCL", "TORCH", "OMP_", "MKL_", "KMP_", "PYTHON", "MASTER_", "LOCAL_", "GROUP_",
                    "ROLE_", "WORLD_", "RANK", "HF_", "LC_", "XDG_")

def close_variable_warnings(environ: Mapping[str, str]) -> list[str]:
    """WARNING lines for environment names close to a setting's name but not one (NUM_LAYER, EMA_DECAYS)."""
    known = [n for n, _, _ in Hyperparameters.variables()]
    close = {name: difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.85) for name in sorted(environ)
             if name not in known and not name.startswith(FOREIGN_PREFIXES)}
    return [f"WARNING: {name} is not a setting of train_gpt.py and is ignored; did you mean {match[0]}?"
            for name, match in close.items() if match]

def print_help() -> None:
    print(__doc__.strip() + "\n\nSettings (environment variables), default, meaning:")
    for name, default, doc in Hyperparameters.variables():
        shown = "(unset)" if default is None else int(default) if isinstance(default, bool) else default
        print(f"  {name:<28} {str(shown):<40} {doc}")

# -----------------------------
# RUNTIME: CUDA VS CPU
# -----------------------------
# Everything that differs by device: process group, attention kernel, autocast, bf16 parameter layout (build_model).
# CPU_BF16=1 gives a CPU the CUDA numerics, so tests rehearse the production path except kernels and NCCL.

@dataclass(frozen=True)
class AttentionKernel:
    """Causal attention, (B, T, H, D) q and (B, T, Hkv, D) k, v -> (B, T, H, D): flash_attn_3, flash_attn_2 (flash: its
    flash_attn_func) or sdpa. Picked once (pick_attention_backend), held by the runtime, given to the model."""
    name: str = "sdpa"
    flash: Callable | None = None

    def __call__(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if self.name == "flash_attn_3":
            y = self.flash(q, k, v, causal=True)
            return y[0] if isinstance(y, tuple) else y  # some FA3 builds return (out, lse)
        if self.name == "flash_attn_2":
            return self.flash(q, k, v, causal=True)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=k.size(1) != q.size(1))  # torch >= 2.5
        return y.transpose(1, 2)

@dataclass
class Runtime:
    rank: int
    world_size: int
    local_rank: int
    distributed: bool
    device: torch.device
    bf16: bool  # bf16 autocast and bf16 embedding tables (CUDA, or CPU_BF16=1)
    compile: bool
    local_processes: int = 1  # processes on this machine (LOCAL_WORLD_SIZE): they share its memory
    attention: AttentionKernel = AttentionKernel()  # pick_attention_backend's

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def grad_accum_steps(self) -> int:
        return max(1, 8 // self.world_size)  # one batch size across all ranks for 1, 2, 8 or 16 processes

def launcher_values(environ: Mapping[str, str]) -> dict[str, int]:
    """torchrun's RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; without RANK and WORLD_SIZE: one process."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    found = {name: environ[name] for name in names if name in environ}
    launch = "launch with torchrun (which sets it) or unset it"
    for name, raw in found.items():
        if not raw.strip().isdigit():
            raise ConfigError(f"{name}={raw!r} is not a whole number >= 0; {launch}")
    values = {name: int(raw) for name, raw in found.items()}
    if ("RANK" in values) != ("WORLD_SIZE" in values):
        given, missing = ("RANK", "WORLD_SIZE") if "RANK" in values else ("WORLD_SIZE", "RANK")
        raise ConfigError(f"{given} is set without {missing}: {launch}")
    if "RANK" in values:
        if not values["RANK"] < values["WORLD_SIZE"]:
            raise ConfigError(f"RANK={values['RANK']} must be below WORLD_SIZE={values['WORLD_SIZE']}; {launch}")
        port = environ.get("MASTER_PORT", "")
        if not (environ.get("MASTER_ADDR") and port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"RANK and WORLD_SIZE are set but MASTER_ADDR is unset or MASTER_PORT={port!r} is not a "
                              f"port (1-65535); {launch}")
    return values

def runtime_from_env(args: Hyperparameters) -> Runtime:
    launcher = launcher_values(os.environ)
    distributed = "RANK" in launcher
    rank, world_size = (launcher["RANK"], launcher["WORLD_SIZE"]) if distributed else (0, 1)
    local_rank = launcher.get("LOCAL_RANK", 0)
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    compile_model = device.type == "cuda" if args.compile is None else args.compile
    rt = Runtime(rank, world_size, local_rank, distributed, device, device.type == "cuda" or args.cpu_bf16,
                 compile_model, max(1, launcher.get("LOCAL_WORLD_SIZE", 1)),
                 pick_attention_backend(args.attention, device))
    args.mlp_kernel, args.mlp_kernel_from = pick_mlp_kernel(args, device)
    if args.eval_only:  # no training: the batch shape does not matter
        return rt
    micro = world_size * rt.grad_accum_steps * args.train_seq_len
    if args.train_batch_tokens % micro:
        example = max(1, round(args.train_batch_tokens / micro)) * micro
        raise ConfigError(f"TRAIN_BATCH_TOKENS={args.train_batch_tokens} must be divisible by world_size "
                          f"({world_size}) x gradient accumulation ({rt.grad_accum_steps}) x TRAIN_SEQ_LEN "
                          f"({args.train_seq_len}) = {micro}, e.g. TRAIN_BATCH_TOKENS={example}")
    return rt

def parameter_count(args: Hyperparameters) -> int:
    """GPT(args)'s parameter count, computed without building it (the tests check it against the model)."""
    dim, hidden, L = args.model_dim, args.mlp_hidden, args.num_layers
    kv_dim = args.num_kv_heads * (dim // args.num_heads)
    block = 2 * dim * dim + 2 * kv_dim * dim + 2 * dim * hidden + args.num_heads + 4 * dim
    block += hidden * ACTIVATIONS[args.mlp_activation].per_channel
    total = L * block + args.vocab_size * dim + dim + min(L // 2, L - L // 2) * dim
    if args.bigram_vocab_size:
        total += args.bigram_vocab_size * args.bigram_dim + dim * args.bigram_dim + 1
    if args.ve_layer_list:
        total += args.vocab_size * args.ve_dim + kv_dim * args.ve_dim + 1 + len(args.ve_layer_list)
    return total + (0 if args.tie_embeddings else args.vocab_size * dim)

def check_fits(args: Hyperparameters, rt: Runtime) -> None:
    """Refuse a model that cannot fit in the device's memory, by a low estimate: 16 bytes per parameter (fp32
    weights, gradients, optimizer state, EMA) plus the activations kept for the backward (about 8 x MODEL_DIM +
    2 x MLP hidden values per token per layer; the record's model measured 22 GiB at 98,304 tokens, this says 15)."""
    if rt.device.type == "cuda":
        have, where = torch.cuda.get_device_properties(rt.device).total_memory, f"{rt.device}"
    else:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // rt.local_processes
        where = "this machine (per process)"
    tokens = args.train_batch_tokens // (rt.world_size * rt.grad_accum_steps)
    per_token = args.num_layers * (8 * args.model_dim + 2 * args.mlp_hidden) * (2 if rt.bf16 else 4)
    params = parameter_count(args)
    need = 16 * params + tokens * per_token
    if need > have:
        raise ConfigError(f"the model cannot fit: {params:,} parameters (NUM_LAYERS={args.num_layers}, MODEL_DIM="
                          f"{args.model_dim}, MLP_MULT={args.mlp_mult}, VOCAB_SIZE={args.vocab_size}) and {tokens:,} "
                          f"tokens per micro-step (TRAIN_BATCH_TOKENS={args.train_batch_tokens}) need at least "
                          f"{need / 2**30:,.1f} GiB, {where} has {have / 2**30:,.1f} GiB; make them smaller")

# MLP_KERNEL=auto: the kernel scripts/gpu_preflight.py chose on this machine, lines "GPU name/activation=kernel"
KERNEL_CHOICE_FILE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asqu-golf" / "mlp_kernel.txt"

def pick_mlp_kernel(args: Hyperparameters, device: torch.device) -> tuple[str, str]:
    """(kernel, where it came from): auto -> the preflight's choice for this GPU model and activation, else torch."""
    choice, source = args.mlp_kernel, "the MLP_KERNEL setting"
    if choice == "auto":
        try:
            key, source = f"{torch.cuda.get_device_name(device)}/{args.mlp_activation}", f"auto: {KERNEL_CHOICE_FILE}"
            chosen = dict(line.rsplit("=", 1) for line in KERNEL_CHOICE_FILE.read_text().splitlines())[key].strip()
            choice = {"torch": "torch", "triton": "triton"}[chosen]
        except Exception:  # noqa: BLE001 - no GPU, no file, no entry for this GPU and activation, or not a kernel
            choice, source = "torch", f"auto: no preflight choice for this device in {KERNEL_CHOICE_FILE}"
    if choice == "triton" and triton is None:
        raise ConfigError("MLP_KERNEL=triton but the triton package cannot be imported; pip install triton, "
                          "or set MLP_KERNEL=torch")
    interpreted = os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")
    if choice == "triton" and device.type != "cuda" and not interpreted:
        raise ConfigError("MLP_KERNEL=triton needs a CUDA GPU; on CPU only under TRITON_INTERPRET=1 (slow: for "
                          "tests), or set MLP_KERNEL=torch")
    return choice, source

def init_distributed(rt: Runtime, timeout_s: float) -> None:
    if rt.device.type == "cuda":
        torch.cuda.set_device(rt.device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if rt.distributed:  # torch._dynamo (DDP imports it) before the group: see the teardown at the end of main()
        import torch._dynamo as _dynamo  # noqa: F401  (an `as` name: a bare `import torch.x` here would shadow torch)
        where = f"MASTER_ADDR:MASTER_PORT={os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        try:
            dist.init_process_group(backend="nccl" if rt.device.type == "cuda" else "gloo", timeout=timedelta(
                seconds=timeout_s), device_id=rt.device if rt.device.type == "cuda" else None)
        except RuntimeError as exc:  # torch's DistNetworkError, DistStoreError: a port in use, no peer, no host
            raise RunError(f"the {rt.world_size} processes did not meet at {where} within DIST_TIMEOUT_S={timeout_s:g} "
                           f"({str(exc).splitlines()[0]}); launch with torchrun, or start every rank") from None

def pick_attention_backend(choice: str, device: torch.device) -> AttentionKernel:
    """auto: FA3, else FA2 >= 2.6, else SDPA (attention_warning) on CUDA; SDPA on CPU. A named one or an error."""
    cuda, fa3, fa2 = device.type == "cuda", None, None
    if choice == "flash_attn_3" or (choice == "auto" and cuda):
        with contextlib.suppress(ImportError):
            from flash_attn_interface import flash_attn_func as fa3  # FlashAttention 3 (Hopper)
    if choice == "flash_attn_2" or (choice == "auto" and cuda and fa3 is None):
        with contextlib.suppress(ImportError, ValueError, AttributeError):  # FA2 < 2.6 is no torch op: breaks fullgraph
            import flash_attn
            version = tuple(map(int, flash_attn.__version__.split(".")[:2]))
            fa2 = flash_attn.flash_attn_func if version >= (2, 6) else None
    if choice == "auto":
        choice = "flash_attn_3" if fa3 else "flash_attn_2" if fa2 else "sdpa"
    elif choice != "sdpa" and (fa3 if choice == "flash_attn_3" else fa2) is None:
        package = "flash_attn_interface (FlashAttention 3)" if choice == "flash_attn_3" else "flash_attn >= 2.6"
        raise ConfigError(f"ATTENTION={choice} but {package} cannot be imported; install it or set ATTENTION=auto")
    return AttentionKernel(choice, {"flash_attn_3": fa3, "flash_attn_2": fa2}.get(choice))

def attention_warning(rt: Runtime) -> str | None:
    """A GPU left on PyTorch SDPA: slower steps, worth a WARNING."""
    if rt.device.type == "cuda" and rt.attention.name == "sdpa":
        return ("WARNING: attention runs on PyTorch SDPA (no FlashAttention 3 or 2 >= 2.6 imports): slower steps, "
                "fewer in the cap. Install FlashAttention 3 as the records do: pip install --no-deps flash_attn_3 "
                "--find-links https://windreamer.github.io/flash-attention3-wheels/cu128_torch291/ (that folder: CUDA "
                "12.8 + torch 2.9.1; see the README for others)")
    return None

def autocast_ctx(rt: Runtime):
    return torch.autocast(device_type=rt.device.type, dtype=torch.bfloat16) if rt.bf16 else contextlib.nullcontext()

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()

# -----------------------------
# MUON OPTIMIZER
# -----------------------------

def zeropower_via_newtonschulz5(G: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximately orthogonalise G (quintic Newton-Schulz, in bf16)."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.bfloat16()
    X /= X.norm() + eps
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if transposed else X

class Muon(torch.optim.Optimizer):
    """Nesterov momentum, orthogonalised update x sqrt(max(1, rows/cols)), decoupled WD; matrices split by rank.
    orthogonalize: zeropower_via_newtonschulz5 or its torch.compile'd form (build_optimizers)."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int, weight_decay: float,
                 orthogonalize=zeropower_via_newtonschulz5):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, weight_decay=weight_decay))
        self.orthogonalize = orthogonalize

    @torch.no_grad()
    def step(self):
        distributed = dist.is_available() and dist.is_initialized()
        world_size, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (1, 0)
        for group in self.param_groups:
            params = group["params"]
            if not params:
                continue
            lr, momentum = group["lr"], group["momentum"]
            updates = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=torch.bfloat16)
            chunks = updates.split([p.numel() for p in params])  # views: one flat buffer for the all-reduce
            for i, (p, chunk) in enumerate(zip(params, chunks)):
                if i % world_size == rank and p.grad is not None:
                    if "momentum_buffer" not in self.state[p]:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p.grad)
                    buf = self.state[p]["momentum_buffer"].mul_(momentum).add_(p.grad)
                    g = self.orthogonalize(p.grad.add(buf, alpha=momentum), steps=group["backend_steps"])
                    g *= max(1, g.size(0) / g.size(1)) ** 0.5
                    chunk.copy_(g.reshape(-1))
            if distributed:
                dist.all_reduce(updates, op=dist.ReduceOp.SUM)
            for p, chunk in zip(params, chunks):
                if group["weight_decay"] > 0:
                    p.mul_(1.0 - lr * group["weight_decay"])
                p.add_(chunk.view_as(p).to(p.dtype), alpha=-lr)

# -----------------------------
# DATA: SHARDS AND LOADERS
# -----------------------------
# Shard = 256 little-endian int32 header (magic, version, token count) + uint16 tokens.

SHARD_MAGIC, SHARD_VERSION, HEADER_BYTES = 20240520, 1, 256 * 4

def shard_token_count(path: Path) -> int:
    """Validate a shard's header and size without reading its tokens."""
    if not path.is_file():  # a folder or a broken link named like a shard
        raise ConfigError(f"{path}: not a readable file; remove it, or re-download or rebuild this shard")
    size = path.stat().st_size
    header = np.fromfile(path, dtype="<i4", count=256)
    if header.size < 256 or int(header[0]) != SHARD_MAGIC or int(header[1]) != SHARD_VERSION:
        raise ConfigError(f"{path}: not a token shard (bad header); re-download or rebuild this file")
    n = int(header[2])
    if size != HEADER_BYTES + 2 * n:
        raise ConfigError(f"{path}: header says {n} tokens ({HEADER_BYTES + 2 * n} bytes) but the file has "
                          f"{size} bytes (truncated or corrupt); re-download or rebuild this file")
    return n

def open_shard(path: Path) -> np.ndarray:
    """The shard's tokens, memory-mapped (its header and size checked)."""
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(shard_token_count(path),))

def load_shard(path: Path, vocab_size: int) -> np.ndarray:
    """The shard's tokens (memory-mapped), every id checked against VOCAB_SIZE (one max over the shard)."""
    tokens = open_shard(path)
    top = int(tokens.max()) if tokens.size else 0
    if top >= vocab_size:
        raise ConfigError(f"{path}: token id {top} >= VOCAB_SIZE={vocab_size}; the shard was made with another "
                          "tokenizer: set VOCAB_SIZE and TOKENIZER_PATH to match it, or rebuild the shard")
    return tokens

def find_shards(data_path: str, split: str) -> list[Path]:
    """The split's shards, every one's header and size checked; at least one token in all."""
    files = sorted(Path(data_path).glob(f"fineweb_{split}_*.bin"))
    if not files:
        raise ConfigError(f"DATA_PATH={data_path}: no fineweb_{split}_*.bin shards found. Download the data with "
                          "`python3 data/cached_challenge_fineweb.py --variant sp1024`, or build the offline sample "
                          "with `python3 data/build_sample.py` and set DATA_PATH=./data/datasets/sample_sp1024")
    if sum(shard_token_count(f) for f in files) == 0:
        raise ConfigError(f"DATA_PATH={data_path}: the fineweb_{split}_*.bin shards hold no tokens; rebuild or "
                          "re-download them")
    return files

class DistributedTokenLoader:
    """Rank r takes slice r of each micro-step's span, so 1 process x 8 micro-steps sees the same data as 2 x 4 or
    8 x 1. Token ids are not checked here: check_train_shards did it for every shard, before the clock."""

    def __init__(self, files: list[Path], rt: Runtime):
        self.files, self.rt = files, rt
        self.file_idx = self.pos = 0
        self.tokens = open_shard(files[0])

    def take(self, n: int) -> np.ndarray:
        chunks = []
        while n > 0:
            if self.pos >= len(self.tokens):
                self.file_idx = (self.file_idx + 1) % len(self.files)
                self.tokens = open_shard(self.files[self.file_idx])
                self.pos = 0
            k = min(n, len(self.tokens) - self.pos)
            chunks.append(self.tokens[self.pos:self.pos + k])
            self.pos += k
            n -= k
        return np.concatenate(chunks)

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[Tensor, Tensor]:
        rank, world = self.rt.rank, self.rt.world_size
        span = global_tokens // (world * grad_accum_steps) + 1
        local = torch.from_numpy(self.take(span * world)[rank * span:(rank + 1) * span].astype(np.int64))
        x, y = local[:-1].reshape(-1, seq_len), local[1:].reshape(-1, seq_len)
        return x.to(self.rt.device, non_blocking=True), y.to(self.rt.device, non_blocking=True)

def load_validation_tokens(files: list[Path], seq_len: int, vocab_size: int) -> np.ndarray:
    """All val shards, truncated to a multiple of seq_len (+1 for the last target)."""
    tokens = np.concatenate([load_shard(f, vocab_size) for f in files])
    usable = ((tokens.size - 1) // seq_len) * seq_len
    if usable <= 0:
        raise ConfigError(f"validation split ({tokens.size} tokens in {len(files)} fineweb_val_*.bin) is too "
                          f"short for EVAL_SEQ_LEN={seq_len}: it needs at least {seq_len + 1} tokens; "
                          "lower EVAL_SEQ_LEN or use a larger validation shard")
    return tokens[:usable + 1]

# -----------------------------
# TOKENIZER AND BYTE ACCOUNTING
# -----------------------------
# BPB divides by the UTF-8 bytes of the text. Each target token adds: 0 for boundary pieces (control / unknown /
# unused), 1 per byte piece, else the piece's UTF-8 length without a leading '▁', plus 1 for that space unless the
# previous token is a boundary. A space spelled as the byte pieces E2 96 81 ('▁' in UTF-8) adds 1, not 3 (issue #897),
# and 0 after a boundary, as a '▁' piece does (the space SentencePiece puts before a document's text).

def load_tokenizer(path: str, vocab_size: int) -> spm.SentencePieceProcessor:
    if not path.endswith(".model"):
        raise ConfigError(f"TOKENIZER_PATH={path} is not a SentencePiece .model file")
    if Path(path).is_dir():
        raise ConfigError(f"TOKENIZER_PATH={path} is a folder; name the .model file inside it")
    if not Path(path).is_file():
        raise ConfigError(f"TOKENIZER_PATH={path} does not exist; download it with the data "
                          "(data/cached_challenge_fineweb.py) or build the sample (data/build_sample.py)")
    try:
        sp = spm.SentencePieceProcessor(model_file=path)
    except Exception as exc:  # sentencepiece raises OSError/RuntimeError on a bad proto
        raise ConfigError(f"TOKENIZER_PATH={path} cannot be loaded as a SentencePiece model ({exc})") from None
    if int(sp.vocab_size()) != vocab_size:
        raise ConfigError(f"VOCAB_SIZE={vocab_size} but tokenizer {path} has {sp.vocab_size()} pieces; "
                          f"set VOCAB_SIZE={sp.vocab_size()} or use the matching tokenizer")
    return sp

@dataclass
class ByteTables:
    base: np.ndarray  # int16: bytes of the piece without its leading '▁' (byte pieces 1, boundaries 0)
    leading_space: np.ndarray  # bool: the piece starts with '▁'
    boundary: np.ndarray  # bool: control, unknown or unused piece
    byte_value: np.ndarray  # int16: the byte of a <0xNN> piece, else -1

def build_byte_luts(sp: spm.SentencePieceProcessor, vocab_size: int) -> ByteTables:
    t = ByteTables(np.zeros(vocab_size, np.int16), np.zeros(vocab_size, np.bool_), np.ones(vocab_size, np.bool_),
                   np.full(vocab_size, -1, np.int16))
    for i in range(int(sp.vocab_size())):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        t.boundary[i] = False
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            t.base[i], t.byte_value[i] = 1, int(piece[1:-1], 16)  # "<0xE2>"
            continue
        if piece.startswith("▁"):
            t.leading_space[i], piece = True, piece[1:]
        t.base[i] = len(piece.encode("utf-8"))
    return t

def stream_bytes(tokens: np.ndarray, t: ByteTables) -> np.ndarray:
    """Bytes each position's token adds to the text, given the previous token (position 0 follows a boundary)."""
    tok = np.asarray(tokens, dtype=np.int64)  # no copy when the caller already has int64
    prev_boundary = np.concatenate(([True], t.boundary[tok[:-1]]))
    out = t.base[tok].astype(np.float64) + (t.leading_space[tok] & ~prev_boundary)
    b = t.byte_value[tok]
    space = np.flatnonzero((b[:-2] == 0xE2) & (b[1:-1] == 0x96) & (b[2:] == 0x81))
    out[space] = ~prev_boundary[space]  # a space spelled in bytes: 1 byte, or 0 at a document's start like '▁'
    out[space + 1] = out[space + 2] = 0.0
    return out

# Probe strings for check_byte_tables: spaces, newlines, tabs, digits, punctuation, accents, CJK, emoji.
BYTE_PROBES = ("Hello world", "a b", "two  spaces", "line one\nline two", "tab\there", "digits 0123456789 3.14",
               "Punctuation: (a), [b]; {c}! \"q\" 'x' - ok?", "caf\u00e9 na\u00efve fa\u00e7ade",
               "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0",
               "emoji \U0001f642 ok", "x y z", "end ")

def check_byte_tables(sp: spm.SentencePieceProcessor, t: ByteTables, path: str) -> int:
    """Tables vs the tokenizer's normalized text ('▁' = space, none first); returns the probes checked."""
    checked = 0
    for text in BYTE_PROBES:
        ids = sp.encode(text)
        if any(sp.is_unknown(i) for i in ids):  # unknown pieces count 0 bytes by the challenge's rule
            continue
        norm = sp.normalize(text)
        expect = len(norm.removeprefix("\u2581").replace("\u2581", " ").encode("utf-8"))
        got = int(stream_bytes(np.array(ids, dtype=np.int64), t).sum())
        if got != expect:
            raise ConfigError(f"TOKENIZER_PATH={path}: the byte tables count {got} bytes for {text!r}, whose "
                              f"normalized text has {expect}; BPB would be wrong with this tokenizer")
        checked += 1
    return checked

# -----------------------------
# TRITON KERNELS: THE MLP ACTIVATION (MLP_KERNEL=triton)
# -----------------------------
# The activations' one family (Activation's docstring). The backward reads g and h once and writes dh; for asqu the
# same pass sums g h^2 [h <= 0] per channel into per-program fp32 partials, which torch's column sum adds up in a
# fixed order: no atomics, the same bits every run. beta_grad_every (ASQU_BETA_GRAD_EVERY or 0: beta's gradient
# factor) is a plain argument: no kernel is compiled twice for it.
# Registered as custom ops with fake implementations, so torch.compile(fullgraph=True) keeps one graph around them.
# On CPU they run under TRITON_INTERPRET=1 (slow, for tests: the same program the GPU runs).

try:
    import triton
    import triton.language as tl
except Exception:  # missing or broken (any error at import): MLP_KERNEL=triton is refused with a ConfigError, and
    triton = sys.modules["triton"] = None  # torch (torch._dynamo imports it) takes it as missing too

TRITON_BLOCK_M, TRITON_BLOCK_N, TRITON_ROWS_PER_PROGRAM = 32, 128, 512  # tiles of 32 rows x 128 channels

if triton is not None:
    @triton.jit
    def squared_act_fwd_kernel(h_ptr, beta_ptr, y_ptr, rows, C, neg_coef, PER_CHANNEL: tl.constexpr,
                               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        # torch: y = torch.where(h > 0, h * h, coef * h * h), computed in fp32, stored in h's dtype
        r = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        c = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        mask = (r < rows)[:, None] & (c < C)[None, :]
        offsets = r.to(tl.int64)[:, None] * C + c[None, :]
        h = tl.load(h_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        if PER_CHANNEL:
            coef = tl.load(beta_ptr + c, mask=c < C, other=0.0).to(tl.float32)[None, :]
        else:
            coef = neg_coef
        y = h * h * tl.where(h > 0, 1.0, coef)
        tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def squared_act_bwd_kernel(g_ptr, h_ptr, beta_ptr, dh_ptr, partial_ptr, rows, C, neg_coef,
                               PER_CHANNEL: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr, BLOCK_M: tl.constexpr,
                               BLOCK_N: tl.constexpr):
        # torch: dh = 2 * g * h * torch.where(h > 0, 1, coef); partial[program] = (g * h * h * (h <= 0)).sum(rows)
        c = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        channel_mask = c < C
        if PER_CHANNEL:
            coef = tl.load(beta_ptr + c, mask=channel_mask, other=0.0).to(tl.float32)[None, :]
        else:
            coef = neg_coef
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        first_row = tl.program_id(0) * ROWS_PER_PROGRAM
        for start in range(0, ROWS_PER_PROGRAM, BLOCK_M):  # constant bounds (Triton 3.5's interpreter needs them)
            r = first_row + start + tl.arange(0, BLOCK_M)
            mask = (r < rows)[:, None] & channel_mask[None, :]
            offsets = r.to(tl.int64)[:, None] * C + c[None, :]
            h = tl.load(h_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            g = tl.load(g_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            gh = g * h
            negative = h <= 0
            dh = 2.0 * gh * tl.where(negative, coef, 1.0)
            tl.store(dh_ptr + offsets, dh.to(dh_ptr.dtype.element_ty), mask=mask)
            if PER_CHANNEL:
                acc += tl.where(negative, gh * h, 0.0)
        if PER_CHANNEL:
            tl.store(partial_ptr + tl.program_id(0) * C + c, tl.sum(acc, axis=0), mask=channel_mask)

@torch.library.custom_op("asqu_golf::squared_act", mutates_args=())
def squared_act(h: Tensor, beta: Tensor | None, neg_coef: float, beta_grad_every: float) -> Tensor:
    """f(h) with coef = beta (per channel, when given) or neg_coef; beta_grad_every: beta's gradient factor."""
    h2 = h.reshape(-1, h.size(-1)).contiguous()
    rows, C = h2.shape
    y = torch.empty_like(h2)
    grid = (triton.cdiv(rows, TRITON_BLOCK_M), triton.cdiv(C, TRITON_BLOCK_N))
    squared_act_fwd_kernel[grid](h2, h2 if beta is None else beta, y, rows, C, neg_coef, beta is not None,
                                 BLOCK_M=TRITON_BLOCK_M, BLOCK_N=TRITON_BLOCK_N)
    return y.view(h.shape)

@squared_act.register_fake
def _squared_act_fake(h, beta, neg_coef, beta_grad_every):
    return h.new_empty(h.shape)

@torch.library.custom_op("asqu_golf::squared_act_backward", mutates_args=())
def squared_act_backward(g: Tensor, h: Tensor, beta: Tensor | None, neg_coef: float,
                         beta_grad_every: float) -> tuple[Tensor, Tensor]:
    """(dh, dbeta): dbeta is fp32 of beta's size, times beta_grad_every; empty when beta is None."""
    C = h.size(-1)
    h2, g2 = h.reshape(-1, C).contiguous(), g.reshape(-1, C).contiguous()
    rows = h2.size(0)
    dh = torch.empty_like(h2)
    parts = triton.cdiv(rows, TRITON_ROWS_PER_PROGRAM)
    per_channel = beta is not None
    partial = torch.empty((parts if per_channel else 0, C), dtype=torch.float32, device=h.device)
    squared_act_bwd_kernel[(parts, triton.cdiv(C, TRITON_BLOCK_N))](
        g2, h2, beta if per_channel else h2, dh, partial, rows, C, neg_coef, per_channel,
        ROWS_PER_PROGRAM=TRITON_ROWS_PER_PROGRAM, BLOCK_M=TRITON_BLOCK_M, BLOCK_N=TRITON_BLOCK_N)
    # The partials' sum: a second small kernel, a fixed order (no atomics). Skipped (scale 0): zeros, for DDP.
    dbeta = partial.sum(0) * beta_grad_every if beta_grad_every else partial.new_zeros(partial.size(1))
    return dh.view(h.shape), dbeta

@squared_act_backward.register_fake
def _squared_act_backward_fake(g, h, beta, neg_coef, beta_grad_every):
    return h.new_empty(h.shape), h.new_empty(h.size(-1) if beta is not None else 0, dtype=torch.float32)

def _squared_act_setup(ctx, inputs, output) -> None:
    h, beta, ctx.neg_coef, ctx.beta_grad_every = inputs
    ctx.save_for_backward(h, beta)

def _squared_act_grad(ctx, g: Tensor):
    h, beta = ctx.saved_tensors
    dh, dbeta = squared_act_backward(g, h, beta, ctx.neg_coef, ctx.beta_grad_every)
    return dh, dbeta if ctx.needs_input_grad[1] else None, None, None

squared_act.register_autograd(_squared_act_grad, setup_context=_squared_act_setup)

# -----------------------------
# MODEL
# -----------------------------

class CastedLinear(nn.Linear):
    """fp32 weights cast to the compute dtype. Late QAT fake-quantizes int6=True matrices to the export's grid with
    a straight-through gradient; qat is an argument because torch.compile specializes on it on every version (a
    class attribute was constant-folded by some versions and recompiled by others). scale_floor: QUANT_SCALE_FLOOR,
    the export's (int6 matrices only)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, int6: bool = False,
                 zero_init: bool = False, scale_floor: float = 1.0):
        super().__init__(in_features, out_features, bias=bias)
        self.int6 = int6
        self.scale_floor = scale_floor
        self._zero_init = zero_init

    def forward(self, x: Tensor, qat: bool = False) -> Tensor:
        w = self.weight
        if qat and self.int6 and self.training:
            with torch.no_grad():
                scale = quant_scale(w.float().abs().amax(dim=1), 31, self.scale_floor)
                w_q = quantize_rows(w.float(), scale, 31) * scale[:, None].float()
            w = w + (w_q - w).detach()
        return F.linear(x, w.to(x.dtype))

def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))

def rotary_tables(seq_len: int, rope_dims: int, base: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos/sin for partial RoPE; beyond the 1024-token reference length the base is NTK-scaled."""
    if seq_len > 1024:
        base = base * (seq_len / 1024) ** (rope_dims / (rope_dims - 2))
    inv_freq = 1.0 / base ** (torch.arange(0, rope_dims, 2, dtype=torch.float32, device=device) / rope_dims)
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]

def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate-half RoPE over the first rope_dims of the last axis; the rest passes through."""
    r = cos.size(-1) * 2
    x1, x2, rest = x[..., : r // 2], x[..., r // 2: r], x[..., r:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin, rest), dim=-1)

class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, qk_gain_init: float, xsa: bool,
                 scale_floor: float = 1.0, kernel: AttentionKernel = AttentionKernel()):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        self.c_q = CastedLinear(dim, dim, int6=True, scale_floor=scale_floor)
        self.c_k = CastedLinear(dim, kv_dim, int6=True, scale_floor=scale_floor)
        self.c_v = CastedLinear(dim, kv_dim, int6=True, scale_floor=scale_floor)
        self.proj = CastedLinear(dim, dim, int6=True, zero_init=True, scale_floor=scale_floor)
        self.q_gain = nn.Parameter(torch.full((num_heads,), qk_gain_init, dtype=torch.float32))
        self.xsa = xsa
        self.kernel = kernel

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, v_embed: Tensor | None, qat: bool = False) -> Tensor:
        B, T, D = x.shape
        q = self.c_q(x, qat).reshape(B, T, self.num_heads, self.head_dim)
        k = self.c_k(x, qat).reshape(B, T, self.num_kv_heads, self.head_dim)
        v = self.c_v(x, qat)
        v = (v if v_embed is None else v + v_embed).reshape(B, T, self.num_kv_heads, self.head_dim)
        q, k = apply_rotary(rms_norm(q), cos, sin), apply_rotary(rms_norm(k), cos, sin)
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        y = self.kernel(q, k, v)
        if self.xsa:  # remove each head's component along its own (normalised) value vector
            y = y.reshape(B, T, self.num_kv_heads, -1, self.head_dim)
            vn = F.normalize(v, dim=-1).unsqueeze(-2)
            y = y - (y * vn).sum(-1, keepdim=True) * vn
        return self.proj(y.reshape(B, T, D), qat)

class AsquFunction(torch.autograd.Function):
    """ASQU's f (Activation's docstring). Saves only h (as relu2 does); the backward produces
    dh = 2 g p with p = (h > 0 ? h : beta h) and dbeta_c = sum over tokens of g h^2 [h <= 0] together,
    in the activation dtype with fp32 sums, times beta_grad_every (ASQU_BETA_GRAD_EVERY; 0 skips it)."""

    @staticmethod
    def forward(ctx, h: Tensor, beta: Tensor, beta_grad_every: float) -> Tensor:
        b = beta.to(h.dtype)
        ctx.save_for_backward(h, b)
        ctx.beta_grad_every = beta_grad_every
        return h * F.prelu(h.reshape(-1, h.size(-1)), b).view_as(h)  # prelu: per-channel slope on dim 1

    @staticmethod
    def backward(ctx, g: Tensor):
        h, b = ctx.saved_tensors
        C = h.size(-1)
        h2, g2, rows = h.reshape(-1, C), g.reshape(-1, C), h.numel() // C
        need_beta = ctx.needs_input_grad[1] and ctx.beta_grad_every
        acc = torch.promote_types(h.dtype, torch.float32)  # products in the activation dtype, fp32 sums
        if torch.compiler.is_compiling():
            # A form Inductor fuses well; on CPU, sums over groups of 8 rows first, because its code for
            # a plain column sum walks the tensor again column block by column block (2x slower, measured).
            gh, neg = g2 * h2, h2 <= 0
            dh = 2.0 * gh * torch.where(neg, b, 1.0)
            if need_beta:
                x = torch.where(neg, gh * h2, 0.0)
                if h.device.type == "cpu" and rows % 8 == 0:
                    x = x.view(rows // 8, 8, C).sum(1, dtype=acc)
                dbeta = x.sum(0, dtype=acc) * ctx.beta_grad_every
        else:  # eager: the fewest kernels and allocations
            dh = (g2 * F.prelu(h2, b)).mul_(2.0)
            if need_beta:
                m = h2.clamp(max=0)
                dbeta = m.mul_(m).mul_(g2).sum(0, dtype=acc) * ctx.beta_grad_every
        if not need_beta:  # skipped: a zero gradient, not None, so DDP's reducer sees beta
            dbeta = torch.zeros(C, dtype=torch.float32, device=h.device) if ctx.needs_input_grad[1] else None
        return dh.view_as(h), dbeta, None

class Activation(nn.Module):
    """An MLP activation: forward(h, beta_grad_every) -> f(h), all of one family: f(h) = h^2 for h > 0, coef h^2 for
    h <= 0, with coef = 0 (relu2), s^2 (leaky2, s = MLP_LEAKY_SLOPE) or a learned beta_c per hidden channel (asqu).
    One class per MLP_ACTIVATION choice (the ACTIVATIONS table) declares its settings (logged on the mlp_activation:
    line), its learned parameters per hidden channel (control tensors, in an AdamW group of their own named like the
    activation, with the LR and weight-decay settings in `group`), its warnings and its per-layer diagnostics.
    triton_kernel: MLP_KERNEL=triton."""
    settings: tuple[str, ...] = ()
    per_channel = 0
    group: tuple[str, str] | None = None
    triton_kernel = False

    @classmethod
    def from_args(cls, args: Hyperparameters, hidden: int) -> Activation:
        return cls()

    @classmethod
    def summary(cls, args: Hyperparameters) -> str:
        values = {name: getattr(args, name.lower()) for name in cls.settings}
        fields = [f"{name.lower()}:{int(v) if isinstance(v, bool) else v}" for name, v in values.items()]
        return " ".join([f"mlp_activation:{args.mlp_activation}", *fields])

    @classmethod
    def warnings(cls, args: Hyperparameters, grad_accum_steps: int) -> list[str]:
        return []

    def diagnostics(self) -> str | None:
        return None

class Relu2(Activation):
    """coef = 0, i.e. relu(h)^2: the March 22 record's."""

    def forward(self, h: Tensor, beta_grad_every: int = 1) -> Tensor:
        if self.triton_kernel:
            return squared_act(h, None, 0.0, 0.0)
        return torch.relu(h).square()

class Leaky2(Activation):
    """coef = s^2, i.e. leaky_relu(h, s)^2: the records after March 22 (s = 0.5)."""
    settings = ("MLP_LEAKY_SLOPE",)

    def __init__(self, slope: float):
        super().__init__()
        self.slope = slope

    @classmethod
    def from_args(cls, args: Hyperparameters, hidden: int) -> Activation:
        return cls(args.mlp_leaky_slope)

    def forward(self, h: Tensor, beta_grad_every: int = 1) -> Tensor:
        if self.triton_kernel:
            return squared_act(h, None, self.slope ** 2, 0.0)
        return F.leaky_relu(h, self.slope).square()

class ASQU(Activation):
    """Asymmetric Squared Unit: coef = beta_c, learned per hidden channel (Activation's docstring);
    beta_grad_every: the factor of beta's gradient on this micro-step, ASQU_BETA_GRAD_EVERY or 0 (skipped)."""
    settings = ("ASQU_BETA_INIT", "ASQU_LR", "ASQU_WD", "ASQU_SIGMOID_BETA", "ASQU_BETA_GRAD_EVERY")
    per_channel = 1
    group = ("ASQU_LR", "ASQU_WD")

    def __init__(self, hidden: int, beta_init: float, sigmoid_beta: bool):
        super().__init__()
        self.sigmoid_beta = sigmoid_beta
        init = math.log(beta_init / (1 - beta_init)) if sigmoid_beta else beta_init
        self.beta = nn.Parameter(torch.full((hidden,), init, dtype=torch.float32))

    @classmethod
    def from_args(cls, args: Hyperparameters, hidden: int) -> Activation:
        return cls(hidden, args.asqu_beta_init, args.asqu_sigmoid_beta)

    @classmethod
    def warnings(cls, args: Hyperparameters, grad_accum_steps: int) -> list[str]:
        if grad_accum_steps % args.asqu_beta_grad_every == 0:
            return []
        return [f"WARNING: ASQU_BETA_GRAD_EVERY={args.asqu_beta_grad_every} does not divide the {grad_accum_steps} "
                "micro-steps of a step: some steps update beta from no gradient, so it learns more slowly; set it "
                "to a divisor"]

    def diagnostics(self) -> str:
        beta = self.effective_beta().detach().float()
        return (f"beta_mean:{beta.mean().item():.4f} beta_std:{beta.std().item():.4f} "
                f"beta_min:{beta.min().item():.4f} beta_max:{beta.max().item():.4f}")

    def effective_beta(self) -> Tensor:
        return torch.sigmoid(self.beta) if self.sigmoid_beta else self.beta

    def forward(self, h: Tensor, beta_grad_every: int = 1) -> Tensor:
        if self.triton_kernel:
            return squared_act(h, self.effective_beta(), 0.0, float(beta_grad_every))
        return AsquFunction.apply(h, self.effective_beta(), beta_grad_every)

# MLP_ACTIVATION -> its class. A new activation is one class and one entry here.
ACTIVATIONS: dict[str, type[Activation]] = {"relu2": Relu2, "leaky2": Leaky2, "asqu": ASQU}
ACTIVATION_ALIASES = {"leaky_relu2": "leaky2"}  # the seed PR's names (the tools read this table too)

class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, args: Hyperparameters):
        super().__init__()
        self.fc = CastedLinear(dim, hidden, int6=True, scale_floor=args.quant_scale_floor)
        self.proj = CastedLinear(hidden, dim, int6=True, zero_init=True, scale_floor=args.quant_scale_floor)
        activation = ACTIVATIONS[args.mlp_activation].from_args(args, hidden)
        activation.triton_kernel = args.mlp_kernel == "triton"  # "auto" is resolved by runtime_from_env
        # Registered under its own name: the record's and the seed PR's state-dict keys (blocks.N.mlp.asqu.beta).
        self.activation_name = args.mlp_activation
        self.add_module(self.activation_name, activation)

    @property
    def activation(self) -> Activation:
        return self._modules[self.activation_name]

    def forward(self, x: Tensor, qat: bool = False, beta_grad_every: int = 1) -> Tensor:
        return self.proj(self.activation(self.fc(x, qat), beta_grad_every), qat)

class Block(nn.Module):
    def __init__(self, layer_idx: int, args: Hyperparameters, attention: AttentionKernel = AttentionKernel()):
        super().__init__()
        dim = args.model_dim
        xsa = layer_idx >= args.num_layers - args.xsa_last_n
        self.attn = CausalSelfAttention(dim, args.num_heads, args.num_kv_heads, args.qk_gain_init, xsa,
                                        args.quant_scale_floor, attention)
        self.mlp = MLP(dim, args.mlp_hidden, args)
        self.attn_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.mlp_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))).float())
        self.norm_scale = 1.0 / math.sqrt(layer_idx + 1) if args.ln_scale else 1.0

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, v_embed: Tensor | None, qat: bool = False,
                beta_grad_every: int = 1) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x) * self.norm_scale, cos, sin, v_embed, qat)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.norm_scale, qat, beta_grad_every)

class SmearGate(nn.Module):
    """x = (1 - g) x + g x_prev with a learned per-channel gate g = sigmoid(gate)."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate.to(x.dtype))
        x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        return (1 - g) * x + g * x_prev

class BigramHash(nn.Module):
    """Embedding of a hash of (previous token, token), projected to the model width."""

    def __init__(self, buckets: int, dim: int, model_dim: int):
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, dim)
        nn.init.zeros_(self.embed.weight)
        self.proj = CastedLinear(dim, model_dim)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(0.05, dtype=torch.float32))

    def bucket_ids(self, ids: Tensor) -> Tensor:
        t, mod = ids.to(torch.int32), self.buckets - 1
        out = torch.full_like(t, mod)  # position 0 has no previous token
        out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
        return out.long()

    def forward(self, ids: Tensor) -> Tensor:
        h = self.proj(self.embed(self.bucket_ids(ids)))
        return h * self.scale.to(h.dtype)

class ValueEmbedding(nn.Module):
    """Shared token table added to the attention values of selected layers."""

    def __init__(self, vocab_size: int, dim: int, kv_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.embed.weight, std=0.01)
        self.proj = CastedLinear(dim, kv_dim)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(0.1, dtype=torch.float32))

    def forward(self, ids: Tensor) -> Tensor:
        h = self.proj(self.embed(ids))
        return h * self.scale.to(h.dtype)

class GPT(nn.Module):
    def __init__(self, args: Hyperparameters, attention: AttentionKernel = AttentionKernel()):
        super().__init__()
        L, dim = args.num_layers, args.model_dim
        head_dim = dim // args.num_heads
        self.rope_dims = args.rope_dims or head_dim
        self.rope_base = args.rope_base
        self.softcap = args.logit_softcap
        self.tok_emb = nn.Embedding(args.vocab_size, dim)
        self.bigram = BigramHash(args.bigram_vocab_size, args.bigram_dim, dim) if args.bigram_vocab_size else None
        self.smear = SmearGate(dim)
        self.num_encoder_layers = L // 2
        self.skip_weights = nn.Parameter(torch.ones(min(L // 2, L - L // 2), dim, dtype=torch.float32))
        self.blocks = nn.ModuleList(Block(i, args, attention) for i in range(L))
        self.ve_layers = args.ve_layer_list
        if self.ve_layers:
            self.ve_shared = ValueEmbedding(args.vocab_size, args.ve_dim, args.num_kv_heads * head_dim)
            self.ve_layer_scales = nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in self.ve_layers)
        self.lm_head = None if args.tie_embeddings else CastedLinear(dim, args.vocab_size, zero_init=True)
        self._init_weights(args)

    def _init_weights(self, args: Hyperparameters) -> None:
        nn.init.normal_(self.tok_emb.weight, std=args.tied_embed_init_std)
        for name, m in self.named_modules():
            if getattr(m, "_zero_init", False):
                nn.init.zeros_(m.weight)
            elif isinstance(m, nn.Linear) and min(m.weight.shape) >= 64:
                nn.init.orthogonal_(m.weight)
                if name.endswith("proj"):  # bigram.proj, ve_shared.proj (block projs are zero)
                    with torch.no_grad():
                        m.weight.mul_(1.0 / math.sqrt(2 * args.num_layers))

    def forward(self, ids: Tensor, targets: Tensor | None = None, qat: bool = False,
                beta_grad_every: int = 1) -> Tensor:
        """Mean cross-entropy with targets, else soft-capped logits (B, T, V); qat, beta_grad_every: per-step."""
        x = self.tok_emb(ids)
        if self.bigram is not None:
            x = x + self.bigram(ids)
        x = self.smear(rms_norm(x))
        x0 = x
        cos, sin = rotary_tables(ids.size(1), self.rope_dims, self.rope_base, ids.device)
        ve = self.ve_shared(ids) if self.ve_layers else None
        skips: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            if i >= self.num_encoder_layers and skips:  # U-Net: decoders take encoder outputs, newest first
                x = x + self.skip_weights[i - self.num_encoder_layers].to(x.dtype) * skips.pop()
            v_embed = ve * self.ve_layer_scales[self.ve_layers.index(i)].to(ve.dtype) if i in self.ve_layers else None
            x = block(x, x0, cos, sin, v_embed, qat, beta_grad_every)
            if i < self.num_encoder_layers:
                skips.append(x)
        x = rms_norm(x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.tok_emb.weight.to(x.dtype))
        logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits if targets is None else F.cross_entropy(logits.float().flatten(0, 1), targets.reshape(-1))

# Control tensors: scales, mixes, gains, skip weights, gates, and every activation's parameters (ASQU beta).
# fp32 always, AdamW, never quantized.
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights", "smear.gate",
                    "bigram.scale", "ve_shared.scale", "ve_layer_scales")

def activation_of(name: str) -> str | None:
    """The activation a parameter belongs to (blocks.N.mlp.<activation>.*), else None."""
    return next((act for act in ACTIVATIONS if f".mlp.{act}." in name), None)

def is_control(name: str) -> bool:
    return any(p in name for p in CONTROL_PATTERNS) or activation_of(name) is not None

def build_model(args: Hyperparameters, rt: Runtime) -> GPT:
    """bf16: the record's layout, all cast to bf16 (so rounded), then linears and control params back to fp32."""
    model = GPT(args, rt.attention).to(rt.device)
    if rt.bf16:
        model.bfloat16()
        for m in model.modules():
            if isinstance(m, CastedLinear):
                m.float()
        for name, p in model.named_parameters():
            if p.ndim < 2 or is_control(name):
                p.data = p.data.float()
    return model

# -----------------------------
# EVALUATION: BITS PER BYTE
# -----------------------------

@dataclass
class ValData:
    tokens: Tensor  # int64 validation stream (CPU), a multiple of EVAL_SEQ_LEN plus one
    nbytes: Tensor  # int16 bytes each position's token adds to the text (stream_bytes)

class Progress:
    """Console line (rank 0) every ~10% or ~30 s of a long phase; progress: lines never go to the logs."""

    def __init__(self, what: str, total: int, total_tokens: int):
        self.what, self.total, self.total_tokens = what, max(total, 1), total_tokens
        self.next_fraction = 0.1
        self.t0 = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        frac = done / self.total
        if frac < self.next_fraction and now - self.last < 30:
            return
        self.next_fraction = math.floor(frac * 10 + 1) / 10
        self.last = now
        elapsed = now - self.t0
        print(f"progress: {self.what} {100 * frac:.0f}% tokens:{int(frac * self.total_tokens):,}/{self.total_tokens:,} "
              f"elapsed:{elapsed:.0f}s eta:{elapsed / max(frac, 1e-9) - elapsed:.0f}s", flush=True)

def sliding_windows(total_targets: int, seq_len: int, stride: int) -> tuple[Tensor, Tensor]:
    """Window starts and scored counts: window j ends at seq_len + j*stride, the last at the end."""
    ends = torch.tensor(list(range(seq_len, total_targets, stride)) + [total_targets], dtype=torch.int64)
    return ends - seq_len, torch.diff(ends, prepend=torch.zeros(1, dtype=torch.int64))

def eval_sums(args: Hyperparameters, model: nn.Module, rt: Runtime, val: ValData, stride: int, batch_seqs: int,
              progress: str | None = None) -> Tensor:
    """This rank's float64 (loss, tokens, bytes) sums over EVAL_SEQ_LEN windows, one every `stride` tokens."""
    seq_len = args.eval_seq_len
    starts, scored = sliding_windows(val.tokens.numel() - 1, seq_len, stride)
    first, last = starts.numel() * rt.rank // rt.world_size, starts.numel() * (rt.rank + 1) // rt.world_size
    offsets, positions = torch.arange(seq_len + 1), torch.arange(seq_len, device=rt.device)
    sums = torch.zeros(3, device=rt.device, dtype=torch.float64)
    meter = Progress(progress, last - first, val.tokens.numel() - 1) if progress and rt.master else None
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for b in range(first, last, batch_seqs):
            idx = slice(b, min(b + batch_seqs, last))
            pos = starts[idx, None] + offsets  # (B, seq_len + 1) stream positions
            windows = val.tokens[pos].to(rt.device)
            x, y = windows[:, :-1], windows[:, 1:]
            with autocast_ctx(rt):
                logits = model(x)
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            mask = positions[None, :] >= (seq_len - scored[idx].to(rt.device))[:, None]
            sums[0] += (nll.view_as(mask).double() * mask).sum()
            sums[1] += mask.sum()
            sums[2] += (val.nbytes[pos[:, 1:]].to(rt.device).double() * mask).sum()
            if meter:
                meter.update(idx.stop - first)
    model.train(was_training)
    return sums

def finish_bpb(sums: Tensor, rt: Runtime) -> tuple[float, float]:
    """(val_loss, val_bpb) from the ranks' summed (loss, tokens, bytes)."""
    if rt.distributed:
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    val_loss = (sums[0] / sums[1]).item()
    if not math.isfinite(val_loss):  # fail loudly rather than report a score (PR #769)
        raise RunError(f"non-finite validation loss ({val_loss}); the weights diverged or the eval is broken")
    return val_loss, val_loss / math.log(2.0) * sums[1].item() / sums[2].item()

def eval_val(args: Hyperparameters, model: nn.Module, rt: Runtime, val: ValData, progress: str | None = None):
    """The plain eval: non-overlapping EVAL_SEQ_LEN windows, VAL_BATCH_SIZE tokens per batch over all ranks."""
    batch_seqs = max(1, args.val_batch_size // (rt.world_size * rt.grad_accum_steps * args.eval_seq_len))
    return finish_bpb(eval_sums(args, model, rt, val, args.eval_seq_len, batch_seqs, progress), rt)

def eval_val_sliding(args: Hyperparameters, model: nn.Module, rt: Runtime, val: ValData, progress: str | None = None):
    """The headline metric: EVAL_STRIDE windows, EVAL_BATCH_SEQS per batch."""
    return finish_bpb(eval_sums(args, model, rt, val, args.eval_stride, args.eval_batch_seqs, progress), rt)

# -----------------------------
# EXPORT: GPTQ-LITE INT6 / INT8 ARTIFACT
# -----------------------------
# Rules in order: control tensors (incl. ASQU beta) fp32; attention and MLP matrices int6 per row, the clip percentile
# with least error chosen per row; other small floats (<= 65,536 elements) fp16; embeddings, other large floats int8.

SMALL_TENSOR_NUMEL = 65_536
INT8_CLIP_Q = 0.9999984
ARTIFACT_FORMAT = "asqu-golf-int6-v1"  # the payload: torch.save of format, tensors, meta, model_settings, shuffled
FP16_TINY = 2.0 ** -24  # smallest fp16 subnormal: keeps scales non-zero for all-zero rows
# The file: a line "asqu-golf-artifact-v2 <compressor> sha256:<digest of the rest>", then the compressed payload.
ARTIFACT_HEADER = b"asqu-golf-artifact-v2 "
SIZE_LIMIT = 16_000_000  # bytes of a submission: code and artifact
RAW_LIMIT = 2**30  # bytes: no payload of an artifact that fits SIZE_LIMIT decompresses to more
# Compressor -> (its package or None; compress; decompress at most n bytes). zstd and lzma check their output too.
CODECS = {
    "zstd": (zstandard, lambda raw: zstandard.ZstdCompressor(level=22, write_checksum=True).compress(raw),
             lambda body, n: zstandard.ZstdDecompressor().stream_reader(body).read(n)),
    "brotli": (brotli, lambda raw: brotli.compress(raw, quality=11),
               lambda body, n: brotli.Decompressor().process(body, output_buffer_limit=n)),
    "lzma": (lzma, lambda raw: lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME),
             lambda body, n: lzma.LZMADecompressor().decompress(body, max_length=n)),
    "zlib": (zlib, None, lambda body, n: zlib.decompressobj().decompress(body, n)),  # read only: before zstd was
}

def quant_scale(row_clip: Tensor, qmax: int, floor: float) -> Tensor:
    """fp16 per-row scales for codes in [-qmax, qmax]; clips below floor are raised to it."""
    return (row_clip.clamp_min(floor) / qmax).clamp_min(FP16_TINY).to(torch.float16)

def quantize_rows(w: Tensor, scale: Tensor, qmax: int) -> Tensor:
    return torch.clamp(torch.round(w / scale.float()[:, None]), -qmax, qmax)

def row_quantiles(a: Tensor, qs: list[float]) -> Tensor:
    """torch.quantile(a, q, dim=1) (linear interpolation) for several q with one sort: (len(qs), rows)."""
    s = a.sort(dim=1).values
    out = []
    for q in qs:
        pos = q * (a.size(1) - 1)
        lo, frac = int(math.floor(pos)), pos - math.floor(pos)
        hi = min(lo + 1, a.size(1) - 1)
        out.append(s[:, lo] + (s[:, hi] - s[:, lo]) * frac)
    return torch.stack(out)

def quantize_int6(w: Tensor, percentiles: list[float], floor: float) -> tuple[Tensor, Tensor, float]:
    """Per-row int6 with the least-squared-error clip among the candidates; returns codes, fp16 scales, MSE."""
    w = w.float()
    scales = torch.stack([quant_scale(clip, 31, floor) for clip in row_quantiles(w.abs(), percentiles)])  # (C, rows)
    codes = torch.stack([quantize_rows(w, s, 31) for s in scales])  # (C, rows, cols)
    err = (codes * scales.float()[:, :, None] - w).square().sum(dim=2)
    best, rows = err.argmin(dim=0), torch.arange(w.size(0), device=w.device)  # the first of equal errors
    return codes[best, rows].to(torch.int8), scales[best, rows], err[best, rows].sum().item() / w.numel()

def quantize_int8(w: Tensor, floor: float) -> tuple[Tensor, Tensor]:
    w = torch.atleast_2d(w.float())  # a vector is one row
    s = quant_scale(row_quantiles(w.abs(), [INT8_CLIP_Q])[0], 127, floor)
    return quantize_rows(w, s, 127).to(torch.int8), s

def shuffle_bytes(t: Tensor, back: bool = False) -> Tensor:
    """A tensor's bytes grouped by place (every first byte, then every second, ...), kept as its dtype and shape:
    multi-byte numbers compress better so; back=True restores them."""
    b = t.reshape(-1).view(torch.uint8)
    b = b.view(t.element_size(), -1).T if back else b.view(-1, t.element_size()).T
    return b.reshape(-1).view(t.dtype).view(t.shape)

def quantize_state_dict(sd: dict[str, Tensor], percentiles: list[float], floor: float,
                        shuffle: bool = False) -> tuple[dict, dict[str, float]]:
    """Returns the artifact payload (shuffle: its tensors' bytes shuffled) and the int6 MSE of each quantized matrix."""
    tensors, meta, mse = {}, {}, {}
    for name, t in sd.items():
        t = t.detach()
        if not t.is_floating_point():
            tensors[name], meta[name] = t.cpu(), "raw"
        elif is_control(name):
            tensors[name], meta[name] = t.float().cpu(), "fp32"
        elif t.ndim == 2 and name.startswith("blocks.") and (".attn." in name or ".mlp." in name):
            q, s, mse[name] = quantize_int6(t, percentiles, floor)
            tensors[name + ".q"], tensors[name + ".scale"], meta[name] = q.cpu(), s.cpu(), "int6"
        elif t.numel() <= SMALL_TENSOR_NUMEL:
            tensors[name], meta[name] = t.half().cpu(), "fp16"
        else:
            q, s = quantize_int8(t, floor)
            tensors[name + ".q"], tensors[name + ".scale"], meta[name] = q.cpu(), s.cpu(), "int8"
        meta[name] = {"kind": meta[name], "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
    tensors = {key: shuffle_bytes(t) if shuffle else t for key, t in tensors.items()}
    return {"format": ARTIFACT_FORMAT, "tensors": tensors, "meta": meta, "shuffled": shuffle}, mse

def dequantize_state_dict(payload: dict) -> dict[str, Tensor]:
    tensors, out = {k: shuffle_bytes(t, back=True) if payload.get("shuffled") is True else t
                    for k, t in payload["tensors"].items()}, {}
    for name, info in payload["meta"].items():
        dtype = getattr(torch, str(info["dtype"]), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"its meta gives {name} the dtype {info['dtype']!r}, which torch lacks")
        if info["kind"] in ("int6", "int8"):
            q, s = tensors[name + ".q"], tensors[name + ".scale"]
            out[name] = (q.float() * s.float()[:, None]).reshape(info["shape"]).to(dtype)
        else:
            out[name] = tensors[name].to(dtype)
    return out

def compress(raw: bytes, method: str) -> bytes:
    """The artifact file: its header line (compressor, sha256 of the rest), then the compressed payload."""
    body = CODECS[method][1](raw)
    return ARTIFACT_HEADER + f"{method} sha256:{hashlib.sha256(body).hexdigest()}\n".encode() + body

def load_artifact(blob: bytes, name: str) -> tuple[dict[str, Tensor], dict]:
    """The state dict and model settings an artifact holds; damaged bytes, or not an artifact's, are one error line."""
    head, _, body = blob.partition(b"\n")
    method, _, digest = head.removeprefix(ARTIFACT_HEADER).decode("latin-1").partition(" sha256:")
    if blob[:1] in (b"\x28", b"\x78"):  # written before the header: a bare zstd or zlib payload
        method, body = "zstd" if blob[:1] == b"\x28" else "zlib", blob
    elif not blob.startswith(ARTIFACT_HEADER):
        raise RunError(f"artifact {name} is damaged or not an artifact of this script: it begins with neither its "
                       "header line nor a zstd or zlib stream (final_model.pt holds the raw weights, not the artifact)")
    elif method not in CODECS or digest != hashlib.sha256(body).hexdigest():
        raise RunError(f"artifact {name} is damaged: its bytes are not those written (the sha256 digest in its "
                       "header does not match); copy it again from the run's folder")
    if CODECS[method][0] is None:
        raise RunError(f"artifact {name} is {method}-compressed and this Python lacks that compressor's package "
                       "(pip install -r requirements.txt)")
    try:
        raw = CODECS[method][2](body, RAW_LIMIT + 1)
        if len(raw) > RAW_LIMIT:
            raise ValueError(f"it decompresses to more than {RAW_LIMIT:,} bytes, more than any artifact holds")
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"it is not a {ARTIFACT_FORMAT} payload")
        if not isinstance(payload.get("model_settings", {}), dict):
            raise ValueError("its model_settings is not a table of settings")
        return dequantize_state_dict(payload), payload.get("model_settings", {})
    except pickle.UnpicklingError:  # torch's advice to load it with weights_only=False does not apply
        reason = "it holds Python objects besides tensors and tables (refused by torch.load(weights_only=True))"
    except KeyError as exc:
        reason = f"its entry {exc} is missing"
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    raise RunError(f"artifact {name} is damaged, truncated or not an artifact of this script: {reason}")

def read_eval_only_artifact(args: Hyperparameters) -> bytes:
    """EVAL_ONLY's file, checked before anything is written: an artifact of this script, built with these settings."""
    path = Path(args.eval_only)
    if not path.is_file():
        raise ConfigError(f"EVAL_ONLY={path} is not a file; give the path of a run's final_model.int6.ptz")
    if path.stat().st_size > SIZE_LIMIT:  # refused unread (a sparse file can claim any size)
        raise ConfigError(f"EVAL_ONLY={path} is {path.stat().st_size:,} bytes, more than any submission can be "
                          f"({SIZE_LIMIT:,}); it is not an artifact of this script")
    blob = path.read_bytes()
    try:
        built = load_artifact(blob, str(path))[1]  # built with these settings: its tensors fit this model
    except RunError as exc:
        raise ConfigError(f"EVAL_ONLY: {exc}") from None
    differ = [f"{name}={built[name]} (here {value})" for name, value in args.model_settings().items()
              if name in built and built[name] != value]
    if differ:
        raise ConfigError(f"EVAL_ONLY={path} was built for another configuration: {', '.join(differ)}; set the "
                          "settings of the run that wrote it (its log's config: line)")
    return blob

# -----------------------------
# FILES AND LOGGING
# -----------------------------
# Working folder: logs/<RUN_ID>.txt, train_seed<SEED>.log (train.log for seed 1337); runs/<RUN_ID>/final_model.pt
# and .int6.ptz, hard-linked as the folder's latest. Nothing is overwritten: earlier files are kept as NAME.1,
# NAME.2, ...

@dataclass
class ExitContext:
    """For the exit handlers (end of this file), to report an error or a signal: the rank (who prints), the log once
    open, the step while the timed loop runs ("interrupted: SIGINT step:5/20"), the RUN_ID lock (held to the end)."""
    rank: int = 0
    log: Logger | None = None
    step: int | None = None
    iterations: int = 0
    lock: object = None

def cannot_write(path: Path | str, exc: OSError, fix: str, kind: type[Exception] = RunError) -> Exception:
    """The one error line for a path that cannot be written: the path, the system's reason, what to do."""
    return kind(f"cannot write {path}: {exc.strerror or exc}; {fix}")

def keep_existing(path: Path, into: Path | None = None) -> Path | None:
    """Move an earlier file aside (into/NAME, or NAME.1, NAME.2, ... there) instead of overwriting it."""
    if not path.exists():
        return None
    folder = into or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(INT_LIMIT):
        kept = folder / (f"{path.name}.{k}" if k else path.name)
        with contextlib.suppress(FileExistsError):  # the name is claimed first: a run keeping a file at the same
            if path.is_dir():  # instant takes the next one (a folder is renamed over the empty folder claimed)
                os.mkdir(kept)
            else:
                os.close(os.open(kept, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return path.replace(kept)

def write_file(path: Path, data: bytes) -> None:
    """Atomic write through a temporary name unique to this process; a failure leaves no partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise cannot_write(path, exc, "free disk space or use a writable folder") from None

def publish_latest(path: Path, log) -> None:
    """./NAME as a hard link to runs/<RUN_ID>/NAME (a copy where links fail); a lone earlier ./NAME: runs/earlier/."""
    latest, tmp = Path(path.name), Path(f".{path.name}.{os.getpid()}.tmp")
    try:
        if latest.exists() and latest.stat().st_nlink == 1:
            log(f"kept earlier {latest} as {keep_existing(latest, Path('runs') / 'earlier')}")
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, latest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise cannot_write(latest, exc, f"this run's file is kept at {path}") from None

def check_output_folders(run_id: str) -> None:
    """The folders a run writes into are folders (or absent): checked before anything is written."""
    for folder in (Path("logs"), Path("runs"), Path("runs") / run_id):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} is a file, not a folder: this script writes logs/<RUN_ID>.txt and "
                              "runs/<RUN_ID>/; move or rename that file, or run from another folder")

def lock_run_id(run_id: str):
    """Refuse a second live run with this RUN_ID in this folder; the lock dies with the process."""
    import fcntl
    run_dir = Path("runs") / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / ".lock", "w")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another process holds it
        raise ConfigError(f"RUN_ID={run_id} belongs to a run still going in this folder; set another RUN_ID") from None
    except OSError as exc:
        raise cannot_write(run_dir, exc, "run from a writable folder", ConfigError) from None
    return handle

class Logger:
    """Rank 0 writes every line to logs/<RUN_ID>.txt and train_seed<SEED>.log (and train.log for seed 1337)."""

    def __init__(self, args: Hyperparameters, master: bool):
        self.files = []
        self.kept = []  # "kept earlier ... as ..." lines, logged in the header
        self.path = None
        if not master:
            return
        paths = [Path("logs") / f"{args.run_id}.txt"]
        if not args.eval_only:  # a scoring run leaves the training logs of this folder as they are
            paths += [Path(f"train_seed{args.seed}.log")] + [Path("train.log")] * (args.seed == 1337)
        target = Path("logs")
        try:
            target.mkdir(exist_ok=True)
            for target in paths:
                if kept := keep_existing(target):
                    self.kept.append(f"kept earlier {target} as {kept}")
                self.files.append(open(target, "a", encoding="utf-8"))
        except OSError as exc:
            raise cannot_write(target, exc, "run from a writable folder", ConfigError) from None
        self.path = paths[0]
        print(f"logs: {self.path}", flush=True)

    def __call__(self, msg: str, console: bool = True) -> None:
        if console and self.path:
            print(msg, flush=True)
        try:
            for f in self.files:
                f.write(msg + "\n")
                f.flush()
        except OSError as exc:
            self.files = []
            raise cannot_write(f"the log {self.path}", exc, "free disk space") from None

# -----------------------------
# TRAINING
# -----------------------------

def param_groups(model: GPT) -> dict[str, list[nn.Parameter]]:
    """Every parameter in exactly one group: muon (matrices), embed, head (untied), scalar (control), and the
    activation's own group, named like it (ASQU's beta: "asqu")."""
    groups = {"muon": [], "embed": [], "head": [], "scalar": []}
    for name, p in model.named_parameters():
        if activation := activation_of(name):
            groups.setdefault(activation, []).append(p)
        elif is_control(name) or p.ndim < 2:
            groups["scalar"].append(p)
        elif name.endswith("embed.weight") or name == "tok_emb.weight":
            groups["embed"].append(p)
        elif name.startswith("lm_head"):
            groups["head"].append(p)
        else:
            groups["muon"].append(p)
    return groups

def build_optimizers(model: GPT, args: Hyperparameters, rt: Runtime) -> dict[str, torch.optim.Optimizer]:
    """One optimizer per group, keyed like param_groups; each param group remembers its base_lr."""
    groups = param_groups(model)
    adam = dict(betas=(args.beta1, args.beta2), eps=args.adam_eps, fused=rt.device.type == "cuda")
    embed_lr = args.tied_embed_lr if args.tie_embeddings else args.embed_lr
    opts = {
        "embed": torch.optim.AdamW([{"params": groups["embed"], "lr": embed_lr}], weight_decay=args.adam_wd, **adam),
        "muon": Muon(groups["muon"], lr=args.matrix_lr, momentum=args.muon_momentum,
                     backend_steps=args.muon_backend_steps, weight_decay=args.muon_wd, orthogonalize=
                     torch.compile(zeropower_via_newtonschulz5) if rt.compile else zeropower_via_newtonschulz5),
        "scalar": torch.optim.AdamW([{"params": groups["scalar"], "lr": args.scalar_lr}], weight_decay=args.adam_wd,
                                    **adam),
    }
    for activation in groups.keys() & ACTIVATIONS.keys():  # the activation's own low-LR group (ASQU_LR, ASQU_WD)
        lr, weight_decay = (getattr(args, name.lower()) for name in ACTIVATIONS[activation].group)
        opts[activation] = torch.optim.AdamW([{"params": groups[activation], "lr": lr}], weight_decay=weight_decay,
                                             **adam)
    if groups["head"]:
        opts["head"] = torch.optim.Adam([{"params": groups["head"], "lr": args.head_lr}], **adam)
    for opt in opts.values():
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return opts

def lr_scale(args: Hyperparameters, step: int, elapsed_ms: float) -> float:
    """1.0, then linear to 0 over the last WARMDOWN_ITERS steps (with a wall-clock cap: their estimated time)."""
    if args.warmdown_iters <= 0:
        return 1.0
    if args.max_wallclock_seconds <= 0:
        return min(1.0, max(args.iterations - step, 0) / args.warmdown_iters)
    warmdown_ms = args.warmdown_iters * elapsed_ms / max(step, 1)
    remaining_ms = max(1000.0 * args.max_wallclock_seconds - elapsed_ms, 0.0)
    return remaining_ms / max(warmdown_ms, 1e-9) if remaining_ms <= warmdown_ms else 1.0

def log_activation_diagnostics(model: GPT, log) -> None:
    """Per layer, the activation's learned state: asqu_diag layer:i beta_mean:... (none for relu2, leaky2)."""
    for i, block in enumerate(model.blocks):
        if line := block.mlp.activation.diagnostics():
            log(f"{block.mlp.activation_name}_diag layer:{i} {line}")

def compiled_graphs() -> int:  # graphs torch.compile has built in this process
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])

@dataclass
class Trainer:
    args: Hyperparameters
    rt: Runtime
    model: nn.Module  # DDP(compiled(base)) or less
    compiled: nn.Module  # compiled(base) or base: evaluation
    base: GPT
    optimizers: dict[str, torch.optim.Optimizer]
    loader: DistributedTokenLoader

    def step(self, step: int, scale: float, qat: bool, beta_phase: int | None = None) -> Tensor:
        """One optimizer step over grad_accum_steps micro-batches at LR x scale; returns the local mean loss. Beta's
        gradient comes on every ASQU_BETA_GRAD_EVERY-th micro-step, counted from step (or beta_phase, the warm-up's)."""
        args, accum, every = self.args, self.rt.grad_accum_steps, self.args.asqu_beta_grad_every
        phase = step if beta_phase is None else beta_phase
        total = torch.zeros((), device=self.rt.device)
        for micro in range(accum):
            if self.rt.distributed:
                self.model.require_backward_grad_sync = micro == accum - 1
            beta_grad_every = every if (phase * accum + micro) % every == 0 else 0
            x, y = self.loader.next_batch(args.train_batch_tokens, args.train_seq_len, accum)
            with autocast_ctx(self.rt):
                loss = self.model(x, y, qat=qat, beta_grad_every=beta_grad_every)
            total += loss.detach()
            (loss / accum).backward()
        frac = min(step / args.muon_momentum_warmup_steps, 1.0) if args.muon_momentum_warmup_steps > 0 else 1.0
        self.optimizers["muon"].param_groups[0]["momentum"] = ((1 - frac) * args.muon_momentum_warmup_start
                                                               + frac * args.muon_momentum)
        if args.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.base.parameters(), args.grad_clip_norm)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
            opt.step()
            opt.zero_grad(set_to_none=True)
        return total / accum

def warmup_phases(args: Hyperparameters, rt: Runtime) -> tuple[int, int]:
    """(QAT phases, beta-gradient phases of a step): each pair is a graph variant the warm-up must compile."""
    return (2 if args.late_qat_threshold > 0 else 1), math.ceil(args.asqu_beta_grad_every / rt.grad_accum_steps)

def warm_up(tr: Trainer, train_files: list[Path], log) -> None:
    """WARMUP_STEPS real steps compile every graph variant of the timed loop (QAT off/on, beta phases); reset."""
    args, rt = tr.args, tr.rt
    qat_phases, beta_phases = warmup_phases(args, rt)
    t0 = time.perf_counter()
    if args.warmup_steps > 0:
        initial_model = copy.deepcopy(tr.base.state_dict())
        initial_opts = {k: copy.deepcopy(opt.state_dict()) for k, opt in tr.optimizers.items()}
        for ws in range(args.warmup_steps):
            tr.step(ws, 1.0, qat=qat_phases == 2 and ws >= args.warmup_steps // 2, beta_phase=ws % beta_phases)
            log(f"warmup_step:{ws + 1}/{args.warmup_steps}")
        tr.base.load_state_dict(initial_model)
        for k, opt in tr.optimizers.items():
            opt.load_state_dict(initial_opts[k])
        tr.loader = DistributedTokenLoader(train_files, rt)
    sync(rt.device)
    log(f"warmup_done time:{1000.0 * (time.perf_counter() - t0):.0f}ms graphs:{compiled_graphs()}")

@dataclass
class LoopState:
    """The timed loop's state: the clock (training_ms: up to t0, its last restart; synced_ms: the ranks' mean, so all
    take one LR, QAT switch and stop), late QAT, EMA and SWA weights, graphs compiled in the loop (warm-up: none)."""
    ema: dict[str, Tensor]
    cap_ms: float | None
    t0: float = 0.0
    step: int = 0
    training_ms: float = 0.0
    synced_ms: float = 0.0
    qat: bool = False
    swa: dict[str, Tensor] | None = None
    swa_count: int = 0
    new_graphs: int = 0

def train(tr: Trainer, val: ValData, log, ctx: ExitContext) -> dict[str, Tensor] | None:
    """The timed loop, validation off the clock. Returns the FINAL_WEIGHTS (None: raw, in place)."""
    args, rt = tr.args, tr.rt
    s = LoopState({k: v.detach().float().clone() for k, v in tr.base.state_dict().items()},
                  1000.0 * args.max_wallclock_seconds if args.max_wallclock_seconds > 0 else None)
    ctx.iterations = args.iterations
    sync(rt.device)
    s.t0 = time.perf_counter()
    if args.iterations == 0 or args.val_loss_every > 0:
        validate(tr, val, log, s)
    capped = False
    while s.step < args.iterations and not capped:
        ctx.step = s.step
        capped = timed_step(tr, s, log)
        ctx.step = s.step
        if capped or s.step == args.iterations or (args.val_loss_every > 0 and s.step % args.val_loss_every == 0):
            validate(tr, val, log, s)
    if capped and s.step < args.iterations:
        log(f"stopping_early: wallclock_cap train_time:{s.training_ms:.0f}ms step:{s.step}/{args.iterations}")
    log(f"recompiles_after_warmup:{s.new_graphs}")
    if rt.device.type == "cuda":
        log(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB "
            f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")
    if not ema_too_short(args, args.iterations) and (line := ema_too_short(args, s.step)):
        log(line)  # the cap stopped the run early (a short ITERATIONS was said before training)
    return final_weights(args, s, log)

def validate(tr: Trainer, val: ValData, log, s: LoopState) -> None:
    """Off the clock: the validation line at this step and the activation's diagnostics."""
    sync(tr.rt.device)
    s.training_ms += 1000.0 * (time.perf_counter() - s.t0)
    val_loss, val_bpb = eval_val(tr.args, tr.model, tr.rt, val)
    log(f"step:{s.step}/{tr.args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
        f"train_time:{s.training_ms:.0f}ms step_avg:{s.training_ms / max(s.step, 1):.2f}ms")
    log_activation_diagnostics(tr.base, log)
    sync(tr.rt.device)
    s.t0 = time.perf_counter()

def timed_step(tr: Trainer, s: LoopState, log) -> bool:
    """One step on the clock: LR scale, late QAT, the step, EMA and SWA, the ranks' status and the train-loss line.
    Returns whether the wall-clock cap is reached (on any rank)."""
    args = tr.args
    scale = lr_scale(args, s.step, s.synced_ms)
    if args.late_qat_threshold > 0 and scale < args.late_qat_threshold and not s.qat:
        s.qat = True
        log(f"late_qat:enabled step:{s.step} scale:{scale:.4f}")
        elapsed = s.synced_ms / s.cap_ms if s.cap_ms else s.step / args.iterations
        if elapsed < 0.2:
            log(f"WARNING: late QAT switched on {100 * elapsed:.0f}% into training (the warmdown is longer "
                "than the run): most of the run trains fake-quantized; lower WARMDOWN_ITERS or LATE_QAT_THRESHOLD")
    graphs = compiled_graphs()
    train_loss = tr.step(s.step, scale, s.qat)
    s.new_graphs += compiled_graphs() - graphs
    with torch.no_grad():
        state = tr.base.state_dict()
        torch._foreach_lerp_(list(s.ema.values()), [state[k].float() for k in s.ema], 1.0 - args.ema_decay)
    s.step += 1
    if args.final_weights == "swa" and scale < 0.2 and s.step % args.swa_every == 0:
        if s.swa is None:
            s.swa = {k: v.detach().float().clone() for k, v in state.items()}
            log(f"swa:start step:{s.step}")
        else:
            torch._foreach_add_(list(s.swa.values()), [state[k].float() for k in s.swa])
        s.swa_count += 1
    elapsed_ms = s.training_ms + 1000.0 * (time.perf_counter() - s.t0)
    mean_loss, capped, s.synced_ms = share_status(tr.rt, train_loss, elapsed_ms >= (s.cap_ms or math.inf), elapsed_ms)
    if not math.isfinite(mean_loss):
        log(f"stopping: non-finite train_loss ({mean_loss}) at step:{s.step}/{args.iterations}; the log is kept "
            f"at {log.path if tr.rt.master else 'rank 0'}. Lower the learning rates or check the data.")
        raise RunError(f"non-finite train_loss at step {s.step}")
    if args.train_log_every > 0 and (s.step <= 10 or s.step % args.train_log_every == 0):
        log(f"step:{s.step}/{args.iterations} train_loss:{mean_loss:.4f} "
            f"train_time:{elapsed_ms:.0f}ms step_avg:{elapsed_ms / s.step:.2f}ms")
    return capped

def share_status(rt: Runtime, train_loss: Tensor, reached_cap: bool, elapsed_ms: float) -> tuple[float, bool, float]:
    """One small all-reduce per step: the mean train loss, the stop decision (any rank's) and the mean clock."""
    status = torch.tensor([train_loss.item(), float(reached_cap), elapsed_ms], device=rt.device)
    if rt.distributed:
        dist.all_reduce(status, op=dist.ReduceOp.SUM)
    return status[0].item() / rt.world_size, status[1].item() > 0, status[2].item() / rt.world_size

def ema_too_short(args: Hyperparameters, steps: int) -> str | None:
    """The warning for an EMA of too few steps (FINAL_WEIGHTS=ema): still mostly the initial weights."""
    if args.final_weights != "ema" or steps >= 3 / (1 - args.ema_decay):
        return None
    what = f"ITERATIONS={steps}" if steps == args.iterations else f"{steps} steps"
    fix = "; lower EMA_DECAY or use FINAL_WEIGHTS=raw" if steps == args.iterations else ""
    return (f"WARNING: {what} is short for EMA_DECAY={args.ema_decay}: the EMA weights are still "
            f"{100 * args.ema_decay ** steps:.0f}% the initial ones{fix}")

def final_weights(args: Hyperparameters, s: LoopState, log) -> dict[str, Tensor] | None:
    """FINAL_WEIGHTS: the EMA, the mean of the SWA snapshots, or None (raw: the model's own)."""
    if args.final_weights == "ema":
        return s.ema
    if args.final_weights == "swa":
        if s.swa is None:
            raise RunError("FINAL_WEIGHTS=swa but no SWA snapshot was taken (the wall-clock cap ended the run before "
                           "the LR scale fell below 0.2 on a multiple of SWA_EVERY); run longer or use "
                           "FINAL_WEIGHTS=ema")
        log(f"swa:applying {s.swa_count} snapshots")
        return {k: v / s.swa_count for k, v in s.swa.items()}
    return None

def packed_source(code: str) -> bytes:
    """This file as submitted: lzma + base85, deterministic; it runs its source from linecache, where inspect looks."""
    lzma1 = {"id": lzma.FILTER_LZMA1, "preset": 9 | lzma.PRESET_EXTREME, "pb": 0, "lp": 0}  # 0.4% smaller than xz
    data = base64.b85encode(lzma.compress(code.encode("utf-8"), format=lzma.FORMAT_ALONE, filters=[lzma1]))
    return (b"import lzma as L,base64 as B,linecache as C\ns=L.decompress(B.b85decode(b'" + data + b"')).decode()\n"
            b"C.cache[__file__]=(len(s),None,s.splitlines(True),__file__)\nexec(compile(s,__file__,'exec'))\n")

def export(args: Hyperparameters, base: GPT, inputs: Inputs, log) -> bytes:
    """Rank 0: write runs/<RUN_ID>/final_model.pt and the int6 artifact, publish both as latest; returns its bytes."""
    run_dir = Path("runs") / args.run_id
    raw_path, artifact_path = run_dir / "final_model.pt", run_dir / "final_model.int6.ptz"
    for p in (raw_path, artifact_path):
        if kept := keep_existing(p):
            log(f"kept earlier {p} as {kept}")
    print("progress: export writing final_model.pt", flush=True)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in base.state_dict().items()}, buf)
    write_file(raw_path, buf.getvalue())
    t_q = time.perf_counter()
    print("progress: export quantizing (GPTQ-lite int6 per row)", flush=True)
    payload, mse = quantize_state_dict(base.state_dict(), args.clip_percentiles, args.quant_scale_floor,
                                       args.export_shuffle)
    payload["model_settings"] = args.model_settings()  # what EVAL_ONLY checks the artifact against
    buf = io.BytesIO()
    torch.save(payload, buf)
    raw = buf.getvalue()
    methods = [m for m in ("zstd", "brotli", "lzma") if CODECS[m][0] and args.export_compressor in ("auto", m)]
    print(f"progress: export compressing {len(raw):,} bytes with {', '.join(methods)} (at their highest levels: "
          f"a while) elapsed:{time.perf_counter() - t_q:.0f}s", flush=True)
    candidates = {}  # compressor -> (artifact, seconds)
    for name in methods:
        t_c = time.perf_counter()
        candidates[name] = compress(raw, name), time.perf_counter() - t_c
    method, (blob, _) = min(candidates.items(), key=lambda item: len(item[1][0]))  # the first of equals
    log("compression: " + ", ".join(f"{name} {len(b)} bytes {dt:.1f}s" for name, (b, dt) in candidates.items())
        + f"; kept {method} (EXPORT_COMPRESSOR={args.export_compressor} EXPORT_SHUFFLE={int(args.export_shuffle)})")
    write_file(artifact_path, blob)
    for p in (raw_path, artifact_path):
        publish_latest(p, log)
    for name, err in mse.items():
        log(f"quant_mse {name} int6_mse:{err:.4e}", console=False)
    log(f"quantize_time:{1000.0 * (time.perf_counter() - t_q):.0f}ms")
    log(f"artifact:{artifact_path} latest:{artifact_path.name}")
    log(f"Serialized model: {raw_path.stat().st_size} bytes")
    packed = inputs.file if inputs.file != inputs.code.encode("utf-8") else packed_source(inputs.code)
    log(f"Code size: {len(inputs.file)} bytes")
    log(f"Code size (packed): {len(packed)} bytes counted ({'packed file' if packed is inputs.file else 'source'} ran)")
    log(f"Serialized model int6+{method}: {len(blob)} bytes")
    total = len(blob) + len(packed)
    log(f"Total submission size int6+{method}: {total} bytes")
    if total > SIZE_LIMIT:
        log(f"WARNING: submission size {total} bytes exceeds the {SIZE_LIMIT:,}-byte limit by {total - SIZE_LIMIT} "
            f"bytes; not a valid submission (files kept in {run_dir})")
    return blob

def score_artifact(args: Hyperparameters, rt: Runtime, blob: bytes | None, val: ValData, diag_bpb: float | None,
                   log) -> None:
    """Every rank scores the exact bytes rank 0 wrote or read (broadcast in memory: no shared folder needed)."""
    if rt.distributed:
        box = [blob]
        dist.broadcast_object_list(box, src=0)
        blob = box[0]
    eval_model, state = build_model(args, rt), load_artifact(blob, "final_model.int6.ptz")[0]
    try:
        eval_model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # an artifact from before model_settings were stored, of another configuration
        first = (str(exc).splitlines()[1:] or [str(exc)])[0].strip()  # after torch's "Error(s) in loading ..."
        raise RunError(f"the artifact does not fit this configuration's model ({first}); set the settings of the "
                       "run that wrote it (its log's config: line)") from None
    scorer = torch.compile(eval_model, dynamic=False, fullgraph=True) if rt.compile else eval_model
    sync(rt.device)
    t_q = time.perf_counter()
    q_loss, q_bpb = eval_val(args, scorer, rt, val, progress="roundtrip_eval")
    log(f"final_int6_roundtrip val_loss:{q_loss:.4f} val_bpb:{q_bpb:.4f} "
        f"eval_time:{1000.0 * (time.perf_counter() - t_q):.0f}ms")
    log(f"final_int6_roundtrip_exact val_loss:{q_loss:.8f} val_bpb:{q_bpb:.8f}")
    if diag_bpb is not None:
        log(f"quant_gap val_bpb:{q_bpb - diag_bpb:+.4f} (int6 roundtrip minus post_{args.final_weights})")
    if args.eval_stride > 0:
        sync(rt.device)
        t_s = time.perf_counter()
        s_loss, s_bpb = eval_val_sliding(args, scorer, rt, val, progress="sliding_eval")
        log(f"final_int6_sliding_window val_loss:{s_loss:.4f} val_bpb:{s_bpb:.4f} stride:{args.eval_stride} "
            f"eval_time:{1000.0 * (time.perf_counter() - t_s):.0f}ms")
        log(f"final_int6_sliding_window_exact val_loss:{s_loss:.8f} val_bpb:{s_bpb:.8f}")

@dataclass
class Inputs:  # what a run reads, every piece checked before anything is written
    code: str  # this file's source (the packed file's, decompressed): logged
    file: bytes  # the file that runs: itself counted in the submission size when it is the packed form
    train_files: list[Path]
    val: ValData
    probes: int  # byte-table probe strings checked against the tokenizer
    warnings: list[str]  # settings' typos, a slow attention fallback: already on stderr, logged in the header
    artifact: bytes | None = None  # EVAL_ONLY's file (rank 0)

def startup_warnings(rt: Runtime) -> list[str]:
    """Settings' typos and a slow attention fallback: on stderr at once (rank 0), in the log's header later."""
    warnings = [w for w in (*close_variable_warnings(os.environ), attention_warning(rt)) if w] if rt.master else []
    for line in warnings:
        print(line, file=sys.stderr, flush=True)
    return warnings

def load_inputs(args: Hyperparameters, rt: Runtime) -> Inputs:
    warnings = startup_warnings(rt)
    sp = load_tokenizer(args.tokenizer_path, args.vocab_size)
    tables = build_byte_luts(sp, args.vocab_size)
    probes = check_byte_tables(sp, tables, args.tokenizer_path)
    train_files = [] if args.eval_only else find_shards(args.data_path, "train")
    if train_files:
        load_shard(train_files[0], args.vocab_size)  # its token ids; the other shards' before the clock
    val_files = find_shards(args.data_path, "val")
    val_np = load_validation_tokens(val_files, args.eval_seq_len, args.vocab_size).astype(np.int64)
    val = ValData(torch.from_numpy(val_np), torch.from_numpy(stream_bytes(val_np, tables).astype(np.int16)))
    if int(val.nbytes[1:].sum()) == 0:  # BPB divides by the scored targets' bytes
        raise ConfigError(f"DATA_PATH={args.data_path}: the fineweb_val_*.bin tokens spell no text (0 bytes by "
                          "TOKENIZER_PATH's pieces), so BPB is undefined; rebuild or re-download the validation shards")
    artifact = read_eval_only_artifact(args) if args.eval_only and rt.master else None
    code = "".join(linecache.getlines(__file__))  # the packed file put its source there
    return Inputs(code, Path(__file__).read_bytes(), train_files, val, probes, warnings, artifact)

def build_trainer(args: Hyperparameters, rt: Runtime, train_files: list[Path]) -> Trainer:
    """The seeded model, compiled (CUDA by default) and DDP-wrapped when distributed, with its optimizers."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    base = compiled = build_model(args, rt)
    if rt.compile:
        # One cache for every GPT.forward variant (QAT, beta-grad, eval, partial batch, scorer): fullgraph fails past it
        limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
        setattr(torch._dynamo.config, limit, 64)
        compiled = torch.compile(base, dynamic=False, fullgraph=True)
    model = compiled
    if rt.distributed:
        model = DDP(compiled, device_ids=[rt.local_rank] if rt.device.type == "cuda" else None)
    return Trainer(args, rt, model, compiled, base, build_optimizers(base, args, rt),
                   DistributedTokenLoader(train_files, rt))

def log_header(args: Hyperparameters, rt: Runtime, log, inputs: Inputs) -> None:
    """The source and versions (log files only), then what the run is: identity, configuration, data, model."""
    log(inputs.code, console=False)
    log("=" * 100, console=False)
    log(f"Running Python {sys.version}", console=False)
    log(f"Running PyTorch {torch.__version__}", console=False)
    if rt.device.type == "cuda":
        try:
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False, timeout=30).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            smi = f"nvidia-smi: unavailable ({exc})"
        log(smi, console=False)
    log("=" * 100, console=False)
    for line in log.kept:
        log(line)
    for line in inputs.warnings:
        log(line, console=False)
    log(f"run_id:{args.run_id}")
    log(args.config_line())
    log(f"config_fingerprint:{args.fingerprint()}")
    log(f"val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path={args.tokenizer_path} "
        f"byte_probes_ok:{inputs.probes}")
    if not args.eval_only:
        log(f"train_loader:dataset:{Path(args.data_path).resolve().name} train_shards:{len(inputs.train_files)}")
    log(f"val_loader:shards pattern={Path(args.data_path, 'fineweb_val_*.bin')} tokens:{inputs.val.tokens.numel() - 1}")
    log(f"model_params:{parameter_count(args)}")
    log(ACTIVATIONS[args.mlp_activation].summary(args))
    log(f"device:{rt.device} dtype:{'bfloat16' if rt.bf16 else 'float32'} attention:{rt.attention.name} "
        f"compile:{int(rt.compile)} mlp_kernel:{args.mlp_kernel}")
    log(f"mlp_kernel_choice:{args.mlp_kernel} from {args.mlp_kernel_from}")
    log(f"XSA:last_{args.xsa_last_n} active_layers:{list(range(args.num_layers - args.xsa_last_n, args.num_layers))}")
    log(f"world_size:{rt.world_size} grad_accum_steps:{rt.grad_accum_steps}")
    log(f"attention_mode:gqa num_heads:{args.num_heads} num_kv_heads:{args.num_kv_heads}")
    log(f"train_batch_tokens:{args.train_batch_tokens} train_seq_len:{args.train_seq_len} iterations:{args.iterations} "
        f"warmup_steps:{args.warmup_steps} max_wallclock_seconds:{args.max_wallclock_seconds:.3f}")
    log(f"final_weights:{args.final_weights} ema_decay:{args.ema_decay} late_qat_threshold:{args.late_qat_threshold} "
        f"quant_scale_floor:{args.quant_scale_floor}")
    log(f"seed:{args.seed}")

def log_training_warnings(args: Hyperparameters, rt: Runtime, log) -> None:
    """Settings that train worse than the user may think, said before any result."""
    for line in ACTIVATIONS[args.mlp_activation].warnings(args, rt.grad_accum_steps):
        log(line)
    needed = math.prod(warmup_phases(args, rt))  # graph variants: QAT off/on x beta gradient on/off
    if rt.compile and args.warmup_steps < needed:
        log(f"WARNING: WARMUP_STEPS={args.warmup_steps} < {needed}: some graph variants will compile inside the "
            f"timed loop (lost training time); set WARMUP_STEPS={needed} or more")
    if args.max_wallclock_seconds <= 0 and args.warmdown_iters > args.iterations:
        log(f"WARNING: WARMDOWN_ITERS={args.warmdown_iters} > ITERATIONS={args.iterations}: the LR decays from "
            f"step 0 (scale starts at {args.iterations / args.warmdown_iters:.3f})")
    if line := ema_too_short(args, args.iterations):
        log(line)

def apply_final_weights(tr: Trainer, final: dict[str, Tensor] | None, val: ValData, log) -> float:
    """Load the weights FINAL_WEIGHTS chose (None: the raw weights stay) and log their diagnostic score."""
    if final is not None:
        current = tr.base.state_dict()
        tr.base.load_state_dict({k: v.to(current[k].dtype) for k, v in final.items()})
    sync(tr.rt.device)
    t_diag = time.perf_counter()
    diag_loss, diag_bpb = eval_val(tr.args, tr.compiled, tr.rt, val)
    log(f"DIAGNOSTIC post_{tr.args.final_weights} val_loss:{diag_loss:.4f} val_bpb:{diag_bpb:.4f} "
        f"eval_time:{1000.0 * (time.perf_counter() - t_diag):.0f}ms")
    log_activation_diagnostics(tr.base, log)
    return diag_bpb

def check_train_shards(args: Hyperparameters, rt: Runtime, files: list[Path], log) -> None:
    """Token ids of every train shard the run can read (warm-up and ITERATIONS steps), before the clock.
    The ranks share the shards; the first bad one, by index, is reported on every rank."""
    t0 = time.perf_counter()
    per_step = args.train_batch_tokens + rt.world_size * rt.grad_accum_steps  # + 1 token per rank's micro-span
    needed = (args.warmup_steps + args.iterations) * per_step  # the warm-up reads on from the first shard too
    count = tokens = 0
    while count < len(files) and tokens < needed:
        tokens += shard_token_count(files[count])
        count += 1
    first_bad = torch.tensor(count, device=rt.device)
    for i in range(1 + rt.rank, count, rt.world_size):  # shard 0 was checked before the log was opened
        try:
            load_shard(files[i], args.vocab_size)
        except ConfigError:
            first_bad.fill_(i)
            break
    if rt.distributed:
        dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
    if int(first_bad) < count:
        load_shard(files[int(first_bad)], args.vocab_size)  # raises its message
    log(f"train_shards_checked:{count}/{len(files)} tokens:{tokens} time:{1000 * (time.perf_counter() - t0):.0f}ms "
        f"(token ids < VOCAB_SIZE, shared by {rt.world_size} rank(s))")

def eval_only(args: Hyperparameters, rt: Runtime, inputs: Inputs, log) -> None:
    """EVAL_ONLY: the final evaluation of an existing artifact, with the training run's log lines."""
    if rt.master:
        digest = hashlib.sha256(inputs.artifact).hexdigest()
        log(f"eval_only: artifact:{Path(args.eval_only).resolve()} sha256:{digest} bytes:{len(inputs.artifact)}")
        if not inputs.artifact.startswith(ARTIFACT_HEADER):
            log("note: the artifact was written before artifacts carried a digest: damage to it cannot be detected")
    score_artifact(args, rt, inputs.artifact, inputs.val, None, log)

def main(ctx: ExitContext) -> None:
    ctx.rank = launcher_values(os.environ).get("RANK", 0)  # first: a bad setting is printed by rank 0 only
    args = Hyperparameters()
    rt = runtime_from_env(args)
    if not args.eval_only:  # no training: the training memory does not matter
        check_fits(args, rt)
    inputs = load_inputs(args, rt)  # set-up: every input checked before anything is written
    if rt.master:
        check_output_folders(args.run_id)
    ctx.lock = lock_run_id(args.run_id) if rt.master else None  # held until the process exits
    log = ctx.log = Logger(args, rt.master)
    init_distributed(rt, args.dist_timeout_s)
    log_header(args, rt, log, inputs)
    if args.eval_only:
        eval_only(args, rt, inputs, log)
        return
    log_training_warnings(args, rt, log)
    check_train_shards(args, rt, inputs.train_files, log)
    tr = build_trainer(args, rt, inputs.train_files)
    warm_up(tr, inputs.train_files, log)  # every graph variant compiled, then weights, optimizers, data reset
    final = train(tr, inputs.val, log, ctx)  # the timed loop
    ctx.step = None
    diag_bpb = apply_final_weights(tr, final, inputs.val, log)
    blob = export(args, tr.base, inputs, log) if rt.master else None  # rank 0 writes the files
    score_artifact(args, rt, blob, inputs.val, diag_bpb, log)  # every rank scores the same bytes

def end_distributed(exc: BaseException | None = None) -> None:
    """The group and its gloo threads must end before the interpreter does: a thread still waiting for the GIL at
    shutdown aborts the process ("terminate called ..."). DDP's reducer holds the group, and main's frames hold
    DDP (through an error's traceback too), so those references go first."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if exc is None:
        dist.barrier()
    else:  # an error or a signal: no barrier (the other ranks may be gone), the frames' references dropped
        traceback.clear_frames(exc.__traceback__)
    gc.collect()
    dist.destroy_process_group()

def on_signal(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)

if __name__ == "__main__":
    if len(sys.argv) > 1:
        if sys.argv[1:] in (["--help"], ["-h"]):
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--help | head` ends quietly
            print_help()
            sys.exit(0)
        print(f"error: unknown argument {' '.join(sys.argv[1:])}; train_gpt.py is configured by environment "
              "variables (python3 train_gpt.py --help lists them)", file=sys.stderr)
        sys.exit(2)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal or ssh session closed
        signal.signal(signum, on_signal)
    ctx = ExitContext()
    try:
        main(ctx)
        end_distributed()
    except (ConfigError, RunError) as exc:
        end_distributed(exc)
        rank = ctx.rank
        if rank == 0 or isinstance(exc, RunError):
            print(f"error{f' (rank {rank})' if rank else ''}: {exc}", file=sys.stderr, flush=True)
        if ctx.log is not None:
            with contextlib.suppress(Exception):
                ctx.log(f"error: {exc}", console=False)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except RuntimeError as exc:  # on rank > 0, mostly a collective whose peer stopped: rank 0 prints why
        if ctx.rank == 0 or not (dist.is_available() and dist.is_initialized()):
            raise
        end_distributed(exc)
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error (rank {ctx.rank}): {type(exc).__name__}: {first} (when another rank stopped first, its "
              "error is rank 0's line)", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        end_distributed(exc)
        name = str(exc) or "SIGINT"
        if ctx.log is None:
            print(f"interrupted: {name} (before the log was opened)", file=sys.stderr, flush=True)
        else:
            where = f" step:{ctx.step}/{ctx.iterations}" if ctx.step is not None else ""
            with contextlib.suppress(Exception):
                ctx.log(f"interrupted: {name}{where}")
        sys.exit(128 + getattr(signal, name, signal.SIGINT))
