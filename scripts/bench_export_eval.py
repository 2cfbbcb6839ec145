"""Timings of the artifact path: GPTQ-lite int6 export (quantize; each EXPORT_COMPRESSOR x EXPORT_SHUFFLE, bytes
vs zstd 22 as before; load) of the default 27M-parameter model, and the plain and sliding-window evals of a small
model on the offline sample's validation split; parts interleaved as in bench_asqu.py, figures median [min, max].

  python3 scripts/bench_export_eval.py                    # 5 rounds, export and eval
  python3 scripts/bench_export_eval.py --what export --weights runs/RUN/final_model.pt   # a run's trained weights
  python3 scripts/bench_export_eval.py --what eval --stride 64 --eval-tokens 32768
  python3 scripts/bench_export_eval.py --rounds 1 --export-model small --eval-tokens 4096   # smoke run
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
import zstandard

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path[:0] = [str(REPO / "data"), str(REPO), str(SCRIPTS)]
import train_gpt as tg  # noqa: E402
from bench_asqu import DEFAULT_ROUNDS, fmt_spread, header, interleaved, per_round_ratios, sample_data  # noqa: E402
from configs import named_config  # noqa: E402

SMALL = {**named_config("cpu_small"), "TRAIN_SEQ_LEN": "1024", "EVAL_SEQ_LEN": "1024"}  # the small CPU model


def trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Random non-zero weights of realistic scale (zero-initialised projections would quantize trivially)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.03 if p.ndim == 2 else 0.1))
    return model


class ExportBench:
    def __init__(self, env: dict, weights: str | None):
        self.args = tg.Hyperparameters(env)
        torch.manual_seed(0)
        self.model = trained_like(tg.GPT(self.args))
        if weights:  # a run's final_model.pt (its settings must be env's)
            self.model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.params = sum(p.numel() for p in self.model.parameters())
        self.variants = [f"{method} shuffle:{shuffle}" for shuffle in (0, 1) for method in ("zstd", "brotli", "lzma")]
        self.times: dict[str, list[float]] = {"quantize": [], **{v: [] for v in self.variants}, "load": []}

    def round(self) -> None:
        t0 = time.perf_counter()
        payload, mse = tg.quantize_state_dict(self.model.state_dict(), self.args.clip_percentiles,
                                              self.args.quant_scale_floor)
        self.times["quantize"].append(time.perf_counter() - t0)
        blobs = {}
        for variant in self.variants:  # serialized and compressed as export() does it
            t0 = time.perf_counter()
            shuffle = variant.endswith("1")
            tensors = {k: tg.shuffle_bytes(t) if shuffle else t for k, t in payload["tensors"].items()}
            buf = io.BytesIO()
            torch.save(dict(payload, shuffled=shuffle, tensors=tensors), buf)
            blobs[variant] = tg.compress(buf.getvalue(), variant.split()[0])
            self.times[variant].append(time.perf_counter() - t0)
            if variant == "zstd shuffle:0":  # as artifacts were before: no header, no checksum
                self.before = len(zstandard.ZstdCompressor(level=22).compress(buf.getvalue()))
        self.bytes, self.matrices = {v: len(b) for v, b in blobs.items()}, len(mse)
        t0 = time.perf_counter()  # the smallest: check, decompress, dequantize, load
        tg.GPT(self.args).load_state_dict(tg.load_artifact(min(blobs.values(), key=len), "smallest")[0])
        self.times["load"].append(time.perf_counter() - t0)

    def report(self, name: str) -> None:
        print(f"\nexport, {name} model ({self.params:,} params, {self.matrices} int6 matrices, "
              f"{len(self.args.clip_percentiles)} clip candidates; before: zstd 22 {self.before:,} bytes):")
        for key, values in self.times.items():
            size = f" {self.bytes[key]:>11,} bytes x{self.bytes[key] / self.before:.4f}" if key in self.bytes else ""
            print(f"  {key:17s} {fmt_spread(values, '{:.2f}')} s{size}")


class EvalBench:
    def __init__(self, stride: int, eval_tokens: int):
        data = sample_data()
        self.args = tg.Hyperparameters(dict(SMALL, EVAL_STRIDE=str(stride)))
        torch.manual_seed(0)
        self.model = trained_like(tg.GPT(self.args))
        seq = self.args.eval_seq_len
        sp = tg.load_tokenizer(data["tokenizer"], 1024)
        tokens = tg.load_validation_tokens(tg.find_shards(data["data_path"], "val"), seq, 1024)
        n = (min(eval_tokens, tokens.size - 1) // seq) * seq
        if n < seq:
            raise SystemExit(f"--eval-tokens {eval_tokens} is less than one sequence ({seq})")
        tokens = tokens[: n + 1]
        nbytes = tg.stream_bytes(tokens, tg.build_byte_luts(sp, 1024))  # as train_gpt.py's main() does
        self.val = tg.ValData(torch.from_numpy(tokens.astype(np.int64)), torch.from_numpy(nbytes.astype(np.int16)))
        self.rt = tg.Runtime(rank=0, world_size=1, local_rank=0, distributed=False, device=torch.device("cpu"),
                             bf16=False, compile=False)
        self.times: dict[str, list[float]] = {"plain": [], "sliding": []}
        self.bpb: dict[str, float] = {}

    def run(self, kind: str) -> None:
        fn = tg.eval_val if kind == "plain" else tg.eval_val_sliding
        t0 = time.perf_counter()
        _, self.bpb[kind] = fn(self.args, self.model, self.rt, self.val)
        self.times[kind].append(time.perf_counter() - t0)

    def report(self) -> None:
        a = self.args
        print(f"\neval, small model ({a.num_layers}x{a.model_dim}, seq {a.eval_seq_len}) on "
              f"{self.val.tokens.numel() - 1:,} sample val tokens (val_bpb plain {self.bpb['plain']:.4f}, sliding "
              f"{self.bpb['sliding']:.4f}):")
        print(f"  plain             {fmt_spread(self.times['plain'], '{:.2f}')} s")
        print(f"  sliding stride {a.eval_stride:<3d}{fmt_spread(self.times['sliding'], '{:.2f}')} s")
        ratio = per_round_ratios(self.times["sliding"], self.times["plain"])
        print(f"  sliding/plain     x{fmt_spread(ratio, '{:.1f}')} "
              f"(forward work ratio {a.eval_seq_len / a.eval_stride:.0f})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", choices=["export", "eval", "all"], default="all")
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"rounds (default {DEFAULT_ROUNDS})")
    p.add_argument("--stride", type=int, default=64, help="sliding-window stride")
    p.add_argument("--eval-tokens", type=int, default=32768, help="validation tokens evaluated per round")
    p.add_argument("--export-model", choices=["default", "small"], default="default",
                   help="the model exported: the record's default (27M) or the small eval model")
    p.add_argument("--weights", help="a run's final_model.pt to export (default: random weights of trained scale)")
    a = p.parse_args(argv)
    if a.rounds < 1 or a.stride < 1:
        p.error("--rounds and --stride must be >= 1")
    print(header(f"scripts/bench_export_eval.py {' '.join(sys.argv[1:] if argv is None else argv)}", a.rounds, "cpu"))
    export_env = {} if a.export_model == "default" else SMALL
    export = ExportBench(export_env, a.weights) if a.what in ("export", "all") else None
    evals = EvalBench(a.stride, a.eval_tokens) if a.what in ("eval", "all") else None
    parts = ([export.round] if export else []) + ([lambda: evals.run("plain"), lambda: evals.run("sliding")]
                                                  if evals else [])
    interleaved(a.rounds, parts, lambda part: part())
    if export:
        export.report(a.export_model)
    if evals:
        evals.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
