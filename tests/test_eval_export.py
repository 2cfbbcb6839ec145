"""Bits per byte, the sliding-window eval and the int6 artifact (train_gpt.py's EVALUATION and EXPORT sections)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
import sentencepiece as spm
import torch
import zstandard

import train_gpt as tg
from conftest import REPO, TINY_ENV, real_tokenizer_path

CPU = torch.device("cpu")


# ---------------------------------------------------------------- byte accounting

@pytest.fixture(scope="module")
def real_sp():
    path = real_tokenizer_path()
    if not path.exists():
        pytest.skip(f"published tokenizer not found at {path} (set ASQU_GOLF_REAL_TOKENIZER)")
    return spm.SentencePieceProcessor(model_file=str(path))


def test_byte_tables_match_sentencepiece_decoding(real_sp):
    """Table byte total == bytes of the text SentencePiece decodes, run by run between boundary tokens
    (BOS, <unk>): an independent count, on real text with characters outside the vocabulary."""
    import pydoc_data.topics as topics

    docs = [topics.topics[k] for k in sorted(topics.topics)[:40]]
    docs.append("naïve café — 東京 ☃ {x} 12345 ok\ttab  two spaces\n\nnew paragraph ½ ﬁ")
    stream = []
    for d in docs:
        stream += [1] + real_sp.encode(d)
    assert 3 in stream  # <unk> really occurs
    tables = tg.build_byte_luts(real_sp, 1024)
    table_total = tg.stream_bytes(np.array(stream), tables)[1:].sum()
    boundary = lambda i: real_sp.is_control(i) or real_sp.is_unknown(i) or real_sp.is_unused(i)  # noqa: E731
    independent, run = 0, []
    for tok in stream[1:] + [1]:
        if boundary(tok):
            independent += len(real_sp.decode(run).encode("utf-8")) if run else 0
            run = []
        else:
            run.append(tok)
    assert table_total == independent
    # the leading-space +1 is counted once (issue #1719's bug would add ~17%)
    words = real_sp.encode(" the cat sat")
    assert tg.stream_bytes(np.array([1] + words), tables)[1:].sum() == len("the cat sat")


# ---------------------------------------------------------------- sliding windows

@pytest.mark.parametrize("n,L,stride", [(1024, 128, 64), (1000, 128, 64), (1000, 128, 48), (128, 128, 64),
                                        (512, 128, 128), (777, 100, 1)])
def test_sliding_windows_score_every_target_once(n, L, stride):
    starts, scored = tg.sliding_windows(n, L, stride)
    counts = np.zeros(n, dtype=int)
    for s, c in zip(starts.tolist(), scored.tolist()):
        assert s >= 0 and s + L <= n and 0 < c <= L  # full-length windows only
        counts[s + L - c: s + L] += 1
    assert (counts == 1).all()


CPU_RT = tg.Runtime(0, 1, 0, False, CPU, False, False)


def rank(r: int, world: int) -> tg.Runtime:
    return tg.Runtime(r, world, 0, False, CPU, False, False)


@pytest.fixture(scope="module")
def tiny(sample_data):
    env = dict(TINY_ENV, EVAL_BATCH_SEQS="7", VAL_BATCH_SIZE="4096", MLP_ACTIVATION="asqu")
    saved = {k: tg.os.environ.get(k) for k in env}
    tg.os.environ.update(env)
    try:
        args = tg.Hyperparameters()
    finally:
        for k, v in saved.items():
            tg.os.environ.pop(k) if v is None else tg.os.environ.__setitem__(k, v)
    torch.manual_seed(0)
    model = tg.GPT(args)
    with torch.no_grad():  # non-trivial weights everywhere, as after training
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.05 if p.ndim == 2 else 0.2))
    sp = tg.load_tokenizer(sample_data["tokenizer"], 1024)
    val = tg.load_validation_tokens(tg.find_shards(sample_data["data_path"], "val"), args.eval_seq_len, 1024)[: 40 * 128 + 1]
    data = tg.ValData(torch.from_numpy(val.astype(np.int64)),
                      torch.from_numpy(tg.stream_bytes(val, tg.build_byte_luts(sp, 1024)).astype(np.int16)))
    return args, model, data, None


def sums(args, model, rt, val, sliding: bool) -> list[float]:
    stride, batch = (args.eval_stride, args.eval_batch_seqs) if sliding else (args.eval_seq_len, 3)
    return tg.eval_sums(args, model, rt, val, stride, batch).tolist()


def test_sliding_totals_equal_plain_eval(tiny):
    args, model, val, luts = tiny
    (_, tok_a, bytes_a), (_, tok_b, bytes_b) = sums(args, model, CPU_RT, val, False), sums(args, model, CPU_RT, val, True)
    assert tok_a == tok_b == val.tokens.numel() - 1 and bytes_a == bytes_b


def test_stride_equal_to_window_is_the_plain_eval(tiny, monkeypatch):
    args, model, val, luts = tiny
    monkeypatch.setattr(args, "eval_stride", args.eval_seq_len)
    plain = tg.eval_val(args, model, CPU_RT, val)
    slide = tg.eval_val_sliding(args, model, CPU_RT, val)
    assert slide[0] == pytest.approx(plain[0], rel=1e-6) and slide[1] == pytest.approx(plain[1], rel=1e-6)


@pytest.mark.parametrize("sliding", [False, True])
def test_two_ranks_sum_to_one(tiny, sliding):
    """The ranks' shares partition the work: their sums add up to the single-process sums."""
    args, model, val, luts = tiny
    one, r0, r1 = (sums(args, model, rank(r, w), val, sliding) for r, w in ((0, 1), (0, 2), (1, 2)))
    assert r0[1] > 0 and r1[1] > 0
    assert r0[1] + r1[1] == one[1] and r0[2] + r1[2] == one[2]
    assert r0[0] + r1[0] == pytest.approx(one[0], rel=1e-9)


# ---------------------------------------------------------------- quantization

def heavy_tailed(rows, cols, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.05
    w[torch.rand(rows, cols, generator=g) < 0.002] *= 25  # outliers: where clipping pays
    return w


def test_int6_codes_scales_and_clip_choice():
    w = heavy_tailed(96, 512)
    q, s, mse = tg.quantize_int6(w, [0.999, 0.9995, 0.9999, 0.99999, 1.0], floor=0.0)
    assert q.dtype == torch.int8 and int(q.min()) >= -31 and int(q.max()) <= 31
    assert s.dtype == torch.float16 and s.shape == (96,)
    err_rows = ((q.float() * s.float()[:, None]) - w).square().sum(1)
    q1, s1, mse1 = tg.quantize_int6(w, [1.0], floor=0.0)  # plain row-max clip
    err1_rows = ((q1.float() * s1.float()[:, None]) - w).square().sum(1)
    assert torch.all(err_rows <= err1_rows) and mse < mse1  # never worse per row, better overall
    assert mse == pytest.approx(err_rows.sum().item() / w.numel(), rel=1e-6)


def test_row_quantiles_match_torch_quantile():
    a = torch.rand(7, 333)
    qs = [0.5, 0.999, 0.9999984, 1.0]
    torch.testing.assert_close(tg.row_quantiles(a, qs), torch.quantile(a, torch.tensor(qs), dim=1))


def test_int8_embeddings():
    w = heavy_tailed(300, 256, seed=1)
    for floor in (0.0, 1.0):
        q, s = tg.quantize_int8(w, floor)
        assert q.dtype == torch.int8 and int(q.abs().max()) <= 127 and s.dtype == torch.float16
        assert ((q.float() * s.float()[:, None]) - w).abs().max() <= s.float().max() / 2 + 1e-6


def test_zero_rows_quantize_to_zero():
    w = torch.zeros(4, 128)
    for floor in (0.0, 1.0):
        q, s, _ = tg.quantize_int6(w, [0.999, 1.0], floor)
        assert torch.count_nonzero(q) == 0 and torch.all(s > 0)


def test_scale_floor_is_the_records_clamp_and_qat_uses_it():
    """QUANT_SCALE_FLOOR=1 (default): rows with clip < 1 get the record's scale 1/31; larger rows clip/31."""
    w = torch.randn(6, 256) * 0.05
    w[3] *= 60  # this row's max is well above 1
    q, s, _ = tg.quantize_int6(w, [1.0], floor=1.0)
    small = torch.tensor([i != 3 for i in range(6)])
    assert torch.all(s[small] == torch.tensor(1 / 31, dtype=torch.float16))
    assert s[3] == (w[3].abs().max() / 31).half()
    assert int(q[small].abs().max()) < 31  # small rows use only part of the code range
    # late QAT fake-quantizes to that same grid
    lin = tg.CastedLinear(256, 6, bias=False, scale_floor=1.0)
    lin.int6 = True
    with torch.no_grad():
        lin.weight.copy_(w)
    x = torch.eye(256)
    torch.testing.assert_close(lin(x, qat=True).T, q.float() * s.float()[:, None])
    torch.testing.assert_close(lin(x, qat=False).T, w)  # off: the fp32 weights as they are
    lin.eval()
    torch.testing.assert_close(lin(x, qat=True).T, w)  # never in eval mode
    with torch.device("meta"):  # the model takes the floor from its settings, for every int6 matrix
        model = tg.GPT(tg.Hyperparameters({"QUANT_SCALE_FLOOR": "0.5"}))
    assert {m.scale_floor for m in model.modules() if isinstance(m, tg.CastedLinear) and m.int6} == {0.5}


def test_roundtrip_keeps_control_tensors_bit_exact_and_output_close(tiny, tmp_path):
    args, model, val, luts = tiny
    sd = model.state_dict()
    payload, mse = tg.quantize_state_dict(sd, args.clip_percentiles, floor=0.0)
    kinds = {k: v["kind"] for k, v in payload["meta"].items()}
    for k in sd:
        if tg.is_control(k):
            assert kinds[k] == "fp32", k
    assert {k for k in sd if k.endswith("asqu.beta")} and all(kinds[k] == "fp32" for k in sd if "asqu.beta" in k)
    # fp16 cannot hold these betas: passthrough must be fp32 (the record's order stored them in fp16)
    assert any(not torch.equal(sd[k], sd[k].half().float()) for k in sd if "asqu.beta" in k)
    path = tmp_path / "a.ptz"
    path.write_bytes(tg.compress(_save(payload), "zstd"))
    deq = tg.load_artifact(path.read_bytes(), str(path))[0]
    for k in sd:
        assert deq[k].dtype == sd[k].dtype and deq[k].shape == sd[k].shape
        if tg.is_control(k):
            assert torch.equal(deq[k], sd[k]), k
    assert set(mse) == {k for k in sd if kinds[k] == "int6"} and len(mse) == 6 * args.num_layers
    fresh = tg.GPT(args)
    fresh.load_state_dict(deq, strict=True)
    x = val.tokens[: 2 * 128].reshape(2, 128)
    with torch.no_grad():
        a, b = model(x), fresh(x)
    assert (a - b).abs().mean() < 0.05 * a.abs().mean()


def _save(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_corrupt_or_truncated_artifact_is_a_clear_error(tiny):
    args, model, _, _ = tiny
    blob = tg.compress(_save(tg.quantize_state_dict(model.state_dict(), [1.0], 1.0)[0]), "zstd")
    old = zstandard.ZstdCompressor().compress(_save(tg.quantize_state_dict(model.state_dict(), [1.0], 1.0)[0]))
    for name, data in [("trunc.ptz", blob[: len(blob) // 2]), ("old_trunc.ptz", old[: len(old) // 2]),
                       ("junk.ptz", b"\x00" * 100), ("other.ptz", tg.compress(_save({"x": torch.zeros(2)}), "lzma"))]:
        with pytest.raises(tg.RunError, match=f"^artifact {name} is (damaged|not an artifact)"):
            tg.load_artifact(data, name)


@pytest.mark.parametrize("runs_packed", [False, True])
def test_export_size_accounting_and_over_limit_warning(tiny, tmp_path, monkeypatch, runs_packed):
    """The total counts the packed train_gpt.py: this source's packed form, or the packed file that runs itself."""
    args, model, val, luts = tiny
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tg, "SIZE_LIMIT", 1000)
    lines = []
    code = "print('code')\n# é\n" * 50
    packed = tg.packed_source(code) + (b"# as another packing wrote it\n" if runs_packed else b"")
    file = packed if runs_packed else code.encode("utf-8")
    log = lambda msg, console=True: lines.append(msg)  # noqa: E731
    blob = tg.export(args, model, tg.Inputs(code, file, [], val, 0, []), log)
    tg.score_artifact(args, CPU_RT, blob, val, 3.0, log)
    blob_bytes = (tmp_path / "final_model.int6.ptz").stat().st_size
    assert blob_bytes == len(blob) == (tmp_path / "runs" / args.run_id / "final_model.int6.ptz").stat().st_size
    text = "\n".join(lines)
    total = int(re.search(r"^Total submission size int6\+(\w+): (\d+) bytes$", text, re.M).group(2))
    assert len(packed) < len(code) and total == blob_bytes + len(packed)
    assert f"Code size: {len(file)} bytes" in lines
    ran = "packed file" if runs_packed else "source"
    assert f"Code size (packed): {len(packed)} bytes counted ({ran} ran)" in lines
    # auto: every installed compressor tried, the smallest kept; the artifact says which
    tried = dict(re.findall(r"(\w+) (\d+) bytes [\d.]+s", re.search(r"^compression: (.*)$", text, re.M).group(1)))
    kept = min(tried, key=lambda name: int(tried[name]))
    assert list(tried) == ["zstd", "brotli", "lzma"] and int(tried[kept]) == blob_bytes
    assert f"; kept {kept} (EXPORT_COMPRESSOR=auto EXPORT_SHUFFLE=1)" in text
    assert f"Serialized model int6+{kept}: {blob_bytes} bytes" in text
    assert blob.startswith(f"asqu-golf-artifact-v2 {kept} sha256:".encode())
    assert any(ln.startswith(f"WARNING: submission size {total} bytes exceeds the 1,000-byte limit") for ln in lines)
    assert (tmp_path / "final_model.pt").exists()  # files kept
    assert any(ln.startswith("final_int6_sliding_window_exact") for ln in lines)
    assert any(ln.startswith("quant_gap val_bpb:") for ln in lines)
    assert sum(ln.startswith("quant_mse blocks.") for ln in lines) == 6 * args.num_layers


def test_run_without_zstandard_and_brotli_takes_lzma(run_train, tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    for name in ("zstandard", "brotli"):
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} hidden for this test')\n")
    proc = run_train(check=False, PYTHONPATH=str(blocker), EXPORT_COMPRESSOR="zstd")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "error: EXPORT_COMPRESSOR=zstd is not installed: pip install -r requirements.txt, or auto")
    run_train(PYTHONPATH=str(blocker), ITERATIONS=1, VAL_LOSS_EVERY=0, EVAL_STRIDE=0, RUN_ID="z")
    log = (tmp_path / "logs/z.txt").read_text()
    assert re.search(r"^compression: lzma \d+ bytes [\d.]+s; kept lzma ", log, re.M)
    blob = (tmp_path / "final_model.int6.ptz").stat().st_size
    code = len(tg.packed_source((REPO / "train_gpt.py").read_text(encoding="utf-8")))  # the total counts it packed
    assert f"Serialized model int6+lzma: {blob} bytes" in log
    assert f"Total submission size int6+lzma: {blob + code} bytes" in log
