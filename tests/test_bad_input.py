"""Bad input: one clear message naming the variable or file, a non-zero exit, nothing written."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch


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
def data_copy(small_data, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(small_data["data_path"], dst)
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


# ----- issue 23: settings that trained silently or failed after files were written ------------------------------

import math  # noqa: E402

import train_gpt as tg  # noqa: E402


@pytest.mark.parametrize("env,message", [
    ({"BETA1": "-0.5"}, "BETA1=-0.5 must be in [0, 1), e.g. BETA1=0.9"),
    ({"BETA2": "1.5"}, "BETA2=1.5 must be in [0, 1), e.g. BETA2=0.95"),
    ({"ADAM_EPS": "-1"}, "ADAM_EPS=-1 must be positive, e.g. ADAM_EPS=1e-08"),
    ({"ADAM_EPS": "0"}, "ADAM_EPS=0 must be positive, e.g. ADAM_EPS=1e-08"),
    ({"ASQU_WD": "-1"}, "ASQU_WD=-1 must be >= 0, e.g. ASQU_WD=0.0"),
    ({"MUON_WD": "-0.1"}, "MUON_WD=-0.1 must be >= 0, e.g. MUON_WD=0.04"),
    ({"ADAM_WD": "-0.1"}, "ADAM_WD=-0.1 must be >= 0, e.g. ADAM_WD=0.04"),
    ({"MATRIX_LR": "-1"}, "MATRIX_LR=-1 must be >= 0, e.g. MATRIX_LR=0.025"),
    ({"SCALAR_LR": "-1"}, "SCALAR_LR=-1 must be >= 0, e.g. SCALAR_LR=0.025"),
    ({"ASQU_LR": "-0.001"}, "ASQU_LR=-0.001 must be >= 0, e.g. ASQU_LR=0.001"),
    ({"TIED_EMBED_LR": "-1"}, "TIED_EMBED_LR=-1 must be >= 0, e.g. TIED_EMBED_LR=0.035"),
    ({"HEAD_LR": "-1"}, "HEAD_LR=-1 must be >= 0, e.g. HEAD_LR=0.008"),
    ({"EMBED_LR": "-1"}, "EMBED_LR=-1 must be >= 0, e.g. EMBED_LR=0.6"),
    ({"MUON_MOMENTUM": "2"}, "MUON_MOMENTUM=2 must be in [0, 1), e.g. MUON_MOMENTUM=0.99"),
    ({"MUON_MOMENTUM_WARMUP_START": "1"}, "MUON_MOMENTUM_WARMUP_START=1 must be in [0, 1), e.g. "
                                          "MUON_MOMENTUM_WARMUP_START=0.92"),
    ({"ITERATIONS": ""}, "ITERATIONS is set but empty; give it a value, e.g. ITERATIONS=20000, or unset it"),
    ({"SEED": "  "}, "SEED is set but empty; give it a value, e.g. SEED=1337, or unset it"),
    ({"EVAL_ONLY": ""}, "EVAL_ONLY is set but empty; give it a value, or unset it"),
    ({"ITERATIONS": "99999999999999999999999"}, "ITERATIONS=99999999999999999999999 is too large to mean anything "
                                                "here (at most 4294967295), e.g. ITERATIONS=20000"),
    ({"RUN_ID": "a\nb"}, "RUN_ID='a\\nb' names a file: no path separators, control characters (newlines, tabs) or "
                         "surrounding spaces, e.g. RUN_ID=exp_run1"),
    ({"RUN_ID": "r" * 201}, "RUN_ID is 201 bytes long; it names files (logs/<RUN_ID>.txt, runs/<RUN_ID>/), whose "
                            "names allow 255 bytes: keep it to 200, e.g. RUN_ID=exp_run1"),
    ({"MLP_KERNEL": "cuda"}, "MLP_KERNEL='cuda' is not one of auto, triton, torch"),
    # stop 25's probes: a crash at the init, a NaN at step 0, value embeddings silently off
    ({"TIED_EMBED_INIT_STD": "-0.005"}, "TIED_EMBED_INIT_STD=-0.005 must be >= 0, e.g. TIED_EMBED_INIT_STD=0.005"),
    ({"ROPE_BASE": "0"}, "ROPE_BASE=0 must be positive, e.g. ROPE_BASE=10000.0"),
    ({"VE_LAYERS": ",,"}, "VE_LAYERS=',,' must be comma-separated layer indices, e.g. VE_LAYERS=9,10, or none"),
    # issue 29: settings that trained a broken model (exit 0) or died at the roundtrip blaming the training
    ({"MUON_WD": "1000"}, "MATRIX_LR x MUON_WD = 25 must be below 1: each step would scale those weights by "
                          "1 - 25 <= 0 (decay past zero); lower MUON_WD or MATRIX_LR"),
    ({"ADAM_WD": "100"}, "TIED_EMBED_LR x ADAM_WD = 3.5 must be below 1: each step would scale those weights by "
                         "1 - 3.5 <= 0 (decay past zero); lower ADAM_WD or TIED_EMBED_LR"),
    ({"ADAM_WD": "2", "TIE_EMBEDDINGS": "0"}, "EMBED_LR x ADAM_WD = 1.2 must be below 1: each step would scale those "
                                              "weights by 1 - 1.2 <= 0 (decay past zero); lower ADAM_WD or EMBED_LR"),
    ({"SCALAR_LR": "1", "ADAM_WD": "1", "TIED_EMBED_LR": "0"}, "SCALAR_LR x ADAM_WD = 1 must be below 1: each step "
                                                               "would scale those weights by 1 - 1 <= 0 (decay past "
                                                               "zero); lower ADAM_WD or SCALAR_LR"),
    ({"ASQU_WD": "1000"}, "ASQU_LR x ASQU_WD = 1 must be below 1: each step would scale those weights by 1 - 1 <= 0 "
                          "(decay past zero); lower ASQU_WD or ASQU_LR"),
    ({"QUANT_SCALE_FLOOR": "2031120"}, "QUANT_SCALE_FLOOR=2031120 must be in [0, 2031120) (int6 scales floor / 31 "
                                       "reach inf in fp16), e.g. QUANT_SCALE_FLOOR=1.0"),
    ({"DIST_TIMEOUT_S": "0"}, "DIST_TIMEOUT_S=0 must be positive, e.g. DIST_TIMEOUT_S=600.0"),
])
def test_settings_refused_with_one_line(env, message):
    with pytest.raises(tg.ConfigError) as info:
        tg.Hyperparameters(env)
    assert str(info.value) == message


def test_bounds_admit_their_edges_and_the_defaults():
    args = tg.Hyperparameters({"BETA1": "0", "MATRIX_LR": "0", "ASQU_WD": "0", "MUON_MOMENTUM": "0.999999",
                               "RUN_ID": "r" * 200, "ITERATIONS": str(2**32 - 1), "MLP_KERNEL": "TRITON"})
    assert args.beta1 == 0 and args.matrix_lr == 0 and args.muon_momentum < 1 and args.mlp_kernel == "triton"
    assert tg.Hyperparameters({}).fingerprint() == tg.Hyperparameters({"BETA2": "0.95"}).fingerprint()
    edges = tg.Hyperparameters({"QUANT_SCALE_FLOOR": "2031119", "ASQU_WD": "999", "MUON_WD": "39.9", "MLP_ACTIVATION":
                                "relu2", "ADAM_WD": "28"})  # relu2 has no beta: ASQU_WD is unused
    scale = tg.quant_scale(torch.zeros(1), 31, edges.quant_scale_floor)
    assert torch.isfinite(scale).all() and not torch.isfinite(tg.quant_scale(torch.zeros(1), 31, 2031120)).all()


@pytest.mark.parametrize("env", [{"BETA2": "1.5"}, {"ADAM_EPS": "-1"}, {"ASQU_WD": "-1"}, {"ITERATIONS": ""},
                                 {"NUM_LAYERS": "100000"}, {"MUON_WD": "1000", "FINAL_WEIGHTS": "raw"}])
def test_refused_before_anything_is_written(run_train, tmp_path, env):
    """These raised torch's ValueError (or an allocator error) after the logs were rotated, leaving empty logs
    and a lock; now one line, exit 2, nothing written or moved."""
    (tmp_path / "train_seed7.log").write_text("earlier\n")
    proc = run_train(check=False, **env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_seed7.log"]
    assert (tmp_path / "train_seed7.log").read_text() == "earlier\n"


def test_parameter_count_equals_the_models():
    for env in ({}, {"MLP_ACTIVATION": "relu2"}, {"TIE_EMBEDDINGS": "0", "VE_LAYERS": "none", "BIGRAM_VOCAB_SIZE": "0"},
                {"NUM_LAYERS": "3", "MODEL_DIM": "96", "NUM_HEADS": "6", "NUM_KV_HEADS": "2", "MLP_MULT": "2.5",
                 "VE_LAYERS": "0,2", "XSA_LAST_N": "1"}):
        args = tg.Hyperparameters(env)
        with torch.device("meta"):
            model = tg.GPT(args)
        assert tg.parameter_count(args) == sum(p.numel() for p in model.parameters()), env
    assert tg.parameter_count(tg.Hyperparameters({"MLP_ACTIVATION": "relu2"})) == 26_993_756  # the record's


def test_a_model_that_cannot_fit_is_refused_with_the_estimate(monkeypatch):
    args = tg.Hyperparameters({"NUM_LAYERS": "100000"})
    with pytest.raises(tg.ConfigError, match=r"^the model cannot fit: 236,315,416,324 parameters \(NUM_LAYERS=100000, "
                                             r"MODEL_DIM=512, MLP_MULT=3.0, VOCAB_SIZE=1024\) .* need at least "
                                             r"[\d,.]+ GiB, this machine \(per process\) has [\d,.]+ GiB"):
        tg.check_fits(args, tg.runtime_from_env(args))
    small = tg.Hyperparameters({"NUM_LAYERS": "2", "MODEL_DIM": "64", "TRAIN_BATCH_TOKENS": "16384", "ROPE_DIMS": "8",
                                "TRAIN_SEQ_LEN": "128", "XSA_LAST_N": "1"})
    tg.check_fits(small, tg.runtime_from_env(small))


def test_logs_or_runs_as_a_file_is_one_line(run_train, tmp_path):
    for name in ("logs", "runs"):
        (tmp_path / name).write_text("a file\n")
        proc = run_train(check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: {name} is a file, not a folder: this script writes logs/<RUN_ID>.txt and runs/<RUN_ID>/; "
            "move or rename that file, or run from another folder")
        assert sorted(p.name for p in tmp_path.iterdir()) == [name] and (tmp_path / name).read_text() == "a file\n"
        (tmp_path / name).unlink()


def test_every_train_shard_is_checked_before_the_clock(run_train, tmp_path, data_copy):
    """A token id >= VOCAB_SIZE in the last shard stops the run before the first step (it used to stop when the
    loader reached the shard), on 2 ranks, with the check's cost in the log."""
    from shard_io import read_shard, write_shard

    shard = sorted(data_copy.glob("fineweb_train_*.bin"))[-1]
    tokens = read_shard(shard).astype(np.int64)
    tokens[5] = 1024
    write_shard(shard, tokens.astype(np.uint16))
    proc = run_train(nproc=2, check=False, DATA_PATH=data_copy, ITERATIONS=200, RUN_ID="shards")
    assert proc.returncode != 0 and 'train_gpt.py", line' not in proc.stderr  # torchrun's own report aside
    assert f"error: {shard}: token id 1024 >= VOCAB_SIZE=1024" in proc.stderr
    log = (tmp_path / "logs/shards.txt").read_text()
    assert not re.search(r"^(warmup_)?step:", log.split("=" * 100)[-1], re.M)  # no step, not even a warm-up one
    assert f"error: {shard}: token id 1024 >= VOCAB_SIZE=1024" in log
    fine = run_train(DATA_PATH=data_copy, ITERATIONS=2, RUN_ID="two_steps", EVAL_STRIDE=0)  # reads shard 0 only
    assert re.search(r"^train_shards_checked:1/4 tokens:\d+ time:\d+ms", fine.stdout, re.M)
    assert math.isfinite(float(re.search(r"final_int6_roundtrip_exact val_loss:(\S+)", fine.stdout).group(1)))


# ----- probes of stop 25: launcher variables, shards that are not files, text-less validation, warm-up reads ---------

@pytest.mark.parametrize("env,message", [
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set without RANK: launch with torchrun (which sets it) or unset it"),
    ({"RANK": "1"}, "RANK is set without WORLD_SIZE: launch with torchrun (which sets it) or unset it"),
    ({"RANK": "0", "WORLD_SIZE": "1"}, "RANK and WORLD_SIZE are set but MASTER_ADDR is unset or MASTER_PORT='' is not "
                                       "a port (1-65535); launch with torchrun (which sets it) or unset it"),
    ({"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "x", "MASTER_PORT": "abc"},
     "RANK and WORLD_SIZE are set but MASTER_ADDR is unset or MASTER_PORT='abc' is not a port (1-65535); launch with "
     "torchrun (which sets it) or unset it"),
    ({"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "x", "MASTER_PORT": "99999"},
     "RANK and WORLD_SIZE are set but MASTER_ADDR is unset or MASTER_PORT='99999' is not a port (1-65535); launch with "
     "torchrun (which sets it) or unset it"),
    ({"RANK": "0", "WORLD_SIZE": "0", "MASTER_ADDR": "x", "MASTER_PORT": "1"},
     "RANK=0 must be below WORLD_SIZE=0; launch with torchrun (which sets it) or unset it"),
    ({"LOCAL_WORLD_SIZE": "abc"},
     "LOCAL_WORLD_SIZE='abc' is not a whole number >= 0; launch with torchrun (which sets it) or unset it"),
])
def test_launcher_variables_set_by_hand_are_one_line(env, message):
    """WORLD_SIZE=2 without torchrun ran one process that scored half the validation set as if it were all of it."""
    with pytest.raises(tg.ConfigError) as info:
        tg.launcher_values(env)
    assert str(info.value) == message
    assert tg.launcher_values({}) == {}
    torchrun = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h",
                "MASTER_PORT": "29500"}
    assert tg.launcher_values(torchrun) == {"RANK": 1, "WORLD_SIZE": 2, "LOCAL_RANK": 1, "LOCAL_WORLD_SIZE": 2}


def test_world_size_without_torchrun_writes_nothing(run_train, tmp_path):
    check_refused(run_train(check=False, WORLD_SIZE=2), tmp_path, "WORLD_SIZE is set without RANK")


def test_ve_layers_have_one_spelling_so_eval_only_matches_the_same_model():
    from conftest import TINY_ENV

    spaced = tg.Hyperparameters({**TINY_ENV, "VE_LAYERS": " 2 , 3 "})
    assert spaced.ve_layers == "2,3" and spaced.ve_layer_list == [2, 3]
    assert spaced.model_settings() == tg.Hyperparameters(TINY_ENV).model_settings()
    assert tg.Hyperparameters({"VE_LAYERS": "None"}).ve_layer_list == []


@pytest.mark.parametrize("kind", ["folder", "broken link"])
def test_a_shard_name_that_is_not_a_file_is_one_line(run_train, tmp_path, data_copy, kind):
    odd = data_copy / "fineweb_train_000009.bin"
    if kind == "folder":
        odd.mkdir()
    else:
        odd.symlink_to(tmp_path / "gone.bin")
    check_refused(run_train(check=False, DATA_PATH=data_copy), tmp_path, f"{odd}: not a readable file")


def test_validation_tokens_without_text_are_one_line(run_train, tmp_path, data_copy):
    """Only BOS tokens: 0 bytes to divide by (a ZeroDivisionError at the first validation before)."""
    from shard_io import write_shard

    write_shard(data_copy / "fineweb_val_000000.bin", np.ones(1000, dtype=np.uint16))
    check_refused(run_train(check=False, DATA_PATH=data_copy), tmp_path, f"DATA_PATH={data_copy}", "spell no text")


def test_a_tokenizer_path_that_is_a_folder_says_so(run_train, tmp_path):
    folder = tmp_path / "tok.model"
    folder.mkdir()
    check_refused(run_train(check=False, TOKENIZER_PATH=folder), tmp_path, f"TOKENIZER_PATH={folder} is a folder")
    folder.rmdir()


def test_the_shards_the_warm_up_reads_are_checked_too(run_train, tmp_path, data_copy):
    """The warm-up's steps read on from the first shard: a bad id there was an IndexError traceback."""
    from shard_io import read_shard, write_shard

    shard = sorted(data_copy.glob("fineweb_train_*.bin"))[1]
    tokens = read_shard(shard).astype(np.int64)
    tokens[5] = 1024
    write_shard(shard, tokens.astype(np.uint16))
    proc = run_train(check=False, DATA_PATH=data_copy, ITERATIONS=1, WARMUP_STEPS=300, RUN_ID="warm")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {shard}: token id 1024 >= VOCAB_SIZE=1024; the shard was made with another tokenizer: set "
        "VOCAB_SIZE and TOKENIZER_PATH to match it, or rebuild the shard")
    assert "warmup_step:" not in (tmp_path / "logs/warm.txt").read_text().split("=" * 100)[-1]  # after the header


# On rank 0 only, the first atomic replace fails as on a full disk: rank 0 stops in export with its one line while
# rank 1 waits for the artifact's bytes.
RANK0_DISK_FULL = '''import os, runpy, sys
if os.environ.get("RANK") == "0":
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    os.replace = disk_full
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


def test_when_rank_0_stops_the_other_rank_says_one_line(run_train, tmp_path):
    wrapper = tmp_path / "rank0_disk_full.py"
    wrapper.write_text(RANK0_DISK_FULL)
    proc = run_train(nproc=2, check=False, script=[str(wrapper), str(tg.__file__)], RUN_ID="full", EVAL_STRIDE=0,
                     ITERATIONS=2)
    assert proc.returncode != 0 and 'train_gpt.py", line' not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert "error: cannot write runs/full/final_model.pt: No space left on device; free disk space or use a " \
           "writable folder" in lines
    assert any(line.startswith("error (rank 1): ") for line in lines), proc.stderr[-3000:]


# ----- issue 29: the last tracebacks and weak lines ------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "no.such.host.invalid"])
def test_a_rendezvous_that_cannot_complete_gives_up_in_one_line(run_train, tmp_path, host):
    """RANK=0 WORLD_SIZE=2 by hand with no second process, or a host that does not resolve, waited silently for 30
    minutes (torch's C++ layer may still print its own warnings first; the last line is ours)."""
    port = free_port()
    proc = run_train(check=False, RANK=0, WORLD_SIZE=2, MASTER_ADDR=host, MASTER_PORT=port, DIST_TIMEOUT_S=2,
                     timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: the 2 processes did not meet at MASTER_ADDR:MASTER_PORT={host}:{port} within DIST_TIMEOUT_S=2 (")


def test_a_port_in_use_is_one_line(run_train, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_train(check=False, RANK=0, WORLD_SIZE=1, MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the 1 processes did not meet at") and "address already in use" in last


def test_a_bad_setting_under_torchrun_is_printed_once(run_train, tmp_path):
    proc = run_train(nproc=2, check=False, MUON_WD=1000)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert proc.returncode != 0 and errors == [
        "error: MATRIX_LR x MUON_WD = 25 must be below 1: each step would scale those weights by 1 - 25 <= 0 (decay "
        "past zero); lower MUON_WD or MATRIX_LR"], proc.stderr[-3000:]


BROKEN_TRITON = "raise RuntimeError('this triton build does not match the driver')\n"


def test_a_broken_triton_install_does_not_stop_the_torch_kernel(run_train, tmp_path):
    """A triton whose import raised something other than ImportError killed the trainer at import."""
    (tmp_path / "fake" / "triton").mkdir(parents=True)
    (tmp_path / "fake" / "triton" / "__init__.py").write_text(BROKEN_TRITON)
    proc = run_train(check=False, PYTHONPATH=tmp_path / "fake", MLP_KERNEL="torch", ITERATIONS=2, EVAL_STRIDE=0,
                     RUN_ID="torchkernel")
    assert proc.returncode == 0, proc.stderr[-2000:]
    asked = run_train(check=False, PYTHONPATH=tmp_path / "fake", MLP_KERNEL="triton", TRITON_INTERPRET=1)
    assert asked.returncode == 2 and "Traceback" not in asked.stderr
    assert asked.stderr.strip().splitlines()[-1].startswith("error: MLP_KERNEL=triton but the triton package cannot be "
                                                           "imported")


def test_sigint_during_the_imports_is_one_line(run_train, tmp_path):
    """The signal arrives while the imports run (a zstandard stand-in sends it): a KeyboardInterrupt traceback
    before."""
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "zstandard.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n")
    proc = run_train(check=False, PYTHONPATH=tmp_path / "fake")
    assert proc.returncode == 1 and proc.stderr == "interrupted: SIGINT (during start-up)\n", proc.stderr[-2000:]
    assert not (tmp_path / "logs").exists()


def test_default_run_ids_of_runs_started_together_differ():
    import subprocess
    import sys

    from conftest import REPO

    code = "import train_gpt; print(train_gpt.Hyperparameters({'EVAL_ONLY': 'x.ptz'}).run_id)"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    ids = [p.communicate()[0].strip() for p in procs]
    assert ids[0] != ids[1] and all(re.fullmatch(r"asqu_eval_only_\d{8}-\d{6}_\d+", i) for i in ids), ids


def test_keeping_a_file_never_overwrites_one_another_run_kept_at_the_same_instant(tmp_path, monkeypatch):
    """Another run keeps its train.log as train.log.1 between this run's look at that name and its move."""
    import os

    (tmp_path / "train.log").write_text("this run's earlier log\n")
    other = tmp_path / "train.log.1"
    real_exists, real_open = tg.Path.exists, os.open

    def other_run_keeps_its_file():
        if not other.is_symlink() and not real_exists(other):
            other.write_text("the other run's earlier log\n")

    def exists(path, *args, **kwargs):
        if path == other:
            answer = real_exists(path)
            other_run_keeps_its_file()
            return answer
        return real_exists(path, *args, **kwargs)

    def open_(path, *args, **kwargs):
        if str(path) == str(other):
            other_run_keeps_its_file()
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(tg.Path, "exists", exists)
    monkeypatch.setattr(tg.os, "open", open_)
    kept = tg.keep_existing(tmp_path / "train.log")
    assert other.read_text() == "the other run's earlier log\n"
    assert kept == tmp_path / "train.log.2" and kept.read_text() == "this run's earlier log\n"
    assert not (tmp_path / "train.log").exists()
