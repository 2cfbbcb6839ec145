"""Settings: --help from the Hyperparameters block, the config line and fingerprint, typo warnings, and
bad values refused with one message that names the variable and a valid example (issues 11, 13, 14, 15)."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

import train_gpt as tg
from conftest import REPO, TINY_ENV


def hp(**env) -> tg.Hyperparameters:
    return tg.Hyperparameters({k: str(v) for k, v in env.items()})


def test_help_lists_every_setting_and_writes_nothing(tmp_path):
    for flag in ("--help", "-h"):
        proc = subprocess.run([sys.executable, str(REPO / "train_gpt.py"), flag], cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "DATA_PATH": "/nonexistent"})
        assert proc.returncode == 0, proc.stderr
        listed = {ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("  ") and ln.split()[0].isupper()}
        assert listed == {name for name, _, _ in tg.Hyperparameters.variables()}
        doc_columns = set()
        for name, default, doc in tg.Hyperparameters.variables():
            line = next(ln for ln in proc.stdout.splitlines() if ln.split()[:1] == [name])
            assert line.endswith(" " + doc), name
            doc_columns.add(len(line) - len(doc))
        assert len(doc_columns) == 1, f"the meanings start in columns {sorted(doc_columns)}"  # one aligned column
        assert "ITERATIONS" in proc.stdout and "20000" in proc.stdout
    assert not list(tmp_path.iterdir())  # no logs, no runs/
    proc = subprocess.run([sys.executable, str(REPO / "train_gpt.py"), "--itrations=5"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown argument --itrations=5")
    assert "--help" in proc.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("version, refused", [("2.4.1+cu121", True), ("2.5.0a0+git1234", False),
                                               ("2.13.0+cpu", False)])
def test_a_pytorch_older_than_2_5_is_one_line(tmp_path, version, refused):
    """Older versions lack SDPA's enable_gqa (and torch.library's custom ops before 2.4): one line, not a traceback."""
    code = (f"import runpy, sys, torch; torch.__version__ = {version!r}; sys.argv = ['train_gpt.py', '--help']; "
            f"runpy.run_path({str(REPO / 'train_gpt.py')!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    if refused:
        assert (proc.returncode, proc.stdout) == (1, "")
        assert proc.stderr == f"error: train_gpt.py needs PyTorch >= 2.5; this Python has {version}\n"
    else:
        assert proc.returncode == 0 and "Settings (environment variables)" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_every_setting_is_an_attribute_with_its_default():
    args = hp()
    for name, default, _ in tg.Hyperparameters.variables():
        if default is not None and name not in ("VE_LAYERS",):
            assert getattr(args, name.lower()) == default, name
    assert args.config_line() == "config:"


def test_config_line_lists_changes_in_order_and_reproduces_the_settings():
    env = {"NUM_LAYERS": "4", "SEED": "42", "DATA_PATH": "/data/with space", "MATRIX_LR": "0.03",
           "MODEL_DIM": "512", "MLP_MULT": "3"}  # the last two equal their defaults: not listed
    args = hp(**env)
    line = args.config_line()
    tokens = shlex.split(line.removeprefix("config:"))
    assert [t.split("=", 1)[0] for t in tokens] == ["DATA_PATH", "SEED", "NUM_LAYERS", "MATRIX_LR"]
    again = tg.Hyperparameters(dict(t.split("=", 1) for t in tokens))
    assert again.config_line() == line and again.fingerprint() == args.fingerprint()
    assert again.data_path == "/data/with space"


def test_fingerprint_ignores_seed_paths_and_logging_but_not_results():
    base = hp(NUM_LAYERS=4).fingerprint()
    assert len(base) == 12 and int(base, 16) >= 0
    same = hp(NUM_LAYERS=4, SEED=1, RUN_ID="x", DATA_PATH="/elsewhere", TRAIN_LOG_EVERY=1, VAL_LOSS_EVERY=5,
              COMPILE=1, ATTENTION="sdpa").fingerprint()
    assert same == base
    assert hp(NUM_LAYERS=5).fingerprint() != base
    assert hp(NUM_LAYERS=4, MLP_ACTIVATION="relu2").fingerprint() != base
    assert hp(NUM_LAYERS=4, ASQU_LR=0.002).fingerprint() != base
    # the alias and the resolved VE_LAYERS default give the same effective configuration
    assert hp(MLP_ACTIVATION="leaky_relu2").fingerprint() == hp(MLP_ACTIVATION="leaky2").fingerprint()
    assert hp(NUM_LAYERS=4, VE_LAYERS="2,3").fingerprint() == base


def test_ve_layers_default_to_the_last_two():
    assert hp().ve_layer_list == [9, 10]  # the record
    assert hp(NUM_LAYERS=4).ve_layer_list == [2, 3]
    assert hp(NUM_LAYERS=1, XSA_LAST_N=0).ve_layer_list == [0]
    assert hp(NUM_LAYERS=4, VE_LAYERS="none").ve_layer_list == []


def test_close_names_warn_and_foreign_names_do_not():
    env = {"NUM_LAYER": "4", "MLP_ACTIVATON": "relu2", "EMA_DECAYS": "0.9", "PATH": "/bin", "RANK": "0",
           "LOCAL_RANK": "0", "WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "1", "HOME": "/root",
           "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x", "NUM_LAYERS": "4", "SEED": "1"}
    warnings = tg.close_variable_warnings(env)
    assert len(warnings) == 3
    for typo, known in (("NUM_LAYER", "NUM_LAYERS"), ("MLP_ACTIVATON", "MLP_ACTIVATION"), ("EMA_DECAYS", "EMA_DECAY")):
        assert any(w.startswith(f"WARNING: {typo} ") and w.endswith(f"did you mean {known}?") for w in warnings)
    assert tg.close_variable_warnings(dict(os.environ)) == [] or all("did you mean" in w for w in
                                                                      tg.close_variable_warnings(dict(os.environ)))


@pytest.mark.parametrize("env,needles", [
    ({"SWA_EVERY": "0", "FINAL_WEIGHTS": "swa"}, ["SWA_EVERY=0", "positive", "SWA_EVERY=50"]),
    ({"VE_DIM": "0"}, ["VE_DIM=0", "positive", "VE_DIM=128"]),
    ({"BIGRAM_DIM": "0"}, ["BIGRAM_DIM=0", "positive"]),
    ({"RUN_ID": "exp/run1"}, ["RUN_ID='exp/run1'", "path separators", "RUN_ID=exp_run1"]),
    ({"RUN_ID": ".."}, ["RUN_ID='..'"]),
    ({"SEED": "-1"}, ["SEED=-1", "0..4294967295"]),
    ({"SEED": str(2**32)}, ["SEED=4294967296"]),
    ({"COMPILE": "yes"}, ["COMPILE='yes'", "0 or 1", "COMPILE=1"]),
    ({"MLP_MULT": "0.001"}, ["MLP_MULT=0.001", "hidden width of 0", "MLP_MULT=3.0"]),
    ({"ITERATIONS": "1e3"}, ["ITERATIONS='1e3'", "whole number", "ITERATIONS=20000"]),
    ({"ATTENTION": "flash"}, ["ATTENTION='flash'", "flash_attn_3"]),
    ({"FINAL_WEIGHTS": "swa", "MAX_WALLCLOCK_SECONDS": "0", "ITERATIONS": "100", "WARMDOWN_ITERS": "10",
      "SWA_EVERY": "30"}, ["FINAL_WEIGHTS=swa", "SWA_EVERY=30", "no snapshot"]),
])
def test_bad_values_name_the_variable_and_a_valid_example(env, needles):
    with pytest.raises(tg.ConfigError) as err:
        tg.Hyperparameters(env)
    for n in needles:
        assert n in str(err.value), (n, str(err.value))


def test_swa_is_accepted_when_a_snapshot_is_certain():
    args = hp(FINAL_WEIGHTS="swa", MAX_WALLCLOCK_SECONDS=0, ITERATIONS=100, WARMDOWN_ITERS=50, SWA_EVERY=5)
    # scale < 0.2 from step 91 on: snapshots after steps 95 and 100
    assert args.swa_snapshots() == 2


def training_warnings(compile_: bool, world_size: int = 1, **env) -> list[str]:
    lines = []
    rt = tg.Runtime(0, world_size, 0, world_size > 1, tg.torch.device("cpu"), False, compile_)
    tg.log_training_warnings(hp(**env), rt, lines.append)
    return [line for line in lines if "WARMUP_STEPS" in line]


def test_too_few_warmup_steps_for_the_graph_variants_warn_when_compiled():
    """QAT off and on, times the beta-gradient phases of a step: each variant needs a warm-up step to compile."""
    assert training_warnings(True, WARMUP_STEPS=1) == [
        "WARNING: WARMUP_STEPS=1 < 2: some graph variants will compile inside the timed loop (lost training time); "
        "set WARMUP_STEPS=2 or more"]
    assert training_warnings(True, WARMUP_STEPS=2) == []
    assert training_warnings(True, WARMUP_STEPS=3, ASQU_BETA_GRAD_EVERY=16)[0].startswith(
        "WARNING: WARMUP_STEPS=3 < 4:")  # 8 micro-steps a step: 2 steps per beta phase
    assert training_warnings(True, WARMUP_STEPS=1, LATE_QAT_THRESHOLD=0) == []
    assert training_warnings(False, WARMUP_STEPS=0) == []  # nothing compiles


def test_tiny_env_is_valid_and_describes_itself():
    args = tg.Hyperparameters(TINY_ENV)
    assert args.ve_layer_list == [2, 3] and "NUM_LAYERS=4" in args.config_line()


def test_settings_doc_is_the_help_and_documents_each_setting_once():
    """docs/settings.txt is `python3 train_gpt.py --help > docs/settings.txt`; the README carries no settings table."""
    doc = (REPO / "docs" / "settings.txt").read_text(encoding="utf-8")
    shown = subprocess.run([sys.executable, str(REPO / "train_gpt.py"), "--help"], capture_output=True, text=True,
                           check=True, cwd=REPO).stdout
    assert doc == shown, "docs/settings.txt is out of date: python3 train_gpt.py --help > docs/settings.txt"
    rows = [line.split()[0] for line in doc.split("Settings (environment variables)", 1)[1].splitlines()[1:]
            if line.startswith("  ") and line.split()[0].isupper()]
    names = [name for name, _, _ in tg.Hyperparameters.variables()]
    assert sorted(rows) == sorted(names) and len(set(rows)) == len(rows)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "| `TOKENIZER_PATH` |" not in readme and "docs/settings.txt" in readme
