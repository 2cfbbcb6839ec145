"""scripts/campaign.py (and its old name, scripts/h100_campaign.sh): the staged campaign on CPU with a tiny
configuration of 2 processes: the GO path through every stage, each KILL reason reached through settings, the
cost lines, the budget stop, resuming, the dry run and bad settings."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, TINY_ENV

SCRIPT = REPO / "scripts" / "campaign.py"
SETTING_NAMES = ("OUT", "PYTHON", "ACTIVATIONS", "SEEDS", "NPROC", "WALLCLOCK", "TRAIN_ENV", "TRAIN_SHARDS",
                 "SKIP_PREFLIGHT", "SKIP_DOWNLOAD", "REF_SLIDING_BPB", "TOL_SLIDING_BPB", "REF_STEPS", "TOL_STEPS",
                 "REF_MODEL_BYTES", "TOL_MODEL_BYTES", "STEP_MARGIN", "SIZE_LIMIT", "TIME_LIMIT_S", "MIN_GAIN_BPB",
                 "NARROW_SWEEP", "SOTA_LOGS", "TRACK", "PRICE_PER_GPU_HOUR", "BUDGET", "RUN_ESTIMATE_S", "PLOTS",
                 "DRY_RUN", "FORCE_AB", "SETUP_ESTIMATE_S")
# Stage 1 reaches GO with a tiny run only with wide tolerances; stage 2 and 3 with MIN_GAIN_BPB below any loss.
PASSING = dict(TOL_SLIDING_BPB="100", TOL_STEPS="100000", TOL_MODEL_BYTES="1000000000", MIN_GAIN_BPB="-100",
               STEP_MARGIN="100", TIME_LIMIT_S="3600")


def campaign(out, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update({"PYTHON": sys.executable, **settings})
    return subprocess.run([sys.executable, str(SCRIPT), str(out), *args], capture_output=True, text=True, env=env,
                          timeout=900)


def fake_preflight(folder, relu2_ms=650.0, asqu_ms=652.0) -> str:
    """A PYTHON for the campaign whose scripts/gpu_preflight.py is a stand-in: it writes a report (--json) in which
    the preflight chose torch for relu2 and triton for asqu (relu2_ms, asqu_ms: their median step times) and says GO;
    everything else runs in this Python (the real runs then use the Triton kernels in the interpreter)."""
    kernels = {"relu2": {"chosen": "torch", "torch_ms": [relu2_ms, relu2_ms - 5, relu2_ms + 5],
                         "triton_ms": [relu2_ms + 20, relu2_ms + 15, relu2_ms + 30], "triton_rejected": None},
               "asqu": {"chosen": "triton", "torch_ms": [asqu_ms + 20, asqu_ms + 15, asqu_ms + 30],
                        "triton_ms": [asqu_ms, asqu_ms - 5, asqu_ms + 5], "triton_rejected": None}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "preflight.json").write_text(json.dumps({"kernels": kernels, "ok": True, "final": "GO"}))
    fake = folder / "python"
    fake.write_text(f"""#!/bin/sh
if [ "$1" = scripts/gpu_preflight.py ]; then
    echo "$*" >> "{folder}/preflight_calls"
    cp "{folder}/preflight.json" "$5" && echo GO && exit 0
fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    return str(fake)


def tiny_settings(data) -> dict:
    train = {k: v for k, v in TINY_ENV.items() if k not in ("SEED", "MAX_WALLCLOCK_SECONDS")}
    train.update(ITERATIONS="4", VAL_LOSS_EVERY="0", DATA_PATH=data["data_path"],
                 TOKENIZER_PATH=data["tokenizer"], OMP_NUM_THREADS="1")
    return dict(ACTIVATIONS="relu2,asqu", SEEDS="1337,42", NPROC="2", WALLCLOCK="0", SKIP_PREFLIGHT="1",
                SKIP_DOWNLOAD="1", TRACK="non_record_16mb", PLOTS="0", PRICE_PER_GPU_HOUR="2.5",
                TRAIN_ENV=" ".join(f"{k}={shlex.quote(v)}" for k, v in train.items()))


@pytest.fixture(scope="module")
def go_campaign(small_data, tmp_path_factory):
    """One whole campaign that reaches GO at every stage: 4 tiny training runs (relu2, asqu x seeds 1337, 42)."""
    out = tmp_path_factory.mktemp("campaign") / "go"
    settings = {**tiny_settings(small_data), **PASSING, "SKIP_PREFLIGHT": "0",
                "PYTHON": fake_preflight(out.parent / "fake")}
    result = campaign(out, **settings)
    return out, settings, result


def verdicts(out) -> dict:
    state = json.loads((out / "campaign.json").read_text())
    return {number: stage["verdict"] for number, stage in state["stages"].items()}


def test_go_path_through_every_stage(go_campaign):
    out, _, result = go_campaign
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((out / "campaign.json").read_text())
    assert verdicts(out) == {"0": "GO", "1": "GO", "2": "GO", "3": "GO", "4": "GO"}
    assert state["verdict"] == "GO through stage 4"
    calls = (out.parent / "fake" / "preflight_calls").read_text().splitlines()
    assert calls == [f"scripts/gpu_preflight.py --activations relu2,asqu --json {out / 'preflight.json'}"]
    # the preflight's choice is recorded, said, and every run of an activation uses it (each log's device: line)
    assert state["kernels"]["asqu"]["chosen"] == "triton" and state["kernels"]["relu2"]["chosen"] == "torch"
    assert state["step_ratio_stage0"] == pytest.approx(652 / 650)
    chosen = ("kernels chosen by the preflight (median step time): relu2 torch (torch 650 ms, triton 670 ms); asqu "
              "triton (torch 672 ms, triton 652 ms)")
    assert chosen in state["stages"]["0"]["reasons"]
    assert "asqu step time is 1.0031 x relu2's under the kernels their runs use (asqu triton 652 ms, relu2 torch 650 " \
           "ms; limit 101.0000)" in result.stdout
    assert result.stdout.count("MLP_KERNEL: relu2 torch, asqu triton (stage 0's choice)") == 3  # stages 1-3
    for seed in (1337, 42):
        for act, kernel in (("relu2", "torch"), ("asqu", "triton")):
            log = out / "runs" / f"{act}_seed{seed}" / "logs" / f"{act}_seed{seed}.txt"
            assert f" mlp_kernel:{kernel}\n" in log.read_text().split("=" * 100)[-1]
    assert "\n+ MLP_KERNEL=triton " in result.stdout and "\n+ MLP_KERNEL=torch " in result.stdout
    stdout = result.stdout
    assert stdout.index("=== stage 1: control") < stdout.index("=== stage 2: A/B") < stdout.index("=== stage 4")
    assert "control sliding val_bpb" in stdout and "is within 100 of the record's 1.12278022" in stdout
    assert "asqu is lower than the control on final_int6_roundtrip_exact val_bpb by" in stdout
    assert "record criterion against the control (reported, not deciding)" in stdout
    assert "record criterion not checked (SOTA_LOGS unset)" in stdout
    assert (out / "compare_asqu_vs_relu2.txt").read_text().startswith("A = relu2: 2 runs")


def test_cost_lines_and_record(go_campaign):
    out, _, result = go_campaign
    state = json.loads((out / "campaign.json").read_text())
    for number in ("1", "2", "3"):
        stage = state["stages"][number]
        assert stage["gpu_hours"] == pytest.approx(stage["wall_s"] * 2 / 3600)  # wall time x NPROC
        assert stage["cost"] == pytest.approx(stage["gpu_hours"] * 2.5)
        assert stage["wall_s"] > 5  # runs happened in stages 1-3
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(f"cost: stage {number} "))
        assert f"{stage['gpu_hours']:.3f} GPU-hours in all ({stage['cost']:.2f} at 2.5 per GPU-hour)" in line
    assert state["measured_runs"]["count"] == 4
    assert state["gpu_hours_total"] == pytest.approx(sum(s["gpu_hours"] for s in state["stages"].values()))
    assert state["cost_total"] == pytest.approx(state["gpu_hours_total"] * 2.5)
    # before stage 1 nothing was measured: RUN_ESTIMATE_S (800 s) x 1 run x 2 GPUs
    assert state["stages"]["1"]["estimate_gpu_hours"] == pytest.approx(800 * 2 / 3600)


@pytest.fixture
def finished_copy(go_campaign, tmp_path):
    """The finished runs of the GO campaign in a new output folder (no campaign.json): rules re-judged, nothing run."""
    out, settings, result = go_campaign
    assert result.returncode == 0, result.stderr[-2000:]
    copy = tmp_path / "again"
    shutil.copytree(out / "runs", copy / "runs")
    return copy, {**settings, "SKIP_PREFLIGHT": "1", "PYTHON": sys.executable}


KILLS = {  # the setting that triggers it, the stage it stops, the reason's words
    "control off the record": (dict(TOL_SLIDING_BPB="0"), "1", "control sliding val_bpb"),
    "control steps": (dict(TOL_STEPS="0", REF_STEPS="7096"), "1",
                      "control steps 4 is not within 0 of the record's 7096"),
    "step time": (dict(STEP_MARGIN="-0.9"), "2", "asqu step_avg is"),
    "size": (dict(SIZE_LIMIT="1000"), "2", "total submission size"),
    "training time": (dict(TIME_LIMIT_S="-1"), "2", "asqu_seed1337: training took"),
    "not better": (dict(MIN_GAIN_BPB="10"), "2", "(needs more than 10)"),
}


@pytest.mark.parametrize("kill", sorted(KILLS))
def test_each_kill_reason_stops_the_campaign(finished_copy, kill):
    out, settings = finished_copy
    change, stage, words = KILLS[kill]
    result = campaign(out, **{**settings, **PASSING, **change})
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"campaign: KILL at stage {stage}" in result.stdout
    assert "nothing to run" in result.stdout  # resumed: the finished runs are judged again, not run again
    assert not any(line.startswith("+ ") for line in result.stdout.splitlines())
    state = json.loads((out / "campaign.json").read_text())
    assert state["verdict"] == f"KILL at stage {stage}"
    assert str(int(stage) + 1) not in state["stages"]  # stopped at the first KILL
    reasons = state["stages"][stage]["reasons"]
    assert any(words in r for r in reasons), reasons
    assert all(f"  - {r}" in result.stdout for r in reasons)


@pytest.mark.parametrize("change, verdict", [({}, "KILL"), ({"FORCE_AB": "1"}, "GO"), ({"STEP_MARGIN": "0.1"}, "GO")])
def test_stage_zero_kills_when_the_chosen_kernels_already_break_the_step_margin(finished_copy, change, verdict):
    """The preflight (a stand-in) measured asqu 7.7% slower than relu2 under the kernels it chose: stage 0 KILLs with
    the figures before the control and the A/B are run, unless FORCE_AB=1 or a STEP_MARGIN above 7.7%."""
    out, settings = finished_copy
    fake = fake_preflight(out.parent / "slow", relu2_ms=650.0, asqu_ms=700.0)
    result = campaign(out, **{**settings, **PASSING, "SKIP_PREFLIGHT": "0", "PYTHON": fake, "STEP_MARGIN": "0.02",
                              **change})
    state = json.loads((out / "campaign.json").read_text())
    assert state["stages"]["0"]["verdict"] == verdict and state["kernels"]["asqu"]["chosen"] == "triton"
    assert state["step_ratio_stage0"] == pytest.approx(700 / 650)
    figures = ("asqu step time is 1.0769 x relu2's under the kernels their runs use (asqu triton 700 ms, relu2 torch "
               f"650 ms; limit {1 + float(change.get('STEP_MARGIN', 0.02)):.4f})")
    if verdict == "KILL":
        assert result.returncode == 1 and "campaign: KILL at stage 0" in result.stdout
        assert f"  - {figures}; FORCE_AB=1 or a larger STEP_MARGIN goes on" in result.stdout
        assert "=== stage 1" not in result.stdout and "1" not in state["stages"]
    else:
        assert "=== stage 1" in result.stdout and "1" in state["stages"]
        forced = "; FORCE_AB=1: the A/B runs anyway" if change.get("FORCE_AB") else ""
        assert f"  - {figures}{forced}" in result.stdout


def test_mlp_kernel_in_train_env_overrides_the_choice(finished_copy):
    out, settings = finished_copy
    train_env = settings["TRAIN_ENV"] + " MLP_KERNEL=torch"
    result = campaign(out, **{**settings, **PASSING, "SKIP_PREFLIGHT": "0", "TRAIN_ENV": train_env,
                              "PYTHON": fake_preflight(out.parent / "fake2")})
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stdout.count("MLP_KERNEL: relu2 torch, asqu torch (TRAIN_ENV's MLP_KERNEL, which overrides stage "
                               "0's choice)") == 3
    assert "asqu step time is 1.0338 x relu2's under the kernels their runs use (asqu torch 672 ms" in result.stdout


def test_stage_four_kills_when_package_refuses(finished_copy):
    out, settings = finished_copy
    result = campaign(out, **{**settings, **PASSING, "TRACK": "10min_16mb"})  # CPU runs are no record-track runs
    assert result.returncode == 1 and "campaign: KILL at stage 4" in result.stdout
    reasons = json.loads((out / "campaign.json").read_text())["stages"]["4"]["reasons"]
    assert any("package.py --check:" in r and "device is cpu" in r for r in reasons), reasons


def test_budget_stops_before_a_stage_it_cannot_pay(finished_copy, tmp_path):
    out, settings = finished_copy
    # nothing measured yet: a stage-1 run is estimated at RUN_ESTIMATE_S x NPROC = 2 GPU-hours = 5.0 at 2.5
    fresh = tmp_path / "fresh"
    result = campaign(fresh, **{**settings, **PASSING, "RUN_ESTIMATE_S": "3600", "BUDGET": "4"})
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    assert "STOP (budget): stage 1 is estimated at 2.000 GPU-hours (5.00 at 2.5 per GPU-hour)" in result.stdout
    assert json.loads((fresh / "campaign.json").read_text())["verdict"] == "STOPPED before stage 1 (budget)"
    assert not (fresh / "runs").exists()
    # finished runs cost nothing more: the same budget carries the resumed campaign through
    result = campaign(out, **{**settings, **PASSING, "RUN_ESTIMATE_S": "3600", "BUDGET": "4"})
    assert result.returncode == 0, result.stdout[-2000:]


def test_dry_run_prints_every_stage_and_writes_nothing(tmp_path):
    out = tmp_path / "campaign out"
    result = campaign(out, DRY_RUN="1", NARROW_SWEEP="ASQU_BETA_INIT=0.15,0.35", SOTA_LOGS="sota/a.log sota/b.log")
    assert result.returncode == 0, result.stderr
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    py = sys.executable
    assert commands[0] == [py, "scripts/gpu_preflight.py", "--activations", "relu2,leaky2,asqu", "--json",
                           str(out / "preflight.json")]
    assert commands[1] == [py, "data/cached_challenge_fineweb.py", "--variant", "sp1024", "--train-shards", "80"]
    sweep = [py, "tools/sweep.py", "--activations"]
    tail = ["--out", str(out / "runs"), "--nproc", "8", "--wallclock", "600", "--no-plots"]
    assert commands[2] == [*sweep, "relu2", "--seeds", "1337", *tail]
    assert commands[3] == [*sweep, "relu2,leaky2,asqu", "--seeds", "1337", *tail]
    assert commands[4] == [*sweep, "relu2,leaky2,asqu", "--seeds", "1337,42,2025", *tail]
    assert commands[5][:6] == [*sweep, "asqu", "--seeds", "1337"]
    assert commands[5][-2:] == ["--env", "ASQU_BETA_INIT=0.15"] and commands[6][-2:] == ["--env", "ASQU_BETA_INIT=0.35"]
    assert commands[7] == [py, "tools/plots.py", str(out / "runs"), "--out", str(out / "plots")]
    assert commands[8][:5] == [py, "tools/package.py", "--check", "--track", "10min_16mb"]
    assert commands[8][-4:] == [str(out / "runs" / "asqu_seed2025"), "--against", "sota/a.log", "sota/b.log"]
    assert len(commands) == 9
    for number in range(5):
        assert f"=== stage {number}:" in result.stdout
    assert "KILL when step_avg > 1.0200 x relu2's, total size > 16,000,000 bytes, training > 600 s" in result.stdout
    assert ("KILL before the A/B is paid for when asqu's step time under the chosen kernels is > 1.0200 x relu2's "
            "(the preflight's median; FORCE_AB=1 or a larger STEP_MARGIN goes on)") in result.stdout
    # each stage's own cost (runs x 800 s x 8 GPUs; stage 0: 900 s x 8) and the running total: stage 2 does not count
    # stage 1's run again, stage 3 not stage 2's three (its 6 other seeds' runs + 2 narrow-sweep runs)
    estimates = [line for line in result.stdout.splitlines() if line.startswith("estimate: ")]
    assert estimates == [f"estimate: stage {n} {own} GPU-hours for what it has not yet run; campaign so far {total} "
                         "GPU-hours" for n, own, total in ((0, "2.000", "2.000"), (1, "1.778", "3.778"),
                                                           (2, "3.556", "7.333"), (3, "14.222", "21.556"))]
    assert result.stdout.count("MLP_KERNEL: relu2 auto, leaky2 auto, asqu auto (stage 0 chooses them; a dry run "
                               "measures nothing)") == 3
    assert not out.exists()


def test_old_name_runs_the_same_campaign(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(DRY_RUN="1", PYTHON=sys.executable, SKIP_PREFLIGHT="1")
    result = subprocess.run(["bash", str(REPO / "scripts" / "h100_campaign.sh"), str(tmp_path / "o")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "=== stage 4: record check" in result.stdout and "gpu_preflight" not in result.stdout


def test_preflight_failure_kills_at_setup(tmp_path):
    """Not a dry run: a preflight that fails (a PYTHON that always fails) stops before the download and training."""
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho \"fakepython $*\" >> \"$(dirname \"$0\")/calls\"\nexit 3\n")
    fake.chmod(0o755)
    result = campaign(tmp_path / "o", PYTHON=str(fake))
    assert result.returncode == 1
    assert "campaign: KILL at stage 0" in result.stdout and "preflight exit status 3" in result.stdout
    assert (tmp_path / "calls").read_text().splitlines() == [
        "fakepython scripts/gpu_preflight.py --activations relu2,leaky2,asqu --json "
        f"{tmp_path / 'o' / 'preflight.json'}"]
    assert not (tmp_path / "o" / "runs").exists()


@pytest.mark.parametrize("settings, message", [
    (dict(ACTIVATIONS="asqu"), "ACTIVATIONS needs the control and a candidate"),
    (dict(NPROC="eight"), "NPROC must be an integer >= 1, got 'eight'"),
    (dict(BUDGET="100"), "BUDGET is money: set PRICE_PER_GPU_HOUR too"),
    (dict(NARROW_SWEEP="NUM_LAYERS=10,12"), "NARROW_SWEEP takes NAME=v1,v2 with NAME one of ASQU_BETA_INIT, ASQU_LR"),
    (dict(SEEDS="1337,x"), "SEEDS takes comma-separated integers"),
    (dict(TRAIN_ENV='NUM_LAYERS="10'), "TRAIN_ENV='NUM_LAYERS=\"10' cannot be split like a shell line"),
    (dict(SOTA_LOGS="'sota/a.log"), "SOTA_LOGS=\"'sota/a.log\" cannot be split like a shell line"),
    # issue 29: each of these printed "dry run done", and met the real campaign at the stage using it (or never)
    (dict(NPROC="0"), "NPROC must be an integer >= 1, got '0'"),
    (dict(NPROC="-2"), "NPROC must be an integer >= 1, got '-2'"),
    (dict(PRICE_PER_GPU_HOUR="-1"), "PRICE_PER_GPU_HOUR must be a finite number >= 0, got '-1'"),
    (dict(PRICE_PER_GPU_HOUR="nan"), "PRICE_PER_GPU_HOUR must be a finite number >= 0, got 'nan'"),
    (dict(PRICE_PER_GPU_HOUR="1", BUDGET="-5"), "BUDGET must be a finite number >= 0, got '-5'"),
    (dict(RUN_ESTIMATE_S="-1"), "RUN_ESTIMATE_S must be a finite number >= 1, got '-1'"),
    (dict(TRAIN_SHARDS="-3"), "TRAIN_SHARDS must be an integer >= 1, got '-3'"),
    (dict(WALLCLOCK="-1"), "WALLCLOCK must be a finite number >= 0, got '-1'"),
    (dict(ACTIVATIONS="foo,bar"), "nothing was run; train_gpt.py would refuse these settings: MLP_ACTIVATION='foo' is "
                                  "not one of relu2, leaky2, asqu (or leaky_relu2)"),
    (dict(TRACK="bogus"), "TRACK='bogus' is not one of 10min_16mb, non_record_16mb"),
    (dict(SEEDS="1,1,1"), "SEEDS needs distinct seeds, at least one, got '1,1,1'"),
    (dict(SEEDS="-1,2"), "nothing was run; train_gpt.py would refuse these settings: SEED=-1 must be in 0..4294967295"),
    (dict(TRAIN_ENV="NOEQUALS"), "TRAIN_ENV takes KEY=VALUE, got 'NOEQUALS'"),
    (dict(TRAIN_ENV="NUM_LAYERS=abc"), "nothing was run; train_gpt.py would refuse these settings: NUM_LAYERS='abc' is "
                                       "not a whole number; set it to e.g. NUM_LAYERS=11 or unset it"),
    (dict(TRAIN_ENV="MUON_WD=1000"), "nothing was run; train_gpt.py would refuse these settings: MATRIX_LR x MUON_WD"),
    (dict(TRAIN_ENV="MLP_ACTIVATION=relu2"), "TRAIN_ENV MLP_ACTIVATION=... is set per run by the sweep; use "
                                             "ACTIVATIONS / SEEDS"),
    (dict(TRAIN_ENV="SEED=1"), "TRAIN_ENV SEED=... is set per run by the sweep; use ACTIVATIONS / SEEDS"),
    (dict(TRAIN_ENV="MAX_WALLCLOCK_SECONDS=60"), "WALLCLOCK sets MAX_WALLCLOCK_SECONDS; do not also pass it with "
                                                 "TRAIN_ENV"),
    (dict(TRAIN_ENV="NUM_LAYER=3"), "nothing was run; train_gpt.py would refuse these settings: TRAIN_ENV NUM_LAYER: "
                                    "not a variable of train_gpt.py (did you mean NUM_LAYERS?)"),
    (dict(NARROW_SWEEP="ASQU_LR=0.002,abc"), "nothing was run; train_gpt.py would refuse these settings: "
                                             "ASQU_LR='abc' is not a finite number"),
])
def test_bad_settings_are_one_line(tmp_path, settings, message):
    result = campaign(tmp_path / "o", DRY_RUN="1", **settings)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"campaign: error: {message}")


def test_an_out_that_is_a_file_is_one_line_in_the_dry_run_too(tmp_path):
    (tmp_path / "o").write_text("mine\n")
    for dry in ("1", "0"):
        result = campaign(tmp_path / "o", DRY_RUN=dry, SKIP_PREFLIGHT="1", SKIP_DOWNLOAD="1")
        assert result.returncode == 2 and result.stdout == "" and result.stderr == (
            f"campaign: error: OUT={tmp_path / 'o'} is a file, not a folder; name a folder (it is created)\n")
    assert (tmp_path / "o").read_text() == "mine\n"


def test_the_real_run_refuses_what_the_dry_run_does(tmp_path):
    """Not a dry run: a bad TRAIN_ENV value stops before stage 0 (the preflight) is started."""
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho \"fakepython $*\" >> \"$(dirname \"$0\")/calls\"\nexit 0\n")
    fake.chmod(0o755)
    result = campaign(tmp_path / "o", PYTHON=str(fake), TRAIN_ENV="NUM_LAYERS=abc")
    assert result.returncode == 2 and result.stdout == "" and "NUM_LAYERS='abc' is not a whole number" in result.stderr
    assert not (tmp_path / "calls").exists() and not (tmp_path / "o").exists()


def test_an_unreadable_record_is_one_line_and_kept(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "campaign.json").write_text("{not json")
    result = campaign(tmp_path / "o", DRY_RUN="1")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "campaign.json is unreadable" in result.stderr and "move it away to start afresh" in result.stderr
    assert (tmp_path / "o" / "campaign.json").read_text() == "{not json"
