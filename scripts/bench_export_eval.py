"""CPU timings of the artifact path: GPTQ-lite int6 export of the default 27M-parameter model, and the
plain and sliding-window evals of a small model on the offline sample's validation split.

  python3 scripts/bench_export_eval.py [--stride 64] [--eval-tokens 32768]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "data"))
import train_gpt as tg  # noqa: E402

SMALL = {"NUM_LAYERS": "4", "MODEL_DIM": "128", "NUM_HEADS": "4", "NUM_KV_HEADS": "2", "MLP_MULT": "3",
         "XSA_LAST_N": "2", "VE_LAYERS": "2,3", "VE_DIM": "64", "BIGRAM_VOCAB_SIZE": "512", "BIGRAM_DIM": "64",
         "TRAIN_SEQ_LEN": "1024", "EVAL_SEQ_LEN": "1024"}


def hyperparameters(env: dict) -> tg.Hyperparameters:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return tg.Hyperparameters()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Random non-zero weights of realistic scale (zero-initialised projections would quantize trivially)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.03 if p.ndim == 2 else 0.1))
    return model


def bench_export() -> None:
    args = hyperparameters({})
    torch.manual_seed(0)
    model = trained_like(tg.GPT(args))
    t0 = time.perf_counter()
    payload, mse = tg.quantize_state_dict(model.state_dict(), args.clip_percentiles, args.quant_scale_floor)
    t_quant = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save(payload, buf)
    t1 = time.perf_counter()
    blob, method = tg.compress(buf.getvalue())
    t_comp = time.perf_counter() - t1
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "final_model.int6.ptz"
        path.write_bytes(blob)
        t2 = time.perf_counter()
        tg.GPT(args).load_state_dict(tg.dequantize_state_dict(tg.read_artifact(path)))
        t_load = time.perf_counter() - t2
    n = sum(p.numel() for p in model.parameters())
    print(f"export, default model ({n:,} params, {len(mse)} int6 matrices, "
          f"{len(args.clip_percentiles)} clip candidates): quantize {t_quant:.2f} s, {method} {t_comp:.2f} s, "
          f"read back + dequantize + load {t_load:.2f} s; artifact {len(blob):,} bytes")


def bench_eval(stride: int, eval_tokens: int) -> None:
    from build_sample import build_sample, existing_shards

    root = Path(tempfile.gettempdir()) / "asqu_golf_bench_sample"
    if not existing_shards(root / "ds"):
        build_sample(root / "ds", root / "tok", vocab_size=1024)
    args = hyperparameters(dict(SMALL, EVAL_STRIDE=str(stride)))
    torch.manual_seed(0)
    model = trained_like(tg.GPT(args))
    cpu = torch.device("cpu")
    sp = tg.load_tokenizer(str(root / "tok" / "sample_1024_bpe.model"), 1024)
    val = tg.load_validation_tokens(tg.find_shards(str(root / "ds"), "val"), args.eval_seq_len)
    val = val[: (min(eval_tokens, val.numel() - 1) // args.eval_seq_len) * args.eval_seq_len + 1]
    luts = tg.build_byte_luts(sp, 1024, cpu)
    t0 = time.perf_counter()
    plain = tg.eval_val(args, model, 0, 1, cpu, val, luts)
    t_plain = time.perf_counter() - t0
    t1 = time.perf_counter()
    slide = tg.eval_val_sliding(args, model, 0, 1, cpu, val, luts)
    t_slide = time.perf_counter() - t1
    n = val.numel() - 1
    print(f"eval, small model (4x128, seq {args.eval_seq_len}) on {n:,} tokens: plain {t_plain:.2f} s "
          f"(val_bpb {plain[1]:.4f}), sliding stride {stride} {t_slide:.2f} s (val_bpb {slide[1]:.4f}); "
          f"sliding/plain x{t_slide / t_plain:.1f} (forward work ratio {args.eval_seq_len / stride:.0f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stride", type=int, default=64)
    p.add_argument("--eval-tokens", type=int, default=32768)
    a = p.parse_args()
    bench_export()
    bench_eval(a.stride, a.eval_tokens)


if __name__ == "__main__":
    main()
