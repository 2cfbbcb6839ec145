"""Bad input: one clear message naming the variable or file, a non-zero exit, nothing written."""
from __future__ import annotations

import shutil

import numpy as np
import pytest


def check_refused(proc, tmp_path, *needles, code=2):
    assert proc.returncode == code, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err and err[-1].startswith("error: "), proc.stderr
    for n in needles:
        assert n in err[-1], (n, err[-1])
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "logs").exists() and not list(tmp_path.glob("train*.log"))  # nothing written
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("env,needles", [
    ({"MLP_ACTIVATION": "gelu"}, ["MLP_ACTIVATION='gelu'", "relu2, leaky2, asqu"]),
    ({"ITERATIONS": "lots"}, ["ITERATIONS='lots'", "not a whole number"]),
    ({"SEED": "-1"}, ["SEED=-1", "0..4294967295"]),
    ({"RUN_ID": "exp/run1"}, ["RUN_ID='exp/run1'", "path separators"]),
    ({"SWA_EVERY": "0", "FINAL_WEIGHTS": "swa"}, ["SWA_EVERY=0", "positive"]),
    ({"VE_DIM": "0"}, ["VE_DIM=0", "positive"]),
    ({"BIGRAM_DIM": "0"}, ["BIGRAM_DIM=0", "positive"]),
    ({"FINAL_WEIGHTS": "swa", "SWA_EVERY": "50"}, ["FINAL_WEIGHTS=swa takes no snapshot", "SWA_EVERY=50"]),
    ({"ATTENTION": "flash_attn_3"}, ["ATTENTION=flash_attn_3", "cannot be imported"]),
    ({"MATRIX_LR": "0.0.1"}, ["MATRIX_LR"]),
    ({"LN_SCALE": "yes"}, ["LN_SCALE", "0 or 1"]),
    ({"TRAIN_BATCH_TOKENS": "2000"}, ["TRAIN_BATCH_TOKENS=2000", "divisible"]),
    ({"VE_LAYERS": "2,7"}, ["VE_LAYERS", "0..3"]),
    ({"XSA_LAST_N": "9"}, ["XSA_LAST_N=9", "NUM_LAYERS=4"]),
    ({"FINAL_WEIGHTS": "best"}, ["FINAL_WEIGHTS"]),
    ({"VOCAB_SIZE": "512"}, ["VOCAB_SIZE=512", "1024 pieces"]),
    ({"TOKENIZER_PATH": "tok.vocab"}, ["TOKENIZER_PATH=tok.vocab", ".model"]),
    ({"TOKENIZER_PATH": "missing.model"}, ["TOKENIZER_PATH=missing.model", "does not exist"]),
    ({"DATA_PATH": "/nonexistent/data"}, ["DATA_PATH=/nonexistent/data", "fineweb_train_*.bin", "build_sample.py"]),
    ({"EVAL_SEQ_LEN": "1000000"}, ["validation split", "EVAL_SEQ_LEN=1000000"]),
    ({"INT6_CLIP_PERCENTILES": "0.99,1.5"}, ["INT6_CLIP_PERCENTILES"]),
    ({"MAX_WALLCLOCK_SECONDS": "nan"}, ["MAX_WALLCLOCK_SECONDS='nan'", "finite"]),
    ({"EMA_DECAY": "1.5"}, ["EMA_DECAY=1.5"]),
])
def test_config_errors(run_train, tmp_path, env, needles):
    check_refused(run_train(check=False, **env), tmp_path, *needles)


@pytest.fixture
def data_copy(sample_data, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(sample_data["data_path"], dst)
    return dst


def test_corrupt_header_in_a_later_shard(run_train, tmp_path, data_copy):
    shard = sorted(data_copy.glob("fineweb_train_*.bin"))[-1]
    raw = bytearray(shard.read_bytes())
    raw[:4] = np.int32(12345).tobytes()
    shard.write_bytes(bytes(raw))
    check_refused(run_train(check=False, DATA_PATH=data_copy), tmp_path, str(shard), "bad header")


def test_truncated_shard(run_train, tmp_path, data_copy):
    shard = data_copy / "fineweb_val_000000.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    check_refused(run_train(check=False, DATA_PATH=data_copy), tmp_path, str(shard), "truncated")


def test_corrupt_tokenizer(run_train, tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a sentencepiece model")
    proc = run_train(check=False, TOKENIZER_PATH=bad)
    check_refused(proc, tmp_path, f"TOKENIZER_PATH={bad}", "cannot be loaded")


def test_bad_input_keeps_earlier_logs(run_train, tmp_path):
    (tmp_path / "train_seed7.log").write_text("earlier\n")
    proc = run_train(check=False, MLP_ACTIVATION="swish")
    assert proc.returncode == 2
    assert (tmp_path / "train_seed7.log").read_text() == "earlier\n"
    assert not (tmp_path / "train_seed7.log.1").exists()


def test_train_split_without_tokens(run_train, tmp_path, data_copy):
    from shard_io import write_shard

    for shard in data_copy.glob("fineweb_train_*.bin"):
        write_shard(shard, [])
    check_refused(run_train(check=False, DATA_PATH=data_copy), tmp_path, f"DATA_PATH={data_copy}", "hold no tokens")
