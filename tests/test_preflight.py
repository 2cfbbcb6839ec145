"""scripts/gpu_preflight.py: a real CPU run of the script (tiny config) and its verdict logic on synthetic logs."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "data"))

import gpu_preflight as pf  # noqa: E402
import train_gpt as tg  # noqa: E402

SEP = "=" * 100

# ----------------------------------------------------------------------------------------------------
# synthetic logs
# ----------------------------------------------------------------------------------------------------


def make_log(activation="relu2", step_ms=650.0, steps=40, attention="flash_attn_3", device="cuda:0",
             dtype="bfloat16", recompiles: int | None = 0, warmup_ms: float | None = 61234.0, total=15_555_017,
             spike_step=None, spike_ms=0.0, final=True, peak=(40123, 41000), loss_shift=0.0) -> str:
    lines = [
        'log(f"step:{step}/{args.iterations} train_loss:1.0 train_time:5ms step_avg:1.00ms")',  # source dump noise
        "Total submission size int6+zstd: 99999999 bytes",  # a quoted line inside the source dump: never counts
        SEP, "Running PyTorch 2.9.1", SEP,
        "model_params:26993756", f"mlp_activation:{activation}",
        f"device:{device} dtype:{dtype} attention:{attention} compile:1",
        "world_size:1 grad_accum_steps:8", "seed:1337",
    ]
    if warmup_ms is not None:
        lines.append(f"warmup_done time:{warmup_ms:.0f}ms graphs:3")
    t = 0.0
    for s in range(1, steps + 1):
        t += spike_ms if s == spike_step else step_ms
        loss = 6 - s / 100 + (loss_shift if s > steps // 2 else 0.0)
        lines.append(f"step:{s}/{steps} train_loss:{loss:.4f} train_time:{t:.0f}ms step_avg:{t / s:.2f}ms")
        if s == steps - 2:
            lines.append(f"late_qat:enabled step:{s} scale:0.1000")
    lines.append(f"step:{steps}/{steps} val_loss:5.0 val_bpb:3.0 train_time:{t:.0f}ms step_avg:{t / steps:.2f}ms")
    if recompiles is not None:
        lines.append(f"recompiles_after_warmup:{recompiles}")
    if peak:
        lines.append(f"peak memory allocated: {peak[0]} MiB reserved: {peak[1]} MiB")
    if final:
        lines += [
            "DIAGNOSTIC post_ema val_loss:4.9 val_bpb:2.9 eval_time:1960ms",
            "Code size: 67603 bytes", f"Serialized model int6+zstd: {total - 67603} bytes",
            f"Total submission size int6+zstd: {total} bytes",
            "final_int6_roundtrip val_loss:4.95 val_bpb:2.95 eval_time:2000ms",
            "final_int6_roundtrip_exact val_loss:4.95000000 val_bpb:2.95123456",
            "final_int6_sliding_window val_loss:4.90 val_bpb:2.90 stride:1024 eval_time:3000ms",
            "final_int6_sliding_window_exact val_loss:4.90000000 val_bpb:2.90123456",
        ]
    return "\n".join(lines) + "\n"


def result(activation="relu2", returncode=0, tail=None, **log_kw) -> pf.RunResult:
    r = pf.RunResult(activation=activation, run_id=f"x_{activation}", workdir=Path("/nonexistent"),
                     returncode=returncode, log_path=Path(f"/nonexistent/{activation}.txt"))
    r.facts = pf.parse_log(make_log(activation=activation, **log_kw))
    r.tail = tail or []
    return r


GPU_ENV = {"python": "3.12", "torch": "2.9.1", "cuda_available": True, "nccl_available": True,
           "gpus": [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_mib": 81000}] * 8,
           "fa3": "available", "zstandard": "0.23.0", "brotli": "1.2.0"}


def runs(**per_act) -> dict:
    out = {"relu2": result("relu2", **per_act.get("relu2", {})), "asqu": result("asqu", **per_act.get("asqu", {}))}
    return out


# ----------------------------------------------------------------------------------------------------
# parsing
# ----------------------------------------------------------------------------------------------------


def test_parse_reads_only_after_the_header():
    f = pf.parse_log(make_log(step_ms=650.0, total=15_000_000))
    log = f.run  # tools/runlog.py's reading
    assert log.submission_bytes == 15_000_000  # not the 99999999 quoted in the source dump
    steps = [(p.step, p.train_time_ms) for p in log.train_points]
    assert steps[0] == (1, 650.0) and len(steps) == 40  # not the f-string step line of the source
    assert (log.device, log.dtype, log.attention, log.compile) == ("cuda:0", "bfloat16", "flash_attn_3", 1)
    assert log.warmup_ms == 61234.0 and log.warmup_graphs == 3 and log.recompiles_after_warmup == 0
    assert (log.peak_allocated_mib, log.peak_reserved_mib) == (40123, 41000)
    assert log.roundtrip_val_bpb == 2.95123456 and log.sliding_val_bpb == 2.90123456 and log.compressor == "zstd"
    assert log.late_qat_step == 38 and log.model_params == 26993756 and log.mlp_activation == "relu2"


def test_steady_step_time_is_the_median_of_deltas():
    f = pf.parse_log(make_log(step_ms=650.0, spike_step=38, spike_ms=23178.0))
    assert f.steady_step_ms == pytest.approx(650.0, abs=1)
    assert f.slowest_step == (38, pytest.approx(23178.0, abs=1))
    # step lines every k steps: deltas are per step
    text = "\n".join(f"step:{s}/30 train_loss:5.0 train_time:{s * 100}ms step_avg:100.00ms" for s in (10, 20, 30))
    assert pf.parse_log(text).steady_step_ms == pytest.approx(100.0)


def test_missing_new_lines_are_unknown_not_errors():
    log = pf.parse_log(make_log(recompiles=None, warmup_ms=None)).run
    assert log.recompiles_after_warmup is None and log.warmup_ms is None and log.submission_bytes == 15_555_017
    legacy = REPO / "tests" / "fixtures" / "logs" / "legacy_seed2024.log"
    if legacy.is_file():  # a published record log: none of the new lines, all the old ones
        g = pf.parse_log(legacy.read_text(encoding="utf-8", errors="replace"))
        assert g.run.recompiles_after_warmup is None and g.run.warmup_ms is None
        assert g.run.submission_bytes and g.run.roundtrip_val_bpb and g.steady_step_ms


# ----------------------------------------------------------------------------------------------------
# verdict
# ----------------------------------------------------------------------------------------------------


def test_go_when_everything_holds():
    ok, final, warns = pf.verdict(GPU_ENV, runs(asqu={"step_ms": 660.0}), cpu=False)
    assert ok and final == "GO", (final, warns)
    ok, final, warns = pf.verdict(GPU_ENV, runs(asqu={"step_ms": 800.0}), cpu=False)
    assert ok and final == "GO"  # speed is the campaign's rule (STEP_MARGIN), not a NO-GO


@pytest.mark.parametrize("env_patch, per_act, expect", [
    ({"cuda_available": False}, {}, "NO-GO: no CUDA device"),
    ({"torch": None}, {}, "NO-GO: torch is not importable"),
    ({"nccl_available": False}, {}, "NCCL is not available"),
    ({}, {"asqu": {"attention": "sdpa"}}, "asqu: attention is sdpa on CUDA"),
    ({"fa3": None, "fa2": None}, {"asqu": {"attention": "sdpa"}}, "asqu: attention is sdpa on CUDA"),
    ({}, {"relu2": {"recompiles": 1}}, "relu2: 1 recompile(s) after warm-up"),
    ({}, {"asqu": {"total": 16_000_001}}, "asqu: artifact 16,000,001 bytes > 16,000,000"),
    ({}, {"relu2": {"returncode": 1, "final": False, "tail": ["error: DATA_PATH=/x: no shards"]}},
     "relu2 run failed (exit 1): error: DATA_PATH=/x: no shards"),
    ({}, {"asqu": {"final": False}}, "asqu run log lacks Total submission size"),
    ({}, {"asqu": {"device": "cpu"}}, "asqu: the run used device cpu"),
    # without the recompile line, a step 5x slower than the median is taken for a recompile
    ({}, {"relu2": {"recompiles": None, "spike_step": 38, "spike_ms": 23178.0}},
     "relu2: step 38 took 23178 ms against a median of 650 ms"),
])
def test_no_go_reasons(env_patch, per_act, expect):
    env = {**GPU_ENV, **env_patch}
    ok, final, _ = pf.verdict(env, runs(**per_act), cpu=False)
    assert not ok and final.startswith("NO-GO: ") and expect in final, final


def test_missing_flash_attention_3_names_the_piece_and_the_install_command():
    env = {**GPU_ENV, "fa3": None, "fa3_error": "ModuleNotFoundError: No module named 'flash_attn_interface'"}
    ok, final, _ = pf.verdict(env, runs(relu2={"attention": "sdpa"}, asqu={"attention": "sdpa"}), cpu=False)
    assert not ok and final.startswith("NO-GO: relu2: attention is sdpa on CUDA: FlashAttention 3 (module "
                                       "flash_attn_interface) is missing (ModuleNotFoundError: No module named")
    assert ("install it with: pip install --no-deps flash_attn_3 --find-links "
            "https://windreamer.github.io/flash-attention3-wheels/cu128_torch291/ (that wheel index is for CUDA 12.8 + "
            "PyTorch 2.9.1; this Python has PyTorch 2.9.1") in final
    ok, final, _ = pf.verdict(GPU_ENV, runs(asqu={"attention": "sdpa"}), cpu=False)  # FA3 importable: another cause
    assert not ok and "the run chose SDPA (ATTENTION=sdpa?)" in final and "pip install" not in final


def test_warnings_that_are_not_no_go():
    env = {**GPU_ENV, "gpus": GPU_ENV["gpus"][:1], "brotli": None}
    ok, final, warns = pf.verdict(env, runs(relu2={"recompiles": None, "warmup_ms": None},
                                            asqu={"recompiles": 0, "spike_step": 5, "spike_ms": 9000.0}), cpu=False)
    assert ok and final == "GO"
    text = "\n".join(warns)
    assert "1 GPU(s); the record run uses 8" in text and "zstandard" not in text
    assert "brotli is not installed: EXPORT_COMPRESSOR=auto cannot try it (the artifact may be larger)" in text
    assert "relu2: recompiles after warm-up unknown" in text and "relu2: compile/warm-up time unknown" in text
    assert "asqu: step 5 took 9000 ms" in text  # known recompiles:0, so a slow step is only a warning
    ok, final, warns = pf.verdict({**GPU_ENV, "fa3": None, "fa2": "2.7.4", "fa2_usable": True}, runs(), cpu=False)
    assert ok and any("used attention flash_attn_3; this Python offers flash_attn_2" in w for w in warns)


def test_warning_lines_of_a_console_log_count_with_or_without_a_space():
    """A run without a log file is read from its console, where Python's logging writes WARNING:name:..."""
    lines = ["WARNING:torch.distributed:a note from torch", "WARNING: a line of train_gpt.py"]
    log = pf.parse_log(make_log() + "\n".join(lines) + "\n").run
    assert log.warnings == lines


@pytest.mark.parametrize("where", ["missing/report.json", "."])
def test_a_json_path_that_cannot_be_written_is_refused_before_anything_runs(where, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pf.parse_args(["--json", str(tmp_path / where)])
    assert exit_info.value.code == 2 and "--json" in capsys.readouterr().err


def test_a_workdir_that_is_a_file_is_refused_before_anything_runs(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        pf.parse_args(["--workdir", str(tmp_path / "f")])
    assert exit_info.value.code == 2
    assert f"--workdir {tmp_path / 'f'} is a file; name a folder" in capsys.readouterr().err


def test_several_reasons_are_joined():
    ok, final, _ = pf.verdict({**GPU_ENV, "nccl_available": False}, runs(asqu={"attention": "sdpa", "recompiles": 2}),
                              cpu=False)
    assert not ok and final.count(";") >= 2


def test_cpu_verdict():
    cpu_env = {"python": "3.11", "torch": "2.13.0", "cuda_available": False, "nccl_available": False}
    kw = {"device": "cpu", "dtype": "float32", "attention": "sdpa", "peak": None}
    ok, final, warns = pf.verdict(cpu_env, runs(relu2=kw, asqu={**kw, "step_ms": 900.0}), cpu=True)
    assert ok and final.startswith("CPU-SMOKE-OK") and "not possible" in final
    assert not any("ratio" in w or "step time" in w for w in warns)  # CPU speed says nothing about the GPU
    ok, final, _ = pf.verdict(cpu_env, runs(relu2=kw, asqu={**kw, "final": False}), cpu=True)
    assert not ok and final.startswith("CPU-SMOKE-FAILED: asqu run log lacks")


def test_child_env_drops_the_callers_config():
    base = {"PATH": "/bin", "MLP_ACTIVATION": "relu2", "ITERATIONS": "7", "RANK": "3", "WORLD_SIZE": "8", "HOME": "/h"}
    env, dropped = pf.child_env(base, {"ITERATIONS": "40"}, cpu=True)
    assert env["ITERATIONS"] == "40" and "MLP_ACTIVATION" not in env and "RANK" not in env
    assert env["PATH"] == "/bin" and env["CUDA_VISIBLE_DEVICES"] == "" and dropped == ["ITERATIONS", "MLP_ACTIVATION"]


def test_no_cuda_without_cpu_flag_stops_early(capsys, monkeypatch):
    monkeypatch.setattr(pf, "check_environment", lambda: {"python": "3", "torch": "2", "cuda_available": False,
                                                          "nccl_available": False})
    assert pf.main([]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("NO-GO: no CUDA device")


def stand_in_runs(monkeypatch, tmp_path, spec: dict, op_errors: dict | None = None) -> list:
    """The GPU path of main() with runs stood in by synthetic logs: spec[(activation, kernel)] = make_log arguments
    (returncode/tail too); the op-level kernel check stood in by op_errors. Returns the runs' (label, env)."""
    monkeypatch.setattr(pf, "check_environment", lambda: dict(GPU_ENV))
    monkeypatch.setattr(pf, "kernel_op_errors", lambda acts, cpu: dict(op_errors or {}))
    monkeypatch.setattr(tg, "KERNEL_CHOICE_FILE", tmp_path / "cache" / "mlp_kernel.txt")
    seen = []

    def fake_run(name, workdir, env, timeout_s, echo=print):
        seen.append((name, env))
        workdir.mkdir(parents=True)
        r = result(env["MLP_ACTIVATION"], **spec.get((env["MLP_ACTIVATION"], env["MLP_KERNEL"]), {}))
        r.activation, r.workdir = name, workdir
        return r

    monkeypatch.setattr(pf, "run_training", fake_run)
    return seen


@pytest.mark.parametrize("fail", [False, True])
def test_main_gpu_flow_with_stand_in_runs(fail, tmp_path, monkeypatch, capsys):
    """main() end to end on a GPU node: every activation x kernel on a GPU of its own, the choice, the report, the
    choice file, exit code, cleanup."""
    spec = {("relu2", "torch"): dict(step_ms=650.0), ("relu2", "triton"): dict(step_ms=640.0),
            ("leaky2", "torch"): dict(step_ms=652.0), ("leaky2", "triton"): dict(step_ms=660.0),
            ("asqu", "torch"): dict(step_ms=670.0), ("asqu", "triton"): dict(step_ms=655.0)}
    if fail:
        spec[("asqu", "torch")] = dict(returncode=1, final=False)
    seen = stand_in_runs(monkeypatch, tmp_path, spec)
    report = tmp_path / "r.json"
    workdir = tmp_path / "not" / "yet"  # created by the preflight
    rc = pf.main(["--data-path", "/data/x", "--tokenizer-path", "/tok/x.model", "--workdir", str(workdir),
                  "--json", str(report), "--set", "ASQU_BETA_GRAD_EVERY=2"])
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    names = ["relu2", "relu2/triton", "leaky2", "leaky2/triton", "asqu", "asqu/triton"]
    assert sorted(n for n, _ in seen) == sorted(names)
    assert sorted(env["CUDA_VISIBLE_DEVICES"] for _, env in seen) == ["0", "1", "2", "3", "4", "5"]  # one GPU each
    for name, env in seen:  # the GPU runs: default model, compiled, the preflight's schedule, absolute paths
        act, _, kernel = name.partition("/")
        assert env["MLP_ACTIVATION"] == act and env["MLP_KERNEL"] == (kernel or "torch") and env["COMPILE"] == "1"
        assert env["ITERATIONS"] == "40" and env["EMA_DECAY"] == "0.9"  # 3 / (1 - 0.9) = 30 <= 40: no EMA warning
        assert env["WARMUP_STEPS"] == "10" and env["MAX_WALLCLOCK_SECONDS"] == "0" and env["VAL_LOSS_EVERY"] == "0"
        assert env["EVAL_STRIDE"] == "1024" and env["ASQU_BETA_GRAD_EVERY"] == "2" and "MODEL_DIM" not in env
        assert env["DATA_PATH"] == "/data/x" and env["RUN_ID"].startswith(f"preflight_{act}_{kernel or 'torch'}_")
    tmps = [p for p in workdir.iterdir() if p.name.startswith("asqu_preflight_")]
    rep = json.loads(report.read_text())
    assert rep["final"] == last and set(rep["runs"]) == set(names)
    choice_file = tmp_path / "cache" / "mlp_kernel.txt"
    if fail:
        assert rc == 1 and last.startswith("NO-GO: asqu run failed (exit 1)")
        assert len(tmps) == 1 and "a run failed: its logs are there" in out  # kept for the user
        assert "asqu: triton not chosen: no torch run to check it against" in out
        assert choice_file.read_text().splitlines() == ["NVIDIA H100 80GB HBM3/relu2=triton",
                                                        "NVIDIA H100 80GB HBM3/leaky2=torch"]  # measured ones only
        return
    assert rc == 0 and last == "GO" and tmps == []  # removed without --keep, and said so
    assert re.search(r"^removed \S+asqu_preflight_\w+ and the runs' logs in it \(--keep keeps them\)$", out, re.M)
    assert rep["kernels"]["relu2"] == {"chosen": "triton", "torch_ms": [650.0, 650.0, 650.0],
                                       "triton_ms": [640.0, 640.0, 640.0], "triton_rejected": None}
    assert rep["kernels"]["leaky2"]["chosen"] == "torch" and rep["kernels"]["asqu"]["chosen"] == "triton"
    assert rep["asqu_relu2_ratio"] == pytest.approx(655 / 640) and rep["choice_file"] == str(choice_file)
    assert "asqu/relu2 step time under the chosen kernels: 1.023" in out and "15,555,017 bytes" in out
    assert "  relu2    torch 650 ms [650 ms, 650 ms]; triton 640 ms [640 ms, 640 ms]; chosen: triton" in out
    assert "61,234 ms (3 graphs)" in out and "40,123 MiB allocated" in out and "not chosen" not in out
    assert choice_file.read_text().splitlines() == ["NVIDIA H100 80GB HBM3/relu2=triton",
                                                    "NVIDIA H100 80GB HBM3/leaky2=torch",
                                                    "NVIDIA H100 80GB HBM3/asqu=triton"]


def test_a_triton_kernel_that_fails_or_disagrees_is_not_chosen(tmp_path, monkeypatch, capsys):
    """Fakes: relu2's Triton kernel fails to compile, asqu's gives other train losses, leaky2's fails the op-level
    check (its dbeta / output against the torch path). Each is rejected in one line; torch runs; the preflight is GO."""
    compile_error = ["Traceback (most recent call last):", "triton.compiler.errors.CompilationError: at 12:8: bad"]
    spec = {("relu2", "triton"): dict(step_ms=500.0, returncode=1, final=False, tail=compile_error),
            ("leaky2", "triton"): dict(step_ms=500.0),
            ("asqu", "triton"): dict(step_ms=500.0, loss_shift=0.1)}  # 1.7-1.8% off from step 21 on
    op = {"leaky2": "its output differs from the torch path's by 12.50% of the largest value (tolerance 1%)"}
    stand_in_runs(monkeypatch, tmp_path, spec, op)
    report = tmp_path / "r.json"
    rc = pf.main(["--data-path", "/d", "--tokenizer-path", "/t.model", "--workdir", str(tmp_path), "--json",
                  str(report)])
    out = capsys.readouterr().out
    rejected = [line for line in out.splitlines() if "triton not chosen" in line]
    assert rejected == [
        "  relu2: triton not chosen: relu2/triton run failed (exit 1): triton.compiler.errors.CompilationError: "
        "at 12:8: bad",
        "  leaky2: triton not chosen: its output differs from the torch path's by 12.50% of the largest value "
        "(tolerance 1%)",
        "  asqu: triton not chosen: train loss at step 40 differs from the torch run's by 1.79% (tolerance 1%)"]
    kernels = json.loads(report.read_text())["kernels"]
    assert {act: k["chosen"] for act, k in kernels.items()} == {"relu2": "torch", "leaky2": "torch", "asqu": "torch"}
    assert kernels["asqu"]["triton_rejected"].startswith("train loss at step 40") and rc == 0


def test_triton_problem_rules():
    ref = result("asqu", step_ms=600.0)
    assert pf.triton_problem(ref, result("asqu", loss_shift=0.05), None, cpu=False) is None  # 0.9% < 1%
    assert "no torch run" in pf.triton_problem(result("asqu", returncode=1), result("asqu"), None, cpu=False)
    assert pf.triton_problem(ref, None, None, cpu=False) == "not measured"
    assert pf.triton_problem(ref, result("asqu", recompiles=2), None, cpu=False) == "2 recompile(s) after warm-up"
    assert pf.triton_problem(ref, result("asqu", recompiles=2), None, cpu=True) is None  # CPU: eager, a warning only
    nan = result("asqu")
    nan.facts = pf.parse_log(make_log().replace("train_loss:5.9000", "train_loss:nan"))
    why = pf.triton_problem(ref, nan, None, cpu=False)
    assert why.startswith("train loss at step 10 differs from the torch run's by inf%")


def test_the_choice_file_is_what_mlp_kernel_auto_takes_on_that_gpu(tmp_path, monkeypatch):
    """The preflight's record_choice and the trainer's pick_mlp_kernel: a round trip through the file, per GPU model
    and activation; other GPUs' lines are kept; without a line (or with a broken file) auto stays torch."""
    path = tmp_path / "cache" / "asqu-golf" / "mlp_kernel.txt"
    monkeypatch.setattr(tg, "KERNEL_CHOICE_FILE", path)
    gpu = {"name": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setattr(tg.torch.cuda, "get_device_name", lambda device=None: gpu["name"])
    cuda = tg.torch.device("cuda", 0)

    def auto(act):
        return tg.pick_mlp_kernel(tg.Hyperparameters({"MLP_ACTIVATION": act}), cuda)

    assert auto("asqu") == ("torch", f"auto: no preflight choice for this device in {path}")  # no file yet
    pf.record_choice(path, "NVIDIA H200", {"asqu": {"chosen": "torch"}})
    pf.record_choice(path, gpu["name"], {"relu2": {"chosen": "torch"}, "asqu": {"chosen": "triton"}})
    pf.record_choice(path, gpu["name"], {"relu2": {"chosen": "triton"}})  # measured again: replaced
    assert path.read_text().splitlines() == ["NVIDIA H200/asqu=torch", "NVIDIA H100 80GB HBM3/asqu=triton",
                                             "NVIDIA H100 80GB HBM3/relu2=triton"]
    assert auto("asqu") == ("triton", f"auto: {path}") and auto("relu2")[0] == "triton"
    assert auto("leaky2")[0] == "torch"  # no line for it
    gpu["name"] = "NVIDIA H200"
    assert auto("asqu") == ("torch", f"auto: {path}")
    explicit = tg.pick_mlp_kernel(tg.Hyperparameters({"MLP_KERNEL": "torch", "MLP_ACTIVATION": "asqu"}), cuda)
    assert explicit == ("torch", "the MLP_KERNEL setting")
    path.write_text("NVIDIA H200/asqu=cuda\nno equals sign\n")  # broken: auto stays torch
    assert auto("asqu")[0] == "torch"
    assert tg.pick_mlp_kernel(tg.Hyperparameters({}), tg.torch.device("cpu"))[0] == "torch"  # CPU: no GPU model


def test_set_mlp_kernel_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pf.parse_args(["--set", "MLP_KERNEL=triton"])
    assert exit_info.value.code == 2 and "not MLP_KERNEL (the preflight runs every kernel)" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------
# a real CPU run of the script
# ----------------------------------------------------------------------------------------------------

TINY = ["MODEL_DIM=64", "MLP_MULT=2", "ROPE_DIMS=8", "TRAIN_SEQ_LEN=128", "EVAL_SEQ_LEN=128",
        "TRAIN_BATCH_TOKENS=2048", "BIGRAM_VOCAB_SIZE=256", "BIGRAM_DIM=32", "VE_DIM=32",
        "LATE_QAT_THRESHOLD=0.5"]  # 6 steps, warmdown 3: QAT switches on at step 5


@pytest.fixture(scope="module")
def mini_data(small_data, tmp_path_factory):
    """A cut of the session's small sample: one 40k-token train shard and its 4k-token val shard (fast evals)."""
    from shard_io import read_shard, write_shard

    src = Path(small_data["data_path"])
    out = tmp_path_factory.mktemp("mini") / "mini"
    out.mkdir()
    write_shard(out / "fineweb_train_000000.bin", read_shard(src / "fineweb_train_000000.bin")[:40_000])
    shutil.copy(src / "fineweb_val_000000.bin", out)
    return out, Path(small_data["tokenizer"])


def test_real_cpu_run(mini_data, tmp_path):
    """The script as a user runs it with --cpu: relu2 and asqu under MLP_KERNEL torch and triton (Triton's
    interpreter), the op-level check of the real kernels, the choice, the report and the JSON."""
    data, tok = mini_data
    report = tmp_path / "report.json"
    dropped = ("MLP_ACTIVATION", "ITERATIONS", "RUN_ID", "TRITON_INTERPRET")  # --cpu sets TRITON_INTERPRET itself
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(OMP_NUM_THREADS="1", MLP_ACTIVATION="leaky2", ITERATIONS="999")  # ignored: default config
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # where a GPU preflight would record its choice: not on CPU
    cmd = [sys.executable, str(REPO / "scripts" / "gpu_preflight.py"), "--cpu", "--steps", "6", "--warmup", "1",
           "--eval-stride", "64", "--data-path", str(data), "--tokenizer-path", str(tok), "--activations",
           "relu2,asqu", "--workdir", str(tmp_path), "--keep", "--json", str(report)]
    for item in TINY:
        cmd += ["--set", item]
    cwd = tmp_path / "user"
    cwd.mkdir()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    assert out.strip().splitlines()[-1].startswith("CPU-SMOKE-OK")
    assert list(cwd.iterdir()) == [] and not (tmp_path / "cache").exists()  # the user's folder is untouched
    assert "short for EMA_DECAY" not in out  # the preflight's own schedule does not warn about itself

    rep = json.loads(report.read_text())
    assert rep["ok"] and set(rep["runs"]) == {"relu2", "relu2/triton", "asqu", "asqu/triton"}
    have_new_lines = "recompiles_after_warmup" in (REPO / "train_gpt.py").read_text()
    for name, run in rep["runs"].items():
        act, kernel = (name.split("/") + ["torch"])[:2]
        log = Path(run["log"])
        assert log.is_file() and log.parent.parent.parent == Path(out.split("working folder: ")[1].split()[0])
        body = log.read_text().split(SEP)[-1]
        # every reported figure is the one in the run's own log
        assert f"mlp_activation:{act}" in body and "compile:0" in body  # --set/--activations won, shell ignored
        assert f"mlp_kernel:{kernel}\n" in body and run["mlp_kernel"] == kernel
        assert f"mlp_kernel_choice:{kernel} from the MLP_KERNEL setting" in body
        total = rf"^Total submission size int6\+(zstd|brotli|lzma): {run['submission_bytes']} bytes$"
        assert re.search(total, body, re.M)
        assert re.search(rf"final_int6_roundtrip_exact val_loss:\S+ val_bpb:{run['roundtrip_val_bpb']:.8f}", body)
        assert re.search(rf"final_int6_sliding_window_exact val_loss:\S+ val_bpb:{run['sliding_val_bpb']:.8f}", body)
        assert f"late_qat:enabled step:{run['late_qat_step']} " in body and run["late_qat_step"] == 5
        times = [0] + [int(t) for t in re.findall(r"^step:\d+/6 train_loss:\S+ train_time:(\d+)ms", body, re.M)]
        assert len(times) == 7 and run["timed_steps"] == 6
        deltas = sorted(b - a for a, b in zip(times, times[1:]))
        assert run["steady_step_ms"] == pytest.approx((deltas[2] + deltas[3]) / 2)
        assert run["step_ms_spread"] == [run["steady_step_ms"], deltas[0], deltas[-1]]
        assert (run["device"], run["attention"], run["peak_allocated_mib"]) == ("cpu", "sdpa", None)
        m = re.search(r"^recompiles_after_warmup:(\d+)$", body, re.M)
        assert run["recompiles_after_warmup"] == (int(m.group(1)) if m else None)
        m = re.search(r"^warmup_done time:(\S+)ms graphs:(\d+)$", body, re.M)
        assert run["warmup_ms"] == (float(m.group(1)) if m else None)
        if have_new_lines:
            assert m is not None
        # the text report shows the same figures
        assert f"{run['submission_bytes']:,} bytes" in out and f"{run['roundtrip_val_bpb']:.6f}" in out
    # the real Triton kernels agree with the torch path (op-level check and train losses), so neither is rejected;
    # in the interpreter they are ~10x slower, so torch is chosen for both
    for act in ("relu2", "asqu"):
        k = rep["kernels"][act]
        assert k["triton_rejected"] is None and k["chosen"] == "torch", k
        assert k["torch_ms"] == rep["runs"][act]["step_ms_spread"]
        assert k["triton_ms"] == rep["runs"][f"{act}/triton"]["step_ms_spread"]
    ratio = rep["runs"]["asqu"]["steady_step_ms"] / rep["runs"]["relu2"]["steady_step_ms"]
    assert rep["asqu_relu2_ratio"] == pytest.approx(ratio)
    assert f"chosen kernels: {ratio:.3f} (meaningless on CPU)" in out
    assert "not chosen" not in out and rep["choice_file"] is None
    assert "ignored from your environment (default config): ITERATIONS MLP_ACTIVATION" in out
