"""Tests of tools/sweep.py: plan, environment, skip / resume / crash handling, real tiny runs."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import runlog  # noqa: E402
import sweep  # noqa: E402

# A stand-in for train_gpt.py: writes the record's log files into its working directory.
# FAKE_CRASH=<run_id> makes that run crash (exit 1) half way; FAKE_CRASH_MODE=silent makes
# it stop early but exit 0. Every call is appended to $FAKE_CALLS.
FAKE_TRAIN = r'''
import json, os, sys
sys.path.insert(0, {fixtures!r})
from synth_log import make_log, sliding_pair

run_id, seed, act = os.environ["RUN_ID"], int(os.environ["SEED"]), os.environ["MLP_ACTIVATION"]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(run_id + "\n")
keys = ["MLP_ACTIVATION", "SEED", "RUN_ID", "ITERATIONS", "MAX_WALLCLOCK_SECONDS", "DATA_PATH",
        "TOKENIZER_PATH", "VAL_LOSS_EVERY"]
with open("env.json", "w") as f:
    json.dump({{**{{k: os.environ.get(k) for k in keys}}, "cwd": os.getcwd()}}, f)
crash = os.environ.get("FAKE_CRASH") == run_id
nosliding = crash and os.environ.get("FAKE_CRASH_MODE") == "nosliding"  # killed during the sliding eval
if crash and os.environ.get("FAKE_CRASH_MODE") == "early":
    print("error: DATA_PATH has no fineweb_train_*.bin shards", file=sys.stderr)
    sys.exit(2)
steps = int(os.environ.get("ITERATIONS", "40"))
loss = 1.8960 - (0.006 if act == "asqu" else 0.0) + (seed % 7) * 1e-4
# the config line train_gpt.py writes: the variables set away from their defaults
config = {{k: os.environ[k] for k in ("DATA_PATH", "TOKENIZER_PATH", "RUN_ID", "ITERATIONS", "MAX_WALLCLOCK_SECONDS",
                                     "VAL_LOSS_EVERY", "EVAL_STRIDE", "NUM_LAYERS") if k in os.environ}}
nan = float("nan")
text = make_log(seed=seed, activation=act, steps=steps, iterations=steps, val_every=20, train_every=10,
                stopped_early=False, sliding=None if nosliding else sliding_pair(loss),
                crash_at_step=steps // 2 if crash and not nosliding else None, config=config, run_id=run_id,
                post_ema=(nan, nan) if os.environ.get("FAKE_NAN") == run_id else (1.9222, 1.1385))
os.makedirs("logs", exist_ok=True)
for name in (f"logs/{{run_id}}.txt", f"train_seed{{seed}}.log"):
    with open(name, "a") as f:
        f.write(text)
print(f"fake training of {{run_id}} done", flush=True)
if crash and os.environ.get("FAKE_CRASH_MODE") not in ("silent", "nosliding"):
    print("Traceback (most recent call last):\nRuntimeError: boom", file=sys.stderr)
    sys.exit(1)
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "fake_train_gpt.py"
    script.write_text(FAKE_TRAIN.format(fixtures=str(FIXTURES)))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.delenv("FAKE_CRASH", raising=False)
    monkeypatch.delenv("FAKE_NAN", raising=False)
    monkeypatch.delenv("DATA_PATH", raising=False)
    monkeypatch.delenv("TOKENIZER_PATH", raising=False)
    return script, calls, tmp_path / "sweep"


def sweep_args(script: Path, out: Path, *extra: str) -> list[str]:
    return ["--activations", "relu2,asqu", "--seeds", "1337,42", "--out", str(out), "--train-script",
            str(script), "--fixed-steps", "40", "--env", "VAL_LOSS_EVERY=0", *extra]


def calls_of(calls: Path) -> list[str]:
    return calls.read_text().split() if calls.exists() else []


def test_full_sweep_then_resume_skips_everything(fake, capsys):
    script, calls, out = fake
    assert sweep.main(sweep_args(script, out)) == 0
    text = capsys.readouterr().out
    order = ["relu2_seed1337", "asqu_seed1337", "relu2_seed42", "asqu_seed42"]
    assert calls_of(calls) == order  # seed-major, one at a time
    for k, name in enumerate(order, start=1):
        assert f"[{k}/4] {name}: running (sweep elapsed 0:00:" in text
        assert f"[{k}/4] {name}: done in " in text
        run_dir = out / name
        assert runlog.parse_log(run_dir / "logs" / f"{name}.txt").finished
        env = json.loads((run_dir / "env.json").read_text())
        act, seed = name.split("_seed")
        assert env == {
            "MLP_ACTIVATION": act, "SEED": seed, "RUN_ID": name, "ITERATIONS": "40",
            "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0",
            "DATA_PATH": str(script.parent / "data" / "datasets" / "fineweb10B_sp1024"),
            "TOKENIZER_PATH": str(script.parent / "data" / "tokenizers" / "fineweb_1024_bpe.model"),
            "cwd": str(run_dir),
        }
        assert "fake training" in (run_dir / "console.out").read_text()
    # the summary, the comparison and the plots
    assert "relu2 mean" in text and "asqu mean" in text
    assert "--- asqu against relu2 ---" in text and "Record criterion" in text
    summary = json.loads((out / "summary.json").read_text())
    assert sorted((r["mlp_activation"], r["seed"]) for r in summary) == [
        ("asqu", 42), ("asqu", 1337), ("relu2", 42), ("relu2", 1337)]
    assert all(r["steps"] == 40 for r in summary)
    pngs = sorted((out / "plots").glob("*.png"))  # (the file names are plots.py's business)
    assert len(pngs) >= 3 and all(png.stat().st_size > 1000 for png in pngs)
    settings = json.loads((out / "sweep.json").read_text())
    assert settings["env"]["ITERATIONS"] == "40" and settings["nproc"] == 1

    # resume: every run is finished, nothing runs again
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 0
    text = capsys.readouterr().out
    assert calls_of(calls) == order
    assert text.count("already finished") == 4


def test_crash_stops_the_sweep_and_resume_reruns_only_that_run(fake, capsys, monkeypatch):
    script, calls, out = fake
    monkeypatch.setenv("FAKE_CRASH", "asqu_seed1337")
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 1
    captured = capsys.readouterr()
    log = out / "asqu_seed1337" / "logs" / "asqu_seed1337.txt"
    assert "run 2/4 asqu_seed1337 failed (exit status 1)" in captured.err
    assert f"its log: {log}" in captured.err
    assert "RuntimeError: boom" in captured.err  # the console tail
    assert calls_of(calls) == ["relu2_seed1337", "asqu_seed1337"]  # stopped at the failure
    crashed_text = log.read_text()
    assert not runlog.parse_text(crashed_text).finished

    monkeypatch.delenv("FAKE_CRASH")
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 0
    text = capsys.readouterr().out
    assert calls_of(calls) == ["relu2_seed1337", "asqu_seed1337", "asqu_seed1337", "relu2_seed42", "asqu_seed42"]
    assert "[1/4] relu2_seed1337: already finished" in text
    kept = out / "asqu_seed1337" / "crashed-1"
    assert f"earlier unfinished attempt kept in {kept}" in text
    # the old log is kept as it was; the new one is a fresh, finished log
    assert (kept / "logs" / "asqu_seed1337.txt").read_text() == crashed_text
    assert (kept / "train_seed1337.log").exists() and (kept / "console.out").exists()
    assert runlog.parse_log(log).finished and runlog.parse_log(log).header_blocks == 0
    # folders of crashed attempts are not counted by the summary
    assert len(runlog.collect_runs([out])) == 4


def test_run_that_exits_zero_without_final_lines_is_a_failure(fake, capsys, monkeypatch):
    script, calls, out = fake
    monkeypatch.setenv("FAKE_CRASH", "relu2_seed1337")
    monkeypatch.setenv("FAKE_CRASH_MODE", "silent")
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 1
    err = capsys.readouterr().err
    assert ("relu2_seed1337 failed (it ended without Total submission size, final_int6_roundtrip_exact, "
            "final_int6_sliding_window_exact)") in err


def test_run_without_the_sliding_line_is_not_finished(fake, capsys, monkeypatch):
    # A run killed during the sliding-window eval has final_int6_roundtrip_exact but not the
    # sliding line: it is a failure, and a resume runs it again instead of skipping it.
    script, calls, out = fake
    monkeypatch.setenv("FAKE_CRASH", "relu2_seed1337")
    monkeypatch.setenv("FAKE_CRASH_MODE", "nosliding")
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 1
    err = capsys.readouterr().err
    assert "relu2_seed1337 failed (it ended without final_int6_sliding_window_exact)" in err
    monkeypatch.delenv("FAKE_CRASH")
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 0
    text = capsys.readouterr().out
    assert "already finished" not in text
    assert calls_of(calls) == ["relu2_seed1337", "relu2_seed1337", "asqu_seed1337", "relu2_seed42", "asqu_seed42"]


def test_eval_stride_zero_needs_only_the_roundtrip_line(fake, capsys, monkeypatch):
    script, calls, out = fake
    monkeypatch.setenv("FAKE_CRASH", "relu2_seed1337")
    monkeypatch.setenv("FAKE_CRASH_MODE", "nosliding")
    args = sweep_args(script, out, "--no-plots", "--env", "EVAL_STRIDE=0")
    assert sweep.main(args) == 0
    assert sweep.main(args) == 0
    assert capsys.readouterr().out.count("already finished") == 4
    assert calls_of(calls) == ["relu2_seed1337", "asqu_seed1337", "relu2_seed42", "asqu_seed42"]


def test_run_that_fails_before_writing_a_log(fake, capsys, monkeypatch):
    script, calls, out = fake
    monkeypatch.setenv("FAKE_CRASH", "relu2_seed1337")
    monkeypatch.setenv("FAKE_CRASH_MODE", "early")
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 1
    err = capsys.readouterr().err
    expected = out / "relu2_seed1337" / "logs" / "relu2_seed1337.txt"
    assert "failed (exit status 2)" in err and f"it wrote no log (expected {expected})" in err
    assert "DATA_PATH has no fineweb_train_*.bin shards" in err


def test_changed_settings_are_refused_unless_forced(fake, capsys):
    script, calls, out = fake
    assert sweep.main(sweep_args(script, out, "--no-plots", "--env", "NUM_LAYERS=6")) == 0
    capsys.readouterr()
    assert sweep.main(sweep_args(script, out, "--no-plots", "--env", "NUM_LAYERS=7")) == 2
    err = capsys.readouterr().err
    assert "other shared settings (NUM_LAYERS: '6' -> '7')" in err
    assert sweep.main(sweep_args(script, out, "--no-plots", "--env", "NUM_LAYERS=7", "--force")) == 0
    assert len(calls_of(calls)) == 4  # forced, but every run was already finished


def test_dry_run_runs_nothing(fake, capsys):
    script, calls, out = fake
    assert sweep.main(sweep_args(script, out, "--dry-run")) == 0
    text = capsys.readouterr().out
    assert "[4/4] asqu_seed42: would run" in text and "MLP_ACTIVATION=asqu SEED=42 RUN_ID=asqu_seed42" in text
    assert not out.exists() and calls_of(calls) == []


def test_changed_settings_fail_the_dry_run_as_they_fail_the_run(fake, capsys):
    script, calls, out = fake
    assert sweep.main(sweep_args(script, out, "--no-plots", "--env", "NUM_LAYERS=6")) == 0
    capsys.readouterr()
    for extra in ((), ("--dry-run",)):
        assert sweep.main(sweep_args(script, out, "--no-plots", "--env", "NUM_LAYERS=7", *extra)) == 2
        captured = capsys.readouterr()
        assert "other shared settings (NUM_LAYERS: '6' -> '7')" in captured.err and captured.err.count("\n") == 1
        assert "would run" not in captured.out
    assert sweep.main(sweep_args(script, out, "--no-plots", "--env", "NUM_LAYERS=7", "--dry-run", "--force")) == 0
    assert json.loads((out / "sweep.json").read_text())["env"]["NUM_LAYERS"] == "6"  # a dry run writes nothing


@pytest.mark.parametrize("where", ["out", "parent", "run folder"])
@pytest.mark.parametrize("dry_run", [False, True])
def test_out_that_is_a_file_is_one_clear_error(fake, capsys, where, dry_run):
    script, calls, out = fake
    target = {"out": out, "parent": out, "run folder": out / "asqu_seed42"}[where]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("not a folder\n")
    given = out / "sub" if where == "parent" else out
    argv = sweep_args(script, given, "--no-plots", *(["--dry-run"] if dry_run else []))
    assert sweep.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"sweep: error: --out {given}: {target} is a file, not a folder; "
                   "give --out a new or existing folder\n")
    assert target.read_text() == "not a folder\n" and calls_of(calls) == []


def test_unwritable_out_is_one_clear_error(fake, capsys, monkeypatch):
    script, calls, out = fake

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 2
    assert capsys.readouterr().err == (f"sweep: error: --out {out}: cannot write {out / 'sweep.json'} (No space left "
                                       "on device); give --out a writable folder\n")
    assert calls_of(calls) == []


def test_unreadable_sweep_record_is_one_clear_error(fake, capsys):
    script, calls, out = fake
    (out / "sweep.json").mkdir(parents=True)  # a folder where the settings file should be
    assert sweep.main(sweep_args(script, out, "--dry-run")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sweep: error: {out / 'sweep.json'} is unreadable (") and err.count("\n") == 1
    assert "move it away to start afresh" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--env", "SEED=5"], "--env SEED=... is set per run"),
        (["--env", "NOEQUALS"], "--env takes KEY=VALUE"),
        (["--seeds", "1,x"], "--seeds takes comma-separated integers"),
        (["--seeds", "1,1"], "lists a value twice"),
        (["--train-script", "/nonexistent/train_gpt.py"], "training script not found"),
    ],
)
def test_bad_arguments(fake, capsys, extra, message):
    script, calls, out = fake
    assert sweep.main(sweep_args(script, out) + extra) == 2
    assert message in capsys.readouterr().err
    assert calls_of(calls) == []


@pytest.mark.parametrize(
    "extra, messages",
    [
        (["--env", "NUM_LAYER=4"], ["--env NUM_LAYER: not a variable of train_gpt.py (did you mean NUM_LAYERS?)"]),
        (["--env", "FOO_BAR=1"], ["--env FOO_BAR: not a variable of train_gpt.py (python3 train_gpt.py --help"]),
        (["--env", "NUM_LAYERS=four"], ["NUM_LAYERS='four' is not a whole number"]),
        (["--activations", "relu2,gelu"], ["MLP_ACTIVATION='gelu' is not one of relu2, leaky2, asqu"]),
        (["--env", "NUM_LAYER=4", "--env", "EVAL_STRIDE=-1"],  # every problem at once
         ["did you mean NUM_LAYERS?", "EVAL_STRIDE=-1 must be >= 0"]),
    ],
)
def test_settings_are_checked_with_train_gpt_before_the_first_run(fake, capsys, extra, messages):
    script, calls, out = fake
    argv = sweep_args(script, out, "--no-plots")
    if extra[0] == "--activations":
        argv[argv.index("--activations") + 1] = extra[1]
        extra = []
    assert sweep.main(argv + extra) == 2
    err = capsys.readouterr().err
    assert "nothing was run; train_gpt.py would refuse these settings" in err
    for message in messages:
        assert message in err
    assert calls_of(calls) == [] and not out.exists()
    if extra:
        assert sweep.main(sweep_args(script, out, "--dry-run", *extra)) == 2  # a dry run checks too


def test_runtime_variables_and_the_leaky_alias_pass_the_check(fake, capsys):
    script, calls, out = fake
    argv = sweep_args(script, out, "--no-plots", "--env", "CUDA_VISIBLE_DEVICES=", "--env", "NUM_LAYERS=4",
                      "--dry-run")
    argv[argv.index("--activations") + 1] = "relu2,leaky_relu2"
    assert sweep.main(argv) == 0, capsys.readouterr().err


def test_summary_json_is_strict(fake, capsys, monkeypatch):
    script, calls, out = fake
    monkeypatch.setenv("FAKE_NAN", "asqu_seed42")  # a diverged run: post-EMA nan
    assert sweep.main(sweep_args(script, out, "--no-plots")) == 0
    text = (out / "summary.json").read_text()
    assert "NaN" not in text
    rows = json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    row = next(r for r in rows if r["name"] == "asqu_seed42")
    assert row["post_ema_val_bpb"] is None and row["quant_gap_bpb"] is None and row["finished"] is True


def test_launch_commands(tmp_path, monkeypatch):
    script = tmp_path / "train_gpt.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8", str(script)]
    assert sweep.launch_command(script, 8) == torchrun
    monkeypatch.setattr(sweep, "gpu_count", lambda: 0)
    assert sweep.launch_command(script, 1) == [sys.executable, str(script)]
    monkeypatch.setattr(sweep, "gpu_count", lambda: 1)
    assert sweep.launch_command(script, 1)[-2:] == ["--nproc_per_node=1", str(script)]


def test_relative_data_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATA_PATH", raising=False)
    monkeypatch.setenv("TOKENIZER_PATH", "tok/sp.model")
    args = sweep.build_parser().parse_args(["--activations", "relu2", "--seeds", "1", "--out", "o",
                                            "--env", "DATA_PATH=data/sample", "--wallclock", "600"])
    env = sweep.shared_settings(args, tmp_path / "repo" / "train_gpt.py")
    assert env == {"DATA_PATH": str(tmp_path / "data" / "sample"),
                   "TOKENIZER_PATH": str(tmp_path / "tok" / "sp.model"),
                   "MAX_WALLCLOCK_SECONDS": "600"}


# ---------------------------------------------------------------------------------------
# Two real tiny CPU runs of the repository's train_gpt.py (slow; not part of the 90 s budget).

TRAIN_GPT = REPO / "train_gpt.py"
BUILD_SAMPLE = REPO / "data" / "build_sample.py"
TINY_ENV = {
    "VOCAB_SIZE": "1024", "NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "2", "NUM_KV_HEADS": "1",
    "MLP_MULT": "2", "TRAIN_SEQ_LEN": "128", "EVAL_SEQ_LEN": "128", "TRAIN_BATCH_TOKENS": "1024",
    "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0", "XSA_LAST_N": "1", "VE_LAYERS": "1",
    "BIGRAM_VOCAB_SIZE": "256", "BIGRAM_DIM": "32", "VE_DIM": "32", "EVAL_STRIDE": "64",
}


@pytest.mark.skipif(not TRAIN_GPT.is_file(), reason="train_gpt.py is not in the repository yet")
@pytest.mark.skipif(not BUILD_SAMPLE.is_file(), reason="data/build_sample.py is not in the repository yet")
def test_real_tiny_sweep_relu2_vs_asqu_on_cpu(tmp_path, capsys, monkeypatch, request):
    try:  # the session-wide small sample of tests/conftest.py, when it provides one
        sample = request.getfixturevalue("small_data")
        data_path, tokenizer = Path(sample["data_path"]), Path(sample["tokenizer"])
    except pytest.FixtureLookupError:
        spec = importlib.util.spec_from_file_location("build_sample_for_sweep_test", BUILD_SAMPLE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build_sample(tmp_path / "sample", tmp_path / "tokenizer", vocab_size=1024)
        tokenizer = sorted((tmp_path / "tokenizer").rglob("*.model"))[0]
        data_path = sorted((tmp_path / "sample").rglob("fineweb_train_*.bin"))[0].parent
    assert sorted(data_path.glob("fineweb_train_*.bin")) and tokenizer.is_file()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # keep the tiny runs on the CPU
    out = tmp_path / "sweep"
    argv = ["--activations", "relu2,asqu", "--seeds", "1337", "--out", str(out), "--fixed-steps", "3",
            "--env", f"DATA_PATH={data_path}", "--env", f"TOKENIZER_PATH={tokenizer}"]
    for key, value in TINY_ENV.items():
        argv += ["--env", f"{key}={value}"]
    code = sweep.main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    runs = runlog.collect_runs([out])
    assert sorted(r.mlp_activation for r in runs) == ["asqu", "relu2"]
    for run in runs:
        assert run.seed == 1337 and run.steps == 3 and run.finished, run.path
        assert run.roundtrip_val_bpb is not None and run.submission_bytes is not None
        assert (run.path.parent / "final_model.pt").exists() or (out / run.name / "final_model.pt").exists()
    assert sorted((out / "plots").glob("*.png"))
    assert sweep.main(argv) == 0  # resume: both runs skipped
    assert capsys.readouterr().out.count("already finished") == 2
