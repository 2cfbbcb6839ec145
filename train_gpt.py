"""
asqu-golf: the March 22 Parameter Golf record stack (11L/512d GQA, XSA, partial RoPE, LN scale,
value embeddings, SmearGate, BigramHash, U-Net skips, Muon + AdamW, EMA, late QAT, GPTQ-lite int6
export, sliding-window BPB) with an MLP activation switch: relu2 | leaky2 | asqu.

    torchrun --standalone --nproc_per_node=8 train_gpt.py      # the record regime (8xH100, 600 s)
    python3 train_gpt.py                                        # one process, CPU or one GPU

All configuration is environment variables (see Hyperparameters). Everything a submission counts
lives in this file; tools, tests and data scripts live beside it.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

try:
    import zstandard
except ImportError:  # the artifact falls back to zlib level 9 (said in the log)
    zstandard = None

# -----------------------------
# HYPERPARAMETERS
# -----------------------------
# Every variable, its default and meaning. Defaults reproduce the March 22 record.


class ConfigError(ValueError):
    """Bad user input: printed as one line, exit code 2."""


class RunError(RuntimeError):
    """A run that cannot go on (diverged, missing SWA snapshots, unreadable artifact): one line, exit code 1."""


def _env(name: str, default, kind=float):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        if kind is bool:
            if raw.strip() not in ("0", "1"):
                raise ValueError
            return raw.strip() == "1"
        if kind is str:
            return raw
        value = kind(raw.strip())
        if not math.isfinite(value):
            raise ValueError
        return value
    except ValueError:
        what = "0 or 1" if kind is bool else f"a finite number ({kind.__name__})"
        raise ConfigError(f"{name}={raw!r} is not {what}; set it to e.g. {default!r} or unset it") from None


ACTIVATIONS = ("relu2", "leaky2", "asqu")


class Hyperparameters:
    def __init__(self):
        e = _env
        # Data and run identity.
        self.data_path = e("DATA_PATH", "./data/datasets/fineweb10B_sp1024", str)  # folder of *.bin shards
        self.tokenizer_path = e("TOKENIZER_PATH", "./data/tokenizers/fineweb_1024_bpe.model", str)
        self.seed = e("SEED", 1337, int)
        self.mlp_activation = e("MLP_ACTIVATION", "asqu", str).strip().lower()  # relu2 | leaky2 | asqu
        self.run_id = e("RUN_ID", f"{self.mlp_activation}_seed{self.seed}_{time.strftime('%Y%m%d-%H%M%S')}", str)
        # Schedule. Wall-clock cap in seconds (0 = off: fixed ITERATIONS steps).
        self.iterations = e("ITERATIONS", 20000, int)
        self.max_wallclock_seconds = e("MAX_WALLCLOCK_SECONDS", 600.0)
        self.warmdown_iters = e("WARMDOWN_ITERS", 3500, int)  # linear LR decay length (steps; wall-clock based when capped)
        self.warmup_steps = e("WARMUP_STEPS", 20, int)  # compile warm-up steps, then weights/optimizers/data reset
        self.train_batch_tokens = e("TRAIN_BATCH_TOKENS", 786_432, int)  # global tokens per step
        self.train_seq_len = e("TRAIN_SEQ_LEN", 2048, int)
        self.train_log_every = e("TRAIN_LOG_EVERY", 500, int)
        self.val_loss_every = e("VAL_LOSS_EVERY", 4000, int)  # 0 = validate only at the end
        # Evaluation.
        self.val_batch_size = e("VAL_BATCH_SIZE", 524_288, int)  # tokens per validation batch, all ranks
        self.eval_seq_len = e("EVAL_SEQ_LEN", 2048, int)
        self.eval_stride = e("EVAL_STRIDE", 64, int)  # sliding-window stride (0 = no sliding eval)
        self.eval_batch_seqs = e("EVAL_BATCH_SEQS", 32, int)  # windows per sliding-eval batch
        # Model.
        self.vocab_size = e("VOCAB_SIZE", 1024, int)
        self.num_layers = e("NUM_LAYERS", 11, int)
        self.model_dim = e("MODEL_DIM", 512, int)
        self.num_heads = e("NUM_HEADS", 8, int)
        self.num_kv_heads = e("NUM_KV_HEADS", 4, int)  # GQA
        self.mlp_mult = e("MLP_MULT", 3.0)  # hidden = MLP_MULT * MODEL_DIM
        self.mlp_leaky_slope = e("MLP_LEAKY_SLOPE", 0.5)  # leaky2: f(h<=0) = (s h)^2
        self.asqu_beta_init = e("ASQU_BETA_INIT", 0.25)  # asqu: f(h<=0) = beta_i h^2; 0.25 = leaky2(0.5)
        self.asqu_sigmoid_beta = e("ASQU_SIGMOID_BETA", False, bool)  # beta = sigmoid(param), in (0, 1)
        self.tie_embeddings = e("TIE_EMBEDDINGS", True, bool)
        self.tied_embed_init_std = e("TIED_EMBED_INIT_STD", 0.005)
        self.logit_softcap = e("LOGIT_SOFTCAP", 30.0)
        self.rope_base = e("ROPE_BASE", 10000.0)
        self.rope_dims = e("ROPE_DIMS", 16, int)  # RoPE on the first ROPE_DIMS of each head (0 = all)
        self.qk_gain_init = e("QK_GAIN_INIT", 1.5)
        self.xsa_last_n = e("XSA_LAST_N", 4, int)  # XSA on the last N layers
        self.ln_scale = e("LN_SCALE", True, bool)  # scale normed block inputs by 1/sqrt(layer+1)
        self.bigram_vocab_size = e("BIGRAM_VOCAB_SIZE", 2048, int)
        self.bigram_dim = e("BIGRAM_DIM", 128, int)
        self.ve_dim = e("VE_DIM", 128, int)
        self.ve_layers = e("VE_LAYERS", "9,10", str)  # layers that get value embeddings ("" = none)
        # Optimisers. LRs are multiplied by the schedule's scale.
        self.matrix_lr = e("MATRIX_LR", 0.025)  # Muon
        self.muon_momentum = e("MUON_MOMENTUM", 0.99)
        self.muon_momentum_warmup_start = e("MUON_MOMENTUM_WARMUP_START", 0.92)
        self.muon_momentum_warmup_steps = e("MUON_MOMENTUM_WARMUP_STEPS", 1500, int)
        self.muon_backend_steps = e("MUON_BACKEND_STEPS", 5, int)  # Newton-Schulz iterations
        self.muon_wd = e("MUON_WD", 0.04)
        self.tied_embed_lr = e("TIED_EMBED_LR", 0.035)  # AdamW: embeddings
        self.embed_lr = e("EMBED_LR", 0.6)  # AdamW: tok_emb when TIE_EMBEDDINGS=0
        self.head_lr = e("HEAD_LR", 0.008)  # Adam: lm_head when TIE_EMBEDDINGS=0
        self.scalar_lr = e("SCALAR_LR", 0.025)  # AdamW: scalars and control tensors
        self.asqu_lr = e("ASQU_LR", 0.001)  # AdamW: ASQU beta, its own group
        self.asqu_wd = e("ASQU_WD", 0.0)  # weight decay on beta (decays toward relu2)
        self.asqu_beta_grad_every = e("ASQU_BETA_GRAD_EVERY", 1, int)  # beta grad every k micro-steps, times k
        self.adam_wd = e("ADAM_WD", 0.04)
        self.beta1 = e("BETA1", 0.9)
        self.beta2 = e("BETA2", 0.95)
        self.adam_eps = e("ADAM_EPS", 1e-8)
        self.grad_clip_norm = e("GRAD_CLIP_NORM", 0.3)  # 0 = off
        # Weight averaging, QAT and export.
        self.ema_decay = e("EMA_DECAY", 0.997)
        self.swa_every = e("SWA_EVERY", 50, int)  # FINAL_WEIGHTS=swa: snapshot every N steps once scale < 0.2
        self.final_weights = e("FINAL_WEIGHTS", "ema", str).strip().lower()  # ema | swa | raw, exported
        self.late_qat_threshold = e("LATE_QAT_THRESHOLD", 0.15)  # fake-quantize once scale < this (0 = off)
        self.int6_clip_percentiles = e("INT6_CLIP_PERCENTILES", "0.999,0.9995,0.9999,0.99999,1.0", str)
        # Row clips below this are raised to it (scale >= floor/31 for int6, /127 for int8; also in QAT).
        # 1.0 is the record's clamp_min(1/31): coarser codes for small rows, a smaller artifact. 0 = none.
        self.quant_scale_floor = e("QUANT_SCALE_FLOOR", 1.0)
        # Runtime: torch.compile (default on for CUDA, off for CPU).
        self.compile = e("COMPILE", None, bool)
        self.validate()

    def validate(self) -> None:
        if self.mlp_activation == "leaky_relu2":  # the seed PR's name
            self.mlp_activation = "leaky2"
        if self.mlp_activation not in ACTIVATIONS:
            raise ConfigError(f"MLP_ACTIVATION={self.mlp_activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.final_weights not in ("ema", "swa", "raw"):
            raise ConfigError(f"FINAL_WEIGHTS={self.final_weights!r} is not one of ema, swa, raw")
        positive = ("ITERATIONS", "TRAIN_BATCH_TOKENS", "TRAIN_SEQ_LEN", "EVAL_SEQ_LEN", "VOCAB_SIZE",
                    "NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "EVAL_BATCH_SEQS",
                    "ASQU_BETA_GRAD_EVERY", "VAL_BATCH_SIZE")
        for name in positive:
            if getattr(self, name.lower()) <= 0:
                raise ConfigError(f"{name}={getattr(self, name.lower())} must be positive")
        for name in ("WARMUP_STEPS", "WARMDOWN_ITERS", "MAX_WALLCLOCK_SECONDS", "EVAL_STRIDE", "XSA_LAST_N",
                     "BIGRAM_VOCAB_SIZE", "TRAIN_LOG_EVERY", "VAL_LOSS_EVERY", "ROPE_DIMS", "SWA_EVERY"):
            if getattr(self, name.lower()) < 0:
                raise ConfigError(f"{name}={getattr(self, name.lower())} must be >= 0")
        if self.model_dim % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ConfigError(f"MODEL_DIM={self.model_dim} must divide by NUM_HEADS={self.num_heads}, "
                              f"and NUM_HEADS by NUM_KV_HEADS={self.num_kv_heads}")
        head_dim = self.model_dim // self.num_heads
        rd = self.rope_dims or head_dim
        if rd % 2 or rd > head_dim or rd < 4:
            raise ConfigError(f"ROPE_DIMS={self.rope_dims} must be even, >= 4 and <= head_dim={head_dim}")
        if self.xsa_last_n > self.num_layers:
            raise ConfigError(f"XSA_LAST_N={self.xsa_last_n} exceeds NUM_LAYERS={self.num_layers}")
        try:
            self.ve_layer_list = [int(s) for s in self.ve_layers.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"VE_LAYERS={self.ve_layers!r} must be comma-separated layer indices, e.g. 9,10") from None
        bad = [i for i in self.ve_layer_list if not 0 <= i < self.num_layers]
        if bad or len(set(self.ve_layer_list)) != len(self.ve_layer_list):
            raise ConfigError(f"VE_LAYERS={self.ve_layers!r}: indices must be distinct and in 0..{self.num_layers - 1}")
        if self.bigram_vocab_size == 1:
            raise ConfigError("BIGRAM_VOCAB_SIZE must be 0 (off) or >= 2")
        try:
            self.clip_percentiles = [float(s) for s in self.int6_clip_percentiles.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"INT6_CLIP_PERCENTILES={self.int6_clip_percentiles!r} must be comma-separated numbers") from None
        if self.quant_scale_floor < 0:
            raise ConfigError(f"QUANT_SCALE_FLOOR={self.quant_scale_floor} must be >= 0")
        if not self.clip_percentiles or not all(0.0 < p <= 1.0 for p in self.clip_percentiles):
            raise ConfigError(f"INT6_CLIP_PERCENTILES={self.int6_clip_percentiles!r}: need values in (0, 1]")
        if self.eval_stride > self.eval_seq_len:
            raise ConfigError(f"EVAL_STRIDE={self.eval_stride} exceeds EVAL_SEQ_LEN={self.eval_seq_len}")
        if self.asqu_sigmoid_beta and not 0.0 < self.asqu_beta_init < 1.0:
            raise ConfigError(f"ASQU_BETA_INIT={self.asqu_beta_init} must be in (0, 1) with ASQU_SIGMOID_BETA=1")
        if self.mlp_mult <= 0 or self.mlp_hidden < 1:
            raise ConfigError(f"MLP_MULT={self.mlp_mult} must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"EMA_DECAY={self.ema_decay} must be in [0, 1)")
        if self.logit_softcap <= 0:
            raise ConfigError(f"LOGIT_SOFTCAP={self.logit_softcap} must be positive")
        if self.final_weights == "swa" and self.warmdown_iters == 0:
            raise ConfigError("FINAL_WEIGHTS=swa needs WARMDOWN_ITERS > 0 (snapshots start once the LR scale < 0.2)")

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_mult * self.model_dim)

    def activation_summary(self) -> str:
        if self.mlp_activation == "leaky2":
            return f"mlp_activation:leaky2 mlp_leaky_slope:{self.mlp_leaky_slope}"
        if self.mlp_activation == "asqu":
            return (f"mlp_activation:asqu asqu_beta_init:{self.asqu_beta_init} asqu_lr:{self.asqu_lr} "
                    f"asqu_wd:{self.asqu_wd} asqu_sigmoid_beta:{int(self.asqu_sigmoid_beta)} "
                    f"asqu_beta_grad_every:{self.asqu_beta_grad_every}")
        return "mlp_activation:relu2"


# -----------------------------
# RUNTIME: CUDA VS CPU
# -----------------------------
# What differs by device: attention kernel and autocast here; device, compile and process group in
# main(); bf16 embedding tables in build_model().

try:
    from flash_attn_interface import flash_attn_func as _fa3  # FlashAttention 3 (Hopper)
except ImportError:
    _fa3 = None
try:  # FlashAttention 2 before 2.6 is not a torch.library op: it would break fullgraph compile
    import flash_attn
    from flash_attn import flash_attn_func as _fa2
    if tuple(int(x) for x in flash_attn.__version__.split(".")[:2]) < (2, 6):
        _fa2 = None
except (ImportError, ValueError, AttributeError):
    _fa2 = None


def _sdpa_has_gqa() -> bool:
    # enable_gqa appeared in PyTorch 2.5; older versions need K/V repeated (PR #1133's crash).
    try:
        q = torch.zeros(1, 2, 1, 4)
        F.scaled_dot_product_attention(q, q[:, :1], q[:, :1], is_causal=True, enable_gqa=True)
        return True
    except TypeError:
        return False


ATTN_BACKEND = "sdpa"  # set by pick_attention_backend()
_SDPA_GQA = _sdpa_has_gqa()


def pick_attention_backend(device: torch.device) -> str:
    global ATTN_BACKEND
    if device.type == "cuda" and _fa3 is not None:
        ATTN_BACKEND = "flash_attn_3"
    elif device.type == "cuda" and _fa2 is not None:
        ATTN_BACKEND = "flash_attn_2"
    else:
        ATTN_BACKEND = "sdpa"
    return ATTN_BACKEND


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal attention on (B, T, H, D) q and (B, T, Hkv, D) k, v; returns (B, T, H, D)."""
    if ATTN_BACKEND == "flash_attn_3":
        y = _fa3(q, k, v, causal=True)
        return y[0] if isinstance(y, tuple) else y
    if ATTN_BACKEND == "flash_attn_2":
        return _fa2(q, k, v, causal=True)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if _SDPA_GQA:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=k.size(1) != q.size(1))
    else:
        rep = q.size(1) // k.size(1)
        y = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=True)
    return y.transpose(1, 2)


def autocast_ctx(device: torch.device):
    """bf16 autocast on CUDA (the record); plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    """Nesterov momentum, orthogonalised update scaled by sqrt(max(1, rows/cols)), decoupled weight
    decay. Each rank orthogonalises a round-robin share of the matrices; one all-reduce of the updates."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int, weight_decay: float):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, weight_decay=weight_decay))

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
            offset = 0
            for i, p in enumerate(params):
                if i % world_size == rank and p.grad is not None:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p.grad)
                    buf = state["momentum_buffer"]
                    buf.mul_(momentum).add_(p.grad)
                    g = zeropower_via_newtonschulz5(p.grad.add(buf, alpha=momentum), steps=group["backend_steps"])
                    g *= max(1, g.size(0) / g.size(1)) ** 0.5
                    updates[offset:offset + p.numel()] = g.reshape(-1)
                offset += p.numel()
            if distributed:
                dist.all_reduce(updates, op=dist.ReduceOp.SUM)
            offset = 0
            for p in params:
                if group["weight_decay"] > 0:
                    p.mul_(1.0 - lr * group["weight_decay"])
                p.add_(updates[offset:offset + p.numel()].view_as(p).to(p.dtype), alpha=-lr)
                offset += p.numel()


# -----------------------------
# DATA: SHARDS AND LOADERS
# -----------------------------
# Shard = 256 little-endian int32 header (magic, version, token count) + uint16 tokens.

SHARD_MAGIC, SHARD_VERSION, HEADER_BYTES = 20240520, 1, 256 * 4


def shard_token_count(path: Path) -> int:
    """Validate a shard's header and size without reading its tokens."""
    size = path.stat().st_size
    header = np.fromfile(path, dtype="<i4", count=256)
    if header.size < 256 or int(header[0]) != SHARD_MAGIC or int(header[1]) != SHARD_VERSION:
        raise ConfigError(f"{path}: not a token shard (bad header); re-download or rebuild this file")
    n = int(header[2])
    if size != HEADER_BYTES + 2 * n:
        raise ConfigError(f"{path}: header says {n} tokens ({HEADER_BYTES + 2 * n} bytes) but the file has "
                          f"{size} bytes (truncated or corrupt); re-download or rebuild this file")
    return n


def load_shard(path: Path) -> np.ndarray:
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(shard_token_count(path),))


def find_shards(data_path: str, split: str) -> list[Path]:
    """The split's shards, every one's header and size checked; at least one token in all."""
    folder = Path(data_path)
    files = sorted(folder.glob(f"fineweb_{split}_*.bin"))
    if not files:
        raise ConfigError(
            f"DATA_PATH={data_path}: no fineweb_{split}_*.bin shards found. Download the data with "
            "`python3 data/cached_challenge_fineweb.py --variant sp1024`, or build the offline sample with "
            "`python3 data/build_sample.py` and set DATA_PATH=./data/datasets/sample_sp1024")
    if sum(shard_token_count(f) for f in files) == 0:
        raise ConfigError(f"DATA_PATH={data_path}: the fineweb_{split}_*.bin shards hold no tokens; rebuild or re-download them")
    return files


class TokenStream:
    """Reads shards in order, wrapping around; take(n) returns the next n tokens."""

    def __init__(self, files: list[Path]):
        self.files, self.file_idx, self.pos = files, 0, 0
        self.tokens = load_shard(files[0])

    def take(self, n: int) -> np.ndarray:
        chunks = []
        while n > 0:
            if self.pos >= len(self.tokens):
                self.file_idx = (self.file_idx + 1) % len(self.files)
                self.tokens, self.pos = load_shard(self.files[self.file_idx]), 0
                continue
            k = min(n, len(self.tokens) - self.pos)
            chunks.append(self.tokens[self.pos:self.pos + k])
            self.pos, n = self.pos + k, n - k
        return np.concatenate(chunks)


class DistributedTokenLoader:
    """Each micro-step takes the next contiguous span of world_size * (local_tokens + 1) tokens;
    rank r takes slice r. So 1 process x 8 micro-steps sees the same data as 2 x 4 or 8 x 1."""

    def __init__(self, files: list[Path], rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device
        self.stream = TokenStream(files)

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[Tensor, Tensor]:
        span = global_tokens // (self.world_size * grad_accum_steps) + 1
        chunk = self.stream.take(span * self.world_size)[self.rank * span:(self.rank + 1) * span]
        local = torch.from_numpy(chunk.astype(np.int64))
        x, y = local[:-1].reshape(-1, seq_len), local[1:].reshape(-1, seq_len)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def load_validation_tokens(files: list[Path], seq_len: int) -> Tensor:
    tokens = np.concatenate([load_shard(f) for f in files])
    usable = ((tokens.size - 1) // seq_len) * seq_len
    if usable <= 0:
        raise ConfigError(f"validation split ({tokens.size} tokens in {len(files)} fineweb_val_*.bin) is too "
                          f"short for EVAL_SEQ_LEN={seq_len}: it needs at least {seq_len + 1} tokens; "
                          "lower EVAL_SEQ_LEN or use a larger validation shard")
    return torch.from_numpy(tokens[:usable + 1].astype(np.int64))


# -----------------------------
# TOKENIZER AND BYTE ACCOUNTING
# -----------------------------

def load_tokenizer(path: str, vocab_size: int) -> spm.SentencePieceProcessor:
    if not path.endswith(".model"):
        raise ConfigError(f"TOKENIZER_PATH={path} is not a SentencePiece .model file")
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


def build_byte_luts(sp: spm.SentencePieceProcessor, vocab_size: int, device: torch.device):
    """Per-token byte counts: boundary tokens (control/unknown/unused) count 0, byte pieces 1, others
    the UTF-8 length without the leading '▁'; that space adds 1 unless the previous token is a boundary."""
    base = np.zeros(vocab_size, dtype=np.int16)
    leading_space = np.zeros(vocab_size, dtype=np.bool_)
    boundary = np.ones(vocab_size, dtype=np.bool_)
    for i in range(int(sp.vocab_size())):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("▁"):
            leading_space[i], piece = True, piece[1:]
        base[i] = len(piece.encode("utf-8"))
    to = lambda a: torch.tensor(a, device=device)  # noqa: E731
    return to(base), to(leading_space), to(boundary)


def count_bytes(prev: Tensor, tgt: Tensor, luts) -> Tensor:
    base, leading_space, boundary = luts
    return base[tgt].to(torch.float64) + (leading_space[tgt] & ~boundary[prev]).to(torch.float64)


# -----------------------------
# MODEL
# -----------------------------

class CastedLinear(nn.Linear):
    """fp32 weights cast to the compute dtype. Late QAT fake-quantizes the matrices the export stores
    as int6 (int6 = True: attention and MLP) to that grid (row-max scale in fp16, codes in [-31, 31])
    with a straight-through gradient."""
    qat = False  # switched on for all layers once the LR scale falls below LATE_QAT_THRESHOLD
    scale_floor = 1.0  # QUANT_SCALE_FLOOR, set by main()
    int6 = False

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        if self.training and self.int6 and CastedLinear.qat:  # this order keeps eval graphs free of QAT guards
            with torch.no_grad():
                scale = quant_scale(w.float().abs().amax(dim=1), 31, CastedLinear.scale_floor)
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
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, qk_gain_init: float, xsa: bool):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        self.c_q = CastedLinear(dim, dim, bias=False)
        self.c_k = CastedLinear(dim, kv_dim, bias=False)
        self.c_v = CastedLinear(dim, kv_dim, bias=False)
        self.proj = CastedLinear(dim, dim, bias=False)
        self.proj._zero_init = True
        for m in (self.c_q, self.c_k, self.c_v, self.proj):
            m.int6 = True
        self.q_gain = nn.Parameter(torch.full((num_heads,), qk_gain_init, dtype=torch.float32))
        self.xsa = xsa

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, v_embed: Tensor | None) -> Tensor:
        B, T, D = x.shape
        q = self.c_q(x).reshape(B, T, self.num_heads, self.head_dim)
        k = self.c_k(x).reshape(B, T, self.num_kv_heads, self.head_dim)
        v = self.c_v(x)
        if v_embed is not None:
            v = v + v_embed
        v = v.reshape(B, T, self.num_kv_heads, self.head_dim)
        q, k = apply_rotary(rms_norm(q), cos, sin), apply_rotary(rms_norm(k), cos, sin)
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        y = attention(q, k, v)
        if self.xsa:  # remove each head's component along its own (normalised) value vector
            y = y.reshape(B, T, self.num_kv_heads, -1, self.head_dim)
            vn = F.normalize(v, dim=-1).unsqueeze(-2)
            y = y - (y * vn).sum(-1, keepdim=True) * vn
        return self.proj(y.reshape(B, T, D))


class AsquFunction(torch.autograd.Function):
    """f(h) = h^2 for h > 0, beta_c h^2 for h <= 0. Saves only h (as relu2 does); the backward produces
    dh = 2 g p with p = (h > 0 ? h : beta h) and dbeta_c = sum over tokens of g h^2 [h <= 0] together,
    in the activation dtype with fp32 sums, times beta_grad_scale (0 skips it: ASQU_BETA_GRAD_EVERY)."""

    @staticmethod
    def forward(ctx, h: Tensor, beta: Tensor, beta_grad_scale: float) -> Tensor:
        b = beta.to(h.dtype)
        ctx.save_for_backward(h, b)
        ctx.beta_grad_scale = beta_grad_scale
        return h * F.prelu(h.reshape(-1, h.size(-1)), b).view_as(h)  # prelu: per-channel slope on dim 1

    @staticmethod
    def backward(ctx, g: Tensor):
        h, b = ctx.saved_tensors
        C = h.size(-1)
        h2, g2, rows = h.reshape(-1, C), g.reshape(-1, C), h.numel() // C
        need_beta = ctx.needs_input_grad[1] and ctx.beta_grad_scale
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
                dbeta = x.sum(0, dtype=acc)
        else:  # eager: the fewest kernels and allocations
            dh = (g2 * F.prelu(h2, b)).mul_(2.0)
            if need_beta:
                m = h2.clamp(max=0)
                dbeta = m.mul_(m).mul_(g2).sum(0, dtype=acc)
        if need_beta:
            dbeta = dbeta * ctx.beta_grad_scale
        elif ctx.needs_input_grad[1]:  # skipped: a zero gradient, not None, so DDP's reducer sees beta
            dbeta = torch.zeros(C, dtype=torch.float32, device=h.device)
        else:
            dbeta = None
        return dh.view_as(h), dbeta, None


class ASQU(nn.Module):
    """Asymmetric Squared Unit: one learned negative-side coefficient beta per hidden channel."""
    beta_grad_scale = 1.0  # set per micro-step by the training loop (ASQU_BETA_GRAD_EVERY)

    def __init__(self, hidden: int, beta_init: float, sigmoid_beta: bool):
        super().__init__()
        self.sigmoid_beta = sigmoid_beta
        init = math.log(beta_init / (1 - beta_init)) if sigmoid_beta else beta_init
        self.beta = nn.Parameter(torch.full((hidden,), init, dtype=torch.float32))

    def effective_beta(self) -> Tensor:
        return torch.sigmoid(self.beta) if self.sigmoid_beta else self.beta

    def forward(self, h: Tensor) -> Tensor:
        return AsquFunction.apply(h, self.effective_beta(), ASQU.beta_grad_scale if self.training else 1.0)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, args: Hyperparameters):
        super().__init__()
        self.activation, self.slope = args.mlp_activation, args.mlp_leaky_slope
        self.fc = CastedLinear(dim, hidden, bias=False)
        self.proj = CastedLinear(hidden, dim, bias=False)
        self.proj._zero_init = True
        self.fc.int6 = self.proj.int6 = True
        if self.activation == "asqu":
            self.asqu = ASQU(hidden, args.asqu_beta_init, args.asqu_sigmoid_beta)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        if self.activation == "relu2":
            h = torch.relu(h).square()
        elif self.activation == "leaky2":
            h = F.leaky_relu(h, self.slope).square()
        else:
            h = self.asqu(h)
        return self.proj(h)


class Block(nn.Module):
    def __init__(self, layer_idx: int, args: Hyperparameters):
        super().__init__()
        dim = args.model_dim
        self.attn = CausalSelfAttention(dim, args.num_heads, args.num_kv_heads, args.qk_gain_init,
                                        xsa=layer_idx >= args.num_layers - args.xsa_last_n)
        self.mlp = MLP(dim, args.mlp_hidden, args)
        self.attn_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.mlp_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))).float())
        self.norm_scale = 1.0 / math.sqrt(layer_idx + 1) if args.ln_scale else 1.0

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, v_embed: Tensor | None) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0
        x = x + self.attn_scale.to(x.dtype) * self.attn(rms_norm(x) * self.norm_scale, cos, sin, v_embed)
        return x + self.mlp_scale.to(x.dtype) * self.mlp(rms_norm(x) * self.norm_scale)


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
        self.proj = CastedLinear(dim, model_dim, bias=False)
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
        self.proj = CastedLinear(dim, kv_dim, bias=False)
        nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(0.1, dtype=torch.float32))

    def forward(self, ids: Tensor) -> Tensor:
        h = self.proj(self.embed(ids))
        return h * self.scale.to(h.dtype)


class GPT(nn.Module):
    def __init__(self, args: Hyperparameters):
        super().__init__()
        L, dim = args.num_layers, args.model_dim
        head_dim = dim // args.num_heads
        self.rope_dims, self.rope_base, self.softcap = args.rope_dims or head_dim, args.rope_base, args.logit_softcap
        self.tok_emb = nn.Embedding(args.vocab_size, dim)
        self.bigram = BigramHash(args.bigram_vocab_size, args.bigram_dim, dim) if args.bigram_vocab_size else None
        self.smear = SmearGate(dim)
        self.num_encoder_layers = L // 2
        self.skip_weights = nn.Parameter(torch.ones(min(L // 2, L - L // 2), dim, dtype=torch.float32))
        self.blocks = nn.ModuleList(Block(i, args) for i in range(L))
        self.ve_layers = args.ve_layer_list
        if self.ve_layers:
            self.ve_shared = ValueEmbedding(args.vocab_size, args.ve_dim, args.num_kv_heads * head_dim)
            self.ve_layer_scales = nn.ParameterList(nn.Parameter(torch.ones(1)) for _ in self.ve_layers)
        self.lm_head = None
        if not args.tie_embeddings:
            self.lm_head = CastedLinear(dim, args.vocab_size, bias=False)
            self.lm_head._zero_init = True
        self._init_weights(args)

    def _init_weights(self, args: Hyperparameters) -> None:
        nn.init.normal_(self.tok_emb.weight, std=args.tied_embed_init_std)
        for name, m in self.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if getattr(m, "_zero_init", False):
                nn.init.zeros_(m.weight)
            elif min(m.weight.shape) >= 64:
                nn.init.orthogonal_(m.weight)
                if name.endswith("proj"):  # bigram.proj, ve_shared.proj (block projs are zero)
                    with torch.no_grad():
                        m.weight.mul_(1.0 / math.sqrt(2 * args.num_layers))

    def forward(self, ids: Tensor, targets: Tensor | None = None) -> Tensor:
        """Mean cross-entropy when targets are given, else soft-capped logits (B, T, V)."""
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
            v_embed = None
            if i in self.ve_layers:
                v_embed = ve * self.ve_layer_scales[self.ve_layers.index(i)].to(ve.dtype)
            x = block(x, x0, cos, sin, v_embed)
            if i < self.num_encoder_layers:
                skips.append(x)
        x = rms_norm(x)
        logits = self.lm_head(x) if self.lm_head is not None else F.linear(x, self.tok_emb.weight.to(x.dtype))
        logits = self.softcap * torch.tanh(logits / self.softcap)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


# Control tensors: scales, mixes, gains, skip weights, gates, ASQU beta. fp32 always, AdamW, never quantized.
CONTROL_PATTERNS = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights", "smear.gate",
                    "bigram.scale", "ve_shared.scale", "ve_layer_scales", "asqu.beta")


def is_control(name: str) -> bool:
    return any(p in name for p in CONTROL_PATTERNS)


def build_model(args: Hyperparameters, device: torch.device) -> GPT:
    """On CUDA: bf16 embedding tables, everything else fp32 (the record's layout)."""
    model = GPT(args).to(device)
    if device.type == "cuda":
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                m.bfloat16()
    return model


# -----------------------------
# EVALUATION: BITS PER BYTE
# -----------------------------

def _finish_bpb(loss_sum: Tensor, tokens: Tensor, nbytes: Tensor) -> tuple[float, float]:
    if dist.is_available() and dist.is_initialized():
        for t in (loss_sum, tokens, nbytes):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    val_loss = (loss_sum / tokens).item()
    if not math.isfinite(val_loss):  # fail loudly rather than report a score (PR #769)
        raise RunError(f"non-finite validation loss ({val_loss}); the weights diverged or the eval is broken")
    return val_loss, val_loss / math.log(2.0) * tokens.item() / nbytes.item()


def eval_val(args: Hyperparameters, model: nn.Module, rank: int, world_size: int, device: torch.device,
             val_tokens: Tensor, luts) -> tuple[float, float]:
    """Non-overlapping EVAL_SEQ_LEN windows, split across ranks; float64 sums."""
    seq_len = args.eval_seq_len
    batch_seqs = max(1, args.val_batch_size // (world_size * max(1, 8 // world_size) * seq_len))
    total_seqs = (val_tokens.numel() - 1) // seq_len
    first, last = total_seqs * rank // world_size, total_seqs * (rank + 1) // world_size
    loss_sum, tokens, nbytes = (torch.zeros((), device=device, dtype=torch.float64) for _ in range(3))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for s in range(first, last, batch_seqs):
            e = min(s + batch_seqs, last)
            chunk = val_tokens[s * seq_len: e * seq_len + 1].to(device)
            x, y = chunk[:-1].reshape(-1, seq_len), chunk[1:].reshape(-1, seq_len)
            with autocast_ctx(device):
                loss = model(x, y).detach()
            loss_sum += loss.double() * y.numel()
            tokens += y.numel()
            nbytes += count_bytes(x, y, luts).sum()
    model.train(was_training)
    return _finish_bpb(loss_sum, tokens, nbytes)


def sliding_windows(total_targets: int, seq_len: int, stride: int) -> tuple[Tensor, Tensor]:
    """Window starts and scored counts: window j ends at seq_len + j*stride (the last at total_targets)
    and scores the targets past the previous window's end, so every target is scored exactly once."""
    ends = list(range(seq_len, total_targets, stride)) + [total_targets]
    ends_t = torch.tensor(ends, dtype=torch.int64)
    scored = torch.diff(ends_t, prepend=torch.zeros(1, dtype=torch.int64))
    return ends_t - seq_len, scored


def eval_val_sliding(args: Hyperparameters, model: nn.Module, rank: int, world_size: int,
                     device: torch.device, val_tokens: Tensor, luts) -> tuple[float, float]:
    """Sliding-window eval: each scored token sees up to EVAL_SEQ_LEN - EVAL_STRIDE tokens of context."""
    seq_len, stride = args.eval_seq_len, args.eval_stride
    starts, scored = sliding_windows(val_tokens.numel() - 1, seq_len, stride)
    n = starts.numel()
    first, last = n * rank // world_size, n * (rank + 1) // world_size
    offsets = torch.arange(seq_len + 1)
    positions = torch.arange(seq_len, device=device)
    loss_sum, tokens, nbytes = (torch.zeros((), device=device, dtype=torch.float64) for _ in range(3))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for b in range(first, last, args.eval_batch_seqs):
            idx = slice(b, min(b + args.eval_batch_seqs, last))
            windows = val_tokens[starts[idx, None] + offsets].to(device)  # (B, seq_len + 1)
            x, y = windows[:, :-1], windows[:, 1:]
            with autocast_ctx(device):
                logits = model(x)
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            mask = positions[None, :] >= (seq_len - scored[idx].to(device))[:, None]
            loss_sum += (nll.view_as(mask).double() * mask).sum()
            tokens += mask.sum()
            nbytes += (count_bytes(x, y, luts) * mask).sum()
    model.train(was_training)
    return _finish_bpb(loss_sum, tokens, nbytes)


# -----------------------------
# EXPORT: GPTQ-LITE INT6 / INT8 ARTIFACT
# -----------------------------
# Rules in order: control tensors (incl. ASQU beta) fp32; attention and MLP matrices int6 per row,
# the clip percentile with least error chosen per row; other small floats (<= 65,536 elements) fp16;
# embedding tables and other large floats int8 per row.

SMALL_TENSOR_NUMEL = 65_536
INT8_CLIP_Q = 0.9999984
ARTIFACT_FORMAT = "asqu-golf-int6-v1"
FP16_TINY = 2.0 ** -24  # smallest fp16 subnormal: keeps scales non-zero for all-zero rows


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
    clips = row_quantiles(w.abs(), percentiles)  # (C, rows)
    best_q = best_s = best_err = None
    for clip in clips:
        s = quant_scale(clip, 31, floor)
        q = quantize_rows(w, s, 31)
        err = (q * s.float()[:, None] - w).square().sum(dim=1)
        if best_q is None:
            best_q, best_s, best_err = q, s, err
        else:
            better = err < best_err
            best_q = torch.where(better[:, None], q, best_q)
            best_s, best_err = torch.where(better, s, best_s), torch.minimum(err, best_err)
    return best_q.to(torch.int8), best_s, best_err.sum().item() / w.numel()


def quantize_int8(w: Tensor, floor: float) -> tuple[Tensor, Tensor]:
    w = w.float()
    if w.ndim == 1:
        w = w[None]
    s = quant_scale(row_quantiles(w.abs(), [INT8_CLIP_Q])[0], 127, floor)
    return quantize_rows(w, s, 127).to(torch.int8), s


def is_int6_matrix(name: str, t: Tensor) -> bool:
    return t.ndim == 2 and name.startswith("blocks.") and (".attn." in name or ".mlp." in name)


def quantize_state_dict(sd: dict[str, Tensor], percentiles: list[float], floor: float) -> tuple[dict, dict[str, float]]:
    """Returns the artifact payload and the int6 MSE of each quantized matrix."""
    tensors, meta, mse = {}, {}, {}
    for name, t in sd.items():
        t = t.detach()
        if not t.is_floating_point():
            tensors[name], meta[name] = t.cpu(), "raw"
        elif is_control(name):
            tensors[name], meta[name] = t.float().cpu(), "fp32"
        elif is_int6_matrix(name, t):
            q, s, mse[name] = quantize_int6(t, percentiles, floor)
            tensors[name + ".q"], tensors[name + ".scale"], meta[name] = q.cpu(), s.cpu(), "int6"
        elif t.numel() <= SMALL_TENSOR_NUMEL:
            tensors[name], meta[name] = t.half().cpu(), "fp16"
        else:
            q, s = quantize_int8(t, floor)
            tensors[name + ".q"], tensors[name + ".scale"], meta[name] = q.cpu(), s.cpu(), "int8"
        meta[name] = {"kind": meta[name], "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
    return {"format": ARTIFACT_FORMAT, "tensors": tensors, "meta": meta}, mse


def dequantize_state_dict(payload: dict) -> dict[str, Tensor]:
    tensors, out = payload["tensors"], {}
    for name, info in payload["meta"].items():
        dtype = getattr(torch, info["dtype"])
        if info["kind"] in ("int6", "int8"):
            q, s = tensors[name + ".q"], tensors[name + ".scale"]
            out[name] = (q.float() * s.float()[:, None]).reshape(info["shape"]).to(dtype)
        else:
            out[name] = tensors[name].to(dtype)
    return out


def compress(raw: bytes) -> tuple[bytes, str]:
    if zstandard is not None:
        return zstandard.ZstdCompressor(level=22).compress(raw), "zstd"
    return zlib.compress(raw, 9), "zlib"


def read_artifact(path: Path) -> dict:
    """Load an artifact; a missing, corrupt or truncated file is a clear error naming it."""
    if not Path(path).is_file():
        raise RunError(f"artifact {path} does not exist")
    blob = Path(path).read_bytes()
    try:
        if blob[:4] == b"\x28\xb5\x2f\xfd":  # zstd frame magic
            if zstandard is None:
                raise RuntimeError("it is zstd-compressed and the zstandard package is missing (pip install zstandard)")
            raw = zstandard.ZstdDecompressor().decompress(blob)
        else:
            raw = zlib.decompress(blob)
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            raise RuntimeError(f"it is not a {ARTIFACT_FORMAT} payload")
    except Exception as exc:
        raise RunError(f"artifact {path} is corrupt or truncated: {exc}") from None
    return payload


# -----------------------------
# FILES AND LOGGING
# -----------------------------

def keep_existing(path: Path) -> Path | None:
    """Move an earlier run's file aside (path.1, path.2, ...) instead of overwriting it."""
    if not path.exists():
        return None
    k = 1
    while path.with_name(f"{path.name}.{k}").exists():
        k += 1
    kept = path.with_name(f"{path.name}.{k}")
    path.rename(kept)
    return kept


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Logger:
    """Rank 0 writes every line to logs/<RUN_ID>.txt and train_seed<SEED>.log (and train.log for seed 1337)."""

    def __init__(self, args: Hyperparameters, master: bool):
        self.files, self.kept, self.path = [], [], None
        if not master:
            return
        Path("logs").mkdir(exist_ok=True)
        paths = [Path("logs") / f"{args.run_id}.txt", Path(f"train_seed{args.seed}.log")]
        if args.seed == 1337:
            paths.append(Path("train.log"))
        for p in paths:
            kept = keep_existing(p)
            if kept:
                self.kept.append(f"kept earlier {p} as {kept}")
            self.files.append(open(p, "a", encoding="utf-8"))
        self.path = paths[0]

    def __call__(self, msg: str, console: bool = True) -> None:
        if not self.files:
            return
        if console:
            print(msg, flush=True)
        for f in self.files:
            f.write(msg + "\n")
            f.flush()


# -----------------------------
# TRAINING
# -----------------------------

def param_groups(model: GPT, args: Hyperparameters) -> dict[str, list[nn.Parameter]]:
    """Every parameter in exactly one group: muon (block/projection matrices), embed (token tables),
    head (untied lm_head), scalar (control tensors), asqu (beta)."""
    groups = {"muon": [], "embed": [], "head": [], "scalar": [], "asqu": []}
    for name, p in model.named_parameters():
        if name.endswith("asqu.beta"):
            groups["asqu"].append(p)
        elif is_control(name) or p.ndim < 2:
            groups["scalar"].append(p)
        elif name.endswith("embed.weight") or name == "tok_emb.weight":
            groups["embed"].append(p)
        elif name.startswith("lm_head"):
            groups["head"].append(p)
        else:
            groups["muon"].append(p)
    return groups


def build_optimizers(model: GPT, args: Hyperparameters, device: torch.device) -> list[torch.optim.Optimizer]:
    g = param_groups(model, args)
    adam = dict(betas=(args.beta1, args.beta2), eps=args.adam_eps, fused=device.type == "cuda")
    embed_lr = args.tied_embed_lr if args.tie_embeddings else args.embed_lr
    opts: list[torch.optim.Optimizer] = [
        torch.optim.AdamW([{"params": g["embed"], "lr": embed_lr, "base_lr": embed_lr}], weight_decay=args.adam_wd, **adam),
        Muon(g["muon"], lr=args.matrix_lr, momentum=args.muon_momentum, backend_steps=args.muon_backend_steps,
             weight_decay=args.muon_wd),
        torch.optim.AdamW([{"params": g["scalar"], "lr": args.scalar_lr, "base_lr": args.scalar_lr}],
                          weight_decay=args.adam_wd, **adam),
    ]
    opts[1].param_groups[0]["base_lr"] = args.matrix_lr
    if g["asqu"]:
        opts.append(torch.optim.AdamW([{"params": g["asqu"], "lr": args.asqu_lr, "base_lr": args.asqu_lr}],
                                      weight_decay=args.asqu_wd, **adam))
    if g["head"]:
        opts.append(torch.optim.Adam([{"params": g["head"], "lr": args.head_lr, "base_lr": args.head_lr}], **adam))
    return opts


def lr_scale(args: Hyperparameters, step: int, elapsed_ms: float) -> float:
    """1.0, then linear warmdown to 0: over the last WARMDOWN_ITERS steps (fixed-step mode) or, with a
    wall-clock cap, over the last WARMDOWN_ITERS * mean-step-time of the budget."""
    if args.warmdown_iters <= 0:
        return 1.0
    if args.max_wallclock_seconds <= 0:
        return min(1.0, max(args.iterations - step, 0) / args.warmdown_iters)
    warmdown_ms = args.warmdown_iters * elapsed_ms / max(step, 1)
    remaining_ms = max(1000.0 * args.max_wallclock_seconds - elapsed_ms, 0.0)
    return remaining_ms / max(warmdown_ms, 1e-9) if remaining_ms <= warmdown_ms else 1.0


def asqu_diag(model: GPT) -> list[str]:
    lines = []
    for i, block in enumerate(model.blocks):
        if hasattr(block.mlp, "asqu"):
            b = block.mlp.asqu.effective_beta().detach().float()
            lines.append(f"asqu_diag layer:{i} beta_mean:{b.mean().item():.4f} beta_std:{b.std().item():.4f} "
                         f"beta_min:{b.min().item():.4f} beta_max:{b.max().item():.4f}")
    return lines


def beta_grad_scale(micro_step: int, every: int) -> float:
    """ASQU_BETA_GRAD_EVERY=k: beta's gradient on every k-th micro-step only, times k (same expectation)."""
    return float(every) if micro_step % every == 0 else 0.0


def main() -> None:
    args = Hyperparameters()
    code = Path(__file__).read_text(encoding="utf-8")
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    grad_accum_steps = max(1, 8 // world_size)  # the same global batch for 1, 2, 8 or 16 processes
    if args.train_batch_tokens % (world_size * grad_accum_steps * args.train_seq_len):
        raise ConfigError(
            f"TRAIN_BATCH_TOKENS={args.train_batch_tokens} must be divisible by world_size ({world_size}) x "
            f"gradient accumulation ({grad_accum_steps}) x TRAIN_SEQ_LEN ({args.train_seq_len}) = "
            f"{world_size * grad_accum_steps * args.train_seq_len}")

    # Data and tokenizer: every input checked before anything is written.
    sp = load_tokenizer(args.tokenizer_path, args.vocab_size)
    train_files = find_shards(args.data_path, "train")
    val_files = find_shards(args.data_path, "val")
    val_tokens = load_validation_tokens(val_files, args.eval_seq_len)

    # Device and process group: CUDA + NCCL when a GPU is present, else CPU + gloo.
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    if args.compile is None:
        args.compile = device.type == "cuda"
    backend = pick_attention_backend(device)
    if distributed:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
    master = rank == 0
    log = Logger(args, master)
    if master:
        print(f"logs: {log.path}", flush=True)
    log(code, console=False)
    log("=" * 100, console=False)
    log(f"Running Python {sys.version}", console=False)
    log(f"Running PyTorch {torch.__version__}", console=False)
    if device.type == "cuda":
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False).stdout
        log(smi, console=False)
    log("=" * 100, console=False)
    for line in log.kept:
        log(line)

    CastedLinear.scale_floor = args.quant_scale_floor
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    luts = build_byte_luts(sp, args.vocab_size, device)
    log(f"val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path={args.tokenizer_path}")
    log(f"train_loader:dataset:{Path(args.data_path).resolve().name} train_shards:{len(train_files)}")
    log(f"val_loader:shards pattern={Path(args.data_path) / 'fineweb_val_*.bin'} tokens:{val_tokens.numel() - 1}")

    base_model = build_model(args, device)
    model_params = sum(p.numel() for p in base_model.parameters())
    log(f"model_params:{model_params}")
    log(args.activation_summary())
    log(f"device:{device} dtype:{'bfloat16' if device.type == 'cuda' else 'float32'} attention:{backend} "
        f"compile:{int(args.compile)}")
    log(f"XSA:last_{args.xsa_last_n} active_layers:{[i for i, b in enumerate(base_model.blocks) if b.attn.xsa]}")
    log(f"world_size:{world_size} grad_accum_steps:{grad_accum_steps}")
    log(f"attention_mode:gqa num_heads:{args.num_heads} num_kv_heads:{args.num_kv_heads}")
    log(f"train_batch_tokens:{args.train_batch_tokens} train_seq_len:{args.train_seq_len} "
        f"iterations:{args.iterations} warmup_steps:{args.warmup_steps} "
        f"max_wallclock_seconds:{args.max_wallclock_seconds:.3f}")
    log(f"final_weights:{args.final_weights} ema_decay:{args.ema_decay} late_qat_threshold:{args.late_qat_threshold} "
        f"quant_scale_floor:{args.quant_scale_floor}")
    log(f"seed:{args.seed}")
    if args.mlp_activation == "asqu" and grad_accum_steps % args.asqu_beta_grad_every:
        log(f"WARNING: ASQU_BETA_GRAD_EVERY={args.asqu_beta_grad_every} does not divide the {grad_accum_steps} "
            "micro-steps of a step: some steps update beta from no gradient, and AdamW normalises the k-scaling "
            "away, so beta learns more slowly (about 1/sqrt(k)) than with 1 process")
    if args.max_wallclock_seconds <= 0 and args.warmdown_iters > args.iterations:
        log(f"WARNING: WARMDOWN_ITERS={args.warmdown_iters} > ITERATIONS={args.iterations}: the LR decays from "
            f"step 0 (scale starts at {args.iterations / args.warmdown_iters:.3f})")

    global zeropower_via_newtonschulz5
    compiled_model = base_model
    if args.compile:
        # One cache serves every variant of GPT.forward: train/eval, QAT on/off, a partial last eval batch,
        # logits for the sliding eval, the scorer model, beta-grad skipping. Past the limit fullgraph fails.
        limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
        setattr(torch._dynamo.config, limit, 64)
        zeropower_via_newtonschulz5 = torch.compile(zeropower_via_newtonschulz5)
        compiled_model = torch.compile(base_model, dynamic=False, fullgraph=True)
    model = DDP(compiled_model, device_ids=[local_rank] if device.type == "cuda" else None,
                broadcast_buffers=False) if distributed else compiled_model
    optimizers = build_optimizers(base_model, args, device)
    train_loader = DistributedTokenLoader(train_files, rank, world_size, device)
    micro_steps_done = 0

    def train_step(step: int) -> Tensor:
        """One optimizer step over grad_accum_steps micro-batches; returns the local mean loss."""
        nonlocal micro_steps_done
        total = torch.zeros((), device=device)
        for micro in range(grad_accum_steps):
            if distributed:
                model.require_backward_grad_sync = micro == grad_accum_steps - 1
            ASQU.beta_grad_scale = beta_grad_scale(micro_steps_done, args.asqu_beta_grad_every)
            micro_steps_done += 1
            x, y = train_loader.next_batch(args.train_batch_tokens, args.train_seq_len, grad_accum_steps)
            with autocast_ctx(device):
                loss = model(x, y)
            total += loss.detach()
            (loss / grad_accum_steps).backward()
        frac = min(step / args.muon_momentum_warmup_steps, 1.0) if args.muon_momentum_warmup_steps > 0 else 1.0
        optimizers[1].param_groups[0]["momentum"] = (1 - frac) * args.muon_momentum_warmup_start + frac * args.muon_momentum
        if args.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(base_model.parameters(), args.grad_clip_norm)
        for opt in optimizers:
            opt.step()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        return total / grad_accum_steps

    # Compile warm-up: real steps, then weights, optimizer state and data are reset.
    if args.warmup_steps > 0:
        initial_model = copy.deepcopy(base_model.state_dict())
        initial_opts = [copy.deepcopy(opt.state_dict()) for opt in optimizers]
        for ws in range(args.warmup_steps):
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] = group["base_lr"]
            train_step(0)
            log(f"warmup_step:{ws + 1}/{args.warmup_steps}")
        base_model.load_state_dict(initial_model)
        for opt, state in zip(optimizers, initial_opts):
            opt.load_state_dict(state)
        train_loader = DistributedTokenLoader(train_files, rank, world_size, device)
        micro_steps_done = 0

    ema = {k: v.detach().float().clone() for k, v in base_model.state_dict().items()}
    swa, swa_count = None, 0
    max_ms = 1000.0 * args.max_wallclock_seconds if args.max_wallclock_seconds > 0 else None
    training_ms, stop_after, step, synced_ms = 0.0, None, 0, 0.0
    sync(device)
    t0 = time.perf_counter()
    while True:
        last_step = step == args.iterations or (stop_after is not None and step >= stop_after)
        if last_step or (args.val_loss_every > 0 and step % args.val_loss_every == 0):
            sync(device)
            training_ms += 1000.0 * (time.perf_counter() - t0)
            val_loss, val_bpb = eval_val(args, model, rank, world_size, device, val_tokens, luts)
            log(f"step:{step}/{args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
                f"train_time:{training_ms:.0f}ms step_avg:{training_ms / max(step, 1):.2f}ms")
            for line in asqu_diag(base_model):
                log(line)
            sync(device)
            t0 = time.perf_counter()
        if last_step:
            if stop_after is not None and step < args.iterations:
                log(f"stopping_early: wallclock_cap train_time:{training_ms:.0f}ms step:{step}/{args.iterations}")
            break

        scale = lr_scale(args, step, synced_ms)  # the ranks' mean clock: every rank takes the same LR and QAT switch
        if args.late_qat_threshold > 0 and scale < args.late_qat_threshold and not CastedLinear.qat:
            CastedLinear.qat = True
            log(f"late_qat:enabled step:{step} scale:{scale:.4f}")
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
        train_loss = train_step(step)
        with torch.no_grad():
            state = base_model.state_dict()
            torch._foreach_lerp_(list(ema.values()), [state[k].float() for k in ema], 1.0 - args.ema_decay)
        step += 1
        if args.final_weights == "swa" and scale < 0.2 and step % args.swa_every == 0:
            if swa is None:
                swa = {k: v.detach().float().clone() for k, v in base_model.state_dict().items()}
                log(f"swa:start step:{step}")
            else:
                for k, v in base_model.state_dict().items():
                    swa[k] += v.float()
            swa_count += 1
        approx_ms = training_ms + 1000.0 * (time.perf_counter() - t0)
        # One small all-reduce per step: the mean train loss, the stop decision and the clock, across ranks.
        status = torch.stack([train_loss.float(), torch.tensor(float(max_ms is not None and approx_ms >= max_ms),
                                                                  device=device), torch.tensor(approx_ms, device=device)])
        if distributed:
            dist.all_reduce(status, op=dist.ReduceOp.SUM)
        mean_loss, reached_cap, synced_ms = status[0].item() / world_size, status[1].item() > 0, status[2].item() / world_size
        if not math.isfinite(mean_loss):
            log(f"stopping: non-finite train_loss ({mean_loss}) at step:{step}/{args.iterations}; the log is kept "
                f"at {log.path if master else 'rank 0'}. Lower the learning rates or check the data.")
            raise RunError(f"non-finite train_loss at step {step}")
        if args.train_log_every > 0 and (step <= 10 or step % args.train_log_every == 0 or stop_after is not None):
            log(f"step:{step}/{args.iterations} train_loss:{mean_loss:.4f} "
                f"train_time:{approx_ms:.0f}ms step_avg:{approx_ms / step:.2f}ms")
        if stop_after is None and reached_cap:
            stop_after = step

    if device.type == "cuda":
        log(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 2**20} MiB "
            f"reserved: {torch.cuda.max_memory_reserved() // 2**20} MiB")

    # Final weights: an explicit choice, never picked by validation score.
    if args.final_weights == "ema":
        final = ema
    elif args.final_weights == "swa":
        if swa is None:
            raise RunError("FINAL_WEIGHTS=swa but no SWA snapshot was taken (the LR scale never fell below "
                                   "0.2 on a multiple of SWA_EVERY); run longer or use FINAL_WEIGHTS=ema")
        final = {k: v / swa_count for k, v in swa.items()}
        log(f"swa:applying {swa_count} snapshots")
    else:
        final = None
    if final is not None:
        current = base_model.state_dict()
        base_model.load_state_dict({k: v.to(current[k].dtype) for k, v in final.items()})
    CastedLinear.qat = False
    sync(device)
    t_diag = time.perf_counter()
    diag_loss, diag_bpb = eval_val(args, compiled_model, rank, world_size, device, val_tokens, luts)
    log(f"DIAGNOSTIC post_{args.final_weights} val_loss:{diag_loss:.4f} val_bpb:{diag_bpb:.4f} "
        f"eval_time:{1000.0 * (time.perf_counter() - t_diag):.0f}ms")
    for line in asqu_diag(base_model):
        log(line)
    export_and_evaluate(args, base_model, code, log, master, distributed, rank, world_size, device,
                        val_tokens, luts, diag_bpb)
    if distributed:
        dist.destroy_process_group()


SIZE_LIMIT = 16_000_000


def export_and_evaluate(args, base_model, code, log, master, distributed, rank, world_size, device,
                        val_tokens, luts, diag_bpb) -> None:
    """Write final_model.pt and the int6 artifact (rank 0, atomically), read the artifact back from disk
    on every rank, load it into a fresh model and score it."""
    raw_path, artifact_path = Path("final_model.pt"), Path("final_model.int6.ptz")
    if master:
        sd = {k: v.detach().cpu() for k, v in base_model.state_dict().items()}
        for p in (raw_path, artifact_path):
            kept = keep_existing(p)
            if kept:
                log(f"kept earlier {p} as {kept}")
        buf = io.BytesIO()
        torch.save(sd, buf)
        atomic_write(raw_path, buf.getvalue())
        t_q = time.perf_counter()
        payload, mse = quantize_state_dict(base_model.state_dict(), args.clip_percentiles, args.quant_scale_floor)
        buf = io.BytesIO()
        torch.save(payload, buf)
        blob, method = compress(buf.getvalue())
        if method == "zlib":
            log("compression: zstandard is not installed, falling back to zlib level 9 (larger artifact)")
        atomic_write(artifact_path, blob)
        for name, err in mse.items():
            log(f"quant_mse {name} int6_mse:{err:.4e}", console=False)
        code_bytes, total = len(code.encode("utf-8")), len(blob) + len(code.encode("utf-8"))
        log(f"quantize_time:{1000.0 * (time.perf_counter() - t_q):.0f}ms")
        log(f"Serialized model: {raw_path.stat().st_size} bytes")
        log(f"Code size: {code_bytes} bytes")
        log(f"Serialized model int6+{method}: {len(blob)} bytes")
        log(f"Total submission size int6+{method}: {total} bytes")
        if total > SIZE_LIMIT:
            log(f"WARNING: submission size {total} bytes exceeds the {SIZE_LIMIT:,}-byte limit by "
                f"{total - SIZE_LIMIT} bytes; not a valid submission (files kept: {raw_path}, {artifact_path})")
    if distributed:
        dist.barrier()
    eval_model = build_model(args, device)
    eval_model.load_state_dict(dequantize_state_dict(read_artifact(artifact_path)), strict=True)
    scorer = torch.compile(eval_model, dynamic=False, fullgraph=True) if args.compile else eval_model
    sync(device)
    t_q = time.perf_counter()
    q_loss, q_bpb = eval_val(args, scorer, rank, world_size, device, val_tokens, luts)
    log(f"final_int6_roundtrip val_loss:{q_loss:.4f} val_bpb:{q_bpb:.4f} "
        f"eval_time:{1000.0 * (time.perf_counter() - t_q):.0f}ms")
    log(f"final_int6_roundtrip_exact val_loss:{q_loss:.8f} val_bpb:{q_bpb:.8f}")
    log(f"quant_gap val_bpb:{q_bpb - diag_bpb:+.4f} (int6 roundtrip minus post_{args.final_weights})")
    if 0 < args.eval_stride:
        sync(device)
        t_s = time.perf_counter()
        s_loss, s_bpb = eval_val_sliding(args, scorer, rank, world_size, device, val_tokens, luts)
        log(f"final_int6_sliding_window val_loss:{s_loss:.4f} val_bpb:{s_bpb:.4f} stride:{args.eval_stride} "
            f"eval_time:{1000.0 * (time.perf_counter() - t_s):.0f}ms")
        log(f"final_int6_sliding_window_exact val_loss:{s_loss:.8f} val_bpb:{s_bpb:.8f}")


if __name__ == "__main__":
    try:
        main()
    except (ConfigError, RunError) as exc:
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
