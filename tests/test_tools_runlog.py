"""Tests of tools/runlog.py, the log parser every tool shares."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "logs"
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(FIXTURES))

import runlog  # noqa: E402
from synth_log import FAKE_SOURCE, SEPARATOR, header, make_log  # noqa: E402


def test_stored_fixtures_match_the_generator():
    # The stored logs are what synth_log.py writes; regenerate them if this fails.
    assert (FIXTURES / "train_gpt_fixture.py").read_text(encoding="utf-8") == FAKE_SOURCE
    assert (FIXTURES / "asqu_seed1337_full.txt").read_text(encoding="utf-8") == make_log(
        source=FAKE_SOURCE, torchrun_noise=True, steps=1200, val_every=400, train_every=100
    )


def test_full_log_with_source_dump_ignores_lookalike_lines():
    run = runlog.parse_log(FIXTURES / "asqu_seed1337_full.txt")
    # the source dump holds "...sliding_window_exact val_loss:9.99999999" and a
    # "step:500/20000 train_loss:9.9999" docstring line at column 0
    assert run.sliding_val_loss == 1.89576235 and run.sliding_val_bpb == 1.12278022
    assert all(p.train_loss < 9 for p in run.train_points)
    assert [p.step for p in run.val_points] == [0, 400, 800, 1200]
    assert run.seed == 1337 and run.world_size == 8 and run.grad_accum_steps == 1
    assert run.model_params == 27010652
    assert run.mlp_activation == "asqu" and run.activation_logged
    assert run.activation_settings == {
        "asqu_beta_init": "0.25", "asqu_lr": "0.001", "asqu_wd": "0.0",
        "asqu_sigmoid_beta": "0", "asqu_beta_grad_every": "1",
    }
    assert run.steps == 1200 and run.iterations == 20000
    assert run.step_avg_ms == 84.56
    assert run.stopped_early and run.stop_step == 1200
    assert run.post_ema_val_loss == 1.9222 and run.post_ema_val_bpb == 1.1385
    assert run.roundtrip_val_loss == 1.93592275 and run.roundtrip_val_bpb == 1.14656250
    assert run.submission_bytes == 15555017 and run.serialized_bytes == 15487414
    assert run.code_bytes == 67603 and run.compressor == "zstd"
    assert run.sliding_stride == 64
    assert run.finished and run.missing_final == [] and run.status == "finished"
    assert (run.post_ema_eval_ms, run.roundtrip_eval_ms, run.sliding_eval_ms) == (1960, 6344, 73642)
    assert run.final_eval_ms == 1960 + 6344 + 73642
    assert run.dataset == "fineweb10B_sp1024" and run.val_tokens == 62021632 and run.train_shards == 80
    assert run.torch_version == "2.13.0+cu128"  # from the version block of the header
    # logs from before the run_id / config lines: those facts are unknown, not invented
    assert run.run_id is None and run.config is None and run.config_fingerprint is None
    assert run.device is None and run.warmup_ms is None and run.recompiles_after_warmup is None
    # the source dump is recovered byte for byte, torchrun noise stripped
    assert run.source_dump == FAKE_SOURCE
    assert run.header_blocks == 2


def test_anchored_patterns_reject_fstring_lines_without_a_header():
    # No separator line at all: the parser sees every line, so only anchoring protects it.
    text = "\n".join([
        'log0(f"step:{step}/{args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} '
        'train_time:{training_time_ms:.0f}ms step_avg:{step_avg:.2f}ms")',
        "step:{step}/{args.iterations} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f} "
        "train_time:{t:.0f}ms step_avg:{a:.2f}ms",
        "seed:{args.seed}",
        "mlp_activation:{args.mlp_activation} asqu_lr:{args.asqu_lr}",
        "    final_int6_roundtrip_exact val_loss:1.00000000 val_bpb:1.00000000",
        "final_int6_roundtrip_exact val_loss:{q_val_loss:.8f} val_bpb:{q_val_bpb:.8f}",
        "Total submission size int6+zstd: {quant_file_bytes + code_bytes} bytes",
        "step:12/20000 train_loss:3.5000 train_time:1200ms step_avg:100.00ms trailing",
        "xstep:12/20000 train_loss:3.5000 train_time:1200ms step_avg:100.00ms",
    ])
    run = runlog.parse_text(text)
    assert run.val_points == [] and run.train_points == []
    assert run.seed is None and not run.activation_logged and run.mlp_activation == "unknown"
    assert run.roundtrip_val_loss is None and run.submission_bytes is None
    assert not runlog.looks_like_run(run)
    # ...while the real line is accepted
    run = runlog.parse_text(text + "\nstep:12/20000 train_loss:3.5000 train_time:1200ms step_avg:100.00ms\n")
    assert [(p.step, p.train_loss, p.train_time_ms, p.step_avg_ms) for p in run.train_points] == [
        (12, 3.5, 1200, 100.0)
    ]


def test_header_is_skipped_even_when_a_docstring_quotes_exact_log_lines():
    source = '"""Docs.\nseed:9999\nstep:5/10 val_loss:9.0000 val_bpb:9.0000 train_time:5ms step_avg:1.00ms\n"""\n'
    text = header(source) + "seed:7\nstep:3/10 val_loss:2.0000 val_bpb:1.2000 train_time:30ms step_avg:10.00ms\n"
    run = runlog.parse_text(text)
    assert run.seed == 7
    assert [(p.step, p.val_bpb) for p in run.val_points] == [(3, 1.2)]
    assert run.source_dump == source


def test_truncated_crashed_log():
    run = runlog.parse_log(FIXTURES / "relu2_seed42_crashed.txt")
    assert run.seed == 42 and run.mlp_activation == "relu2"
    assert run.steps == 300
    assert not run.finished and run.status == "truncated"
    assert run.missing_final == [
        "Total submission size", "final_int6_roundtrip_exact", "final_int6_sliding_window_exact"
    ]
    assert run.post_ema_val_bpb is None and run.sliding_val_bpb is None
    assert "enable_gqa" in run.last_line
    assert run.to_json()["finished"] is False


def test_legacy_log_without_activation_line_zlib_and_no_sliding():
    run = runlog.parse_log(FIXTURES / "legacy_seed2024.log")
    assert run.mlp_activation == "unknown" and not run.activation_logged
    assert run.source_dump is None and run.header_blocks == 0
    assert run.compressor == "zlib" and run.submission_bytes == 15555017
    assert run.sliding_val_loss is None and run.roundtrip_exact
    # no config line: the run is taken to have had the default EVAL_STRIDE=64, so its sliding
    # line is missing and it does not count as finished
    assert not run.finished and run.missing_final == ["final_int6_sliding_window_exact"]
    assert run.steps == 800 and not run.stopped_early


@pytest.mark.parametrize("compressor", ["zstd", "zlib", "brotli", "lzma"])
def test_every_compressor_of_the_size_lines(compressor):
    """EXPORT_COMPRESSOR=auto keeps the smallest of zstd, brotli and lzma; zlib: older runs without zstandard."""
    run = runlog.parse_text(f"Serialized model int6+{compressor}: 15000000 bytes\n"
                            f"Total submission size int6+{compressor}: 15100000 bytes\n")
    assert (run.compressor, run.serialized_bytes, run.submission_bytes) == (compressor, 15000000, 15100000)


def test_exact_lines_win_over_rounded_ones_in_any_order():
    text = "\n".join([
        "final_int6_roundtrip_exact val_loss:1.93592275 val_bpb:1.14656250",
        "final_int6_roundtrip val_loss:1.9359 val_bpb:1.1466 eval_time:6344ms",
        "final_int6_sliding_window val_loss:1.8958 val_bpb:1.1228 stride:64 eval_time:73642ms",
        "final_int6_sliding_window_exact val_loss:1.89576235 val_bpb:1.12278022",
    ])
    run = runlog.parse_text(text)
    assert (run.roundtrip_val_loss, run.roundtrip_val_bpb) == (1.93592275, 1.14656250)
    assert (run.sliding_val_loss, run.sliding_val_bpb) == (1.89576235, 1.12278022)
    rounded_only = runlog.parse_text(text.split("\n")[1])
    assert rounded_only.roundtrip_val_bpb == 1.1466 and not rounded_only.roundtrip_exact


def test_asqu_diag_lines_belong_to_the_most_recent_step():
    text = "\n".join([
        "step:0/100 val_loss:6.9000 val_bpb:4.1000 train_time:0ms step_avg:0.01ms",
        "asqu_diag layer:0 beta_mean:0.2500 beta_std:0.0000 beta_min:0.2500 beta_max:0.2500",
        "asqu_diag layer:1 beta_mean:0.2500 beta_std:0.0000 beta_min:0.2500 beta_max:0.2500",
        "step:50/100 train_loss:3.0000 train_time:500ms step_avg:10.00ms",
        "step:100/100 train_loss:2.0000 train_time:1000ms step_avg:10.00ms",
        "step:100/100 val_loss:2.1000 val_bpb:1.2400 train_time:1001ms step_avg:10.01ms",
        "asqu_diag layer:0 beta_mean:0.4100 beta_std:0.3000 beta_min:-0.2000 beta_max:1.1000",
        "asqu_diag layer:1 beta_mean:0.5300 beta_std:0.2000 beta_min:-0.1000 beta_max:1.4000",
    ])
    run = runlog.parse_text(text)
    assert [(b.step, b.layer) for b in run.asqu_diag] == [(0, 0), (0, 1), (100, 0), (100, 1)]
    final = run.final_betas()
    assert [(b.layer, b.mean, b.std, b.min, b.max) for b in final] == [
        (0, 0.41, 0.3, -0.2, 1.1), (1, 0.53, 0.2, -0.1, 1.4)
    ]
    # the last step line (the val line, written after the train line) gives step_avg and time
    assert run.steps == 100 and run.step_avg_ms == 10.01 and run.train_time_ms == 1001


def test_activation_alias_nan_stop_line_and_other_final_weights():
    text = "\n".join([
        "mlp_activation:leaky_relu2 mlp_leaky_slope:0.5",
        "step:10/20000 train_loss:nan train_time:1000ms step_avg:100.00ms",
        "step:11/20000 val_loss:nan val_bpb:nan train_time:1100ms step_avg:100.00ms",
        "stopping_early: wallclock_cap train_time:600036ms step:7096/20000",
        "DIAGNOSTIC post_swa val_loss:1.9300 val_bpb:1.1431 eval_time:1960ms",
    ])
    run = runlog.parse_text(text)
    assert run.final_weights == "swa" and run.post_ema_val_bpb == 1.1431
    assert run.mlp_activation == "leaky2" and run.activation_settings == {"mlp_leaky_slope": "0.5"}
    assert math.isnan(run.train_points[0].train_loss) and math.isnan(run.val_points[0].val_bpb)
    assert run.stopped_early and run.steps == 7096 and run.train_time_ms == 600036


def test_appended_runs_parse_as_the_last_run():
    first = make_log(seed=1, activation="relu2", source=FAKE_SOURCE, steps=100, val_every=50, train_every=50)
    second = make_log(seed=2, activation="asqu", source=FAKE_SOURCE, steps=200, val_every=50, train_every=50,
                      sliding=(1.5, 0.9))
    run = runlog.parse_text(first + second)
    assert run.seed == 2 and run.mlp_activation == "asqu" and run.steps == 200
    assert run.sliding_val_loss == 1.5
    assert run.header_blocks == 4 and run.source_dump != FAKE_SOURCE


def test_crlf_log_parses():
    text = make_log(steps=100, val_every=50, train_every=50).replace("\n", "\r\n")
    run = runlog.parse_text(text)
    assert run.finished and run.steps == 100 and run.sliding_val_bpb == 1.12278022


def test_collect_runs_folders_dedupe_and_skip(tmp_path):
    log = make_log(seed=1337, steps=100, val_every=50, train_every=50)
    run_dir = tmp_path / "asqu_seed1337"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "asqu_seed1337.txt").write_text(log)
    (run_dir / "train_seed1337.log").write_text(log)
    (run_dir / "train.log").write_text(log)
    (run_dir / "crashed-1" / "logs").mkdir(parents=True)
    (run_dir / "crashed-1" / "logs" / "asqu_seed1337.txt").write_text(log[:2000])
    (run_dir / "nohup.log").write_text("nothing to see here\n")
    (run_dir / "notes.txt").write_text(log)  # a .txt outside logs/ is not a log
    other = tmp_path / "relu2_seed1337" / "logs"
    other.mkdir(parents=True)
    (other / "relu2_seed1337.txt").write_text(make_log(seed=1337, activation="relu2", steps=100,
                                                        val_every=50, train_every=50))
    runs = runlog.collect_runs([tmp_path])
    assert sorted(str(r.path.relative_to(tmp_path)) for r in runs) == [
        "asqu_seed1337/train_seed1337.log", "relu2_seed1337/logs/relu2_seed1337.txt"
    ]
    assert {r.name for r in runs} == {"asqu_seed1337", "relu2_seed1337"}
    asqu = next(r for r in runs if r.mlp_activation == "asqu")
    assert sorted(str(p.relative_to(tmp_path)) for p in asqu.duplicates) == [
        "asqu_seed1337/logs/asqu_seed1337.txt", "asqu_seed1337/train.log"]
    # the same run named twice on the command line is one run too
    runs = runlog.collect_runs([run_dir / "train.log", run_dir / "train_seed1337.log"])
    assert len(runs) == 1 and runs[0].duplicates == [run_dir / "train.log"]
    with pytest.raises(runlog.LogError, match="no such log file or folder"):
        runlog.collect_runs([tmp_path / "missing.txt"])


def test_same_run_copied_across_folders_counts_once(tmp_path):
    # logs/X.txt in the working folder, train_seed1.log beside it, and a records/ copy
    text = make_log(seed=1, steps=60, val_every=30, train_every=30, config={"NUM_LAYERS": "4"}, run_id="r1")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "r1.txt").write_text(text)
    (tmp_path / "train_seed1.log").write_text(text)
    record = tmp_path / "records" / "track_non_record_16mb" / "2026-01-01_X"
    record.mkdir(parents=True)
    (record / "train_seed1.log").write_text(text)
    # a copy of the same run taken mid-run (a prefix of it, same run_id), under another name
    (tmp_path / "early_copy.log").write_text(text[: len(text) // 2])
    # a different run with the same seed and run_id is not a duplicate
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "train_seed1.log").write_text(
        make_log(seed=1, steps=60, val_every=30, train_every=30, config={"NUM_LAYERS": "5"}, run_id="r1"))
    runs = runlog.collect_runs([tmp_path])
    assert len(runs) == 2
    kept = next(r for r in runs if r.config == {"SEED": "1", "NUM_LAYERS": "4"})
    assert kept.path == tmp_path / "train_seed1.log" and kept.finished
    assert sorted(str(p.relative_to(tmp_path)) for p in kept.duplicates) == [
        "early_copy.log", "logs/r1.txt", "records/track_non_record_16mb/2026-01-01_X/train_seed1.log"]


def test_same_run_id_seed_and_settings_in_two_different_logs_is_refused(tmp_path):
    def write(rel, seed=1, config=None, **kw):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(make_log(seed=seed, steps=60, val_every=30, train_every=30, run_id="r1",
                                             config=config or {"NUM_LAYERS": "4"}, **kw))
        return tmp_path / rel

    first = write("a/train_seed1.log")
    second = write("b/train_seed1.log", step_avg_ms=90.0)  # the same run_id, seed and settings, other figures
    with pytest.raises(runlog.LogError) as err:
        runlog.load_runs([tmp_path])
    assert str(err.value) == (f"{first} and {second} hold the same run (run_id r1, seed 1, same settings) but differ: "
                              "counting both would count it twice; name or keep only one of them")
    assert len(runlog.load_runs([first])) == 1
    second.unlink()
    write("b/train_seed2.log", seed=2)  # run_id reused with another seed: another run
    write("c/train_seed1.log", config={"NUM_LAYERS": "5"})  # ... or other settings (another sweep): another run
    assert sorted((r.seed, r.config["NUM_LAYERS"]) for r in runlog.load_runs([tmp_path])) == [
        (1, "4"), (1, "5"), (2, "4")]


def test_files_that_are_not_run_logs_are_not_runs(tmp_path):
    (tmp_path / "README.md").write_text("step:1/2 train_loss:1.0000 train_time:1ms step_avg:1.00ms\n")
    (tmp_path / "pip.log").write_text("Collecting torch\nSuccessfully installed torch\n")
    (tmp_path / "seed_only.log").write_text("seed:5\nmlp_activation:asqu\n")  # no model_params / step line
    (tmp_path / "run.log").write_text("model_params:123\n")
    fixtures = tmp_path / "tests" / "fixtures" / "logs"
    fixtures.mkdir(parents=True)
    (fixtures / "legacy.log").write_text(make_log(seed=9, steps=20, val_every=10, train_every=10))
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.log").write_text(make_log(seed=8, steps=20, val_every=10, train_every=10))
    assert [r.path.name for r in runlog.collect_runs([tmp_path])] == ["run.log"]
    # named explicitly, the fixtures folder is searched
    assert [r.seed for r in runlog.collect_runs([fixtures])] == [9]
    assert sorted(r.seed for r in runlog.collect_runs([FIXTURES])) == [42, 1337, 2024]


def test_new_lines_of_the_current_train_gpt(tmp_path):
    config = {"DATA_PATH": "/data/my sample", "NUM_LAYERS": "4", "EVAL_STRIDE": "64"}
    text = make_log(seed=1, activation="relu2", steps=60, val_every=30, train_every=30, config=config,
                    run_id="relu2_seed1_20260101", device="cpu", attention="sdpa", world_size=2,
                    dataset="sample_sp1024", val_tokens=47360, eval_ms=(11, 22, 33))
    run = runlog.parse_text(text)
    assert run.run_id == "relu2_seed1_20260101" and run.name == "relu2_seed1_20260101"
    assert run.config == {"SEED": "1", "MLP_ACTIVATION": "relu2", "DATA_PATH": "/data/my sample",
                          "NUM_LAYERS": "4", "EVAL_STRIDE": "64"}
    assert run.config_text == "DATA_PATH='/data/my sample' SEED=1 MLP_ACTIVATION=relu2 NUM_LAYERS=4 EVAL_STRIDE=64"
    assert len(run.config_fingerprint) == 12
    assert (run.device, run.device_type, run.dtype, run.attention) == ("cpu", "cpu", "float32", "sdpa")
    assert (run.warmup_ms, run.warmup_graphs, run.recompiles_after_warmup) == (41234, 3, 0)
    assert (run.world_size, run.dataset, run.val_tokens) == (2, "sample_sp1024", 47360)
    assert (run.post_ema_eval_ms, run.roundtrip_eval_ms, run.sliding_eval_ms, run.final_eval_ms) == (11, 22, 33, 66)
    assert run.finished
    assert runlog.parse_text("config:\n").config == {}  # everything default
    record = run.to_json()
    assert record["config"]["NUM_LAYERS"] == "4" and record["dataset"] == "sample_sp1024"
    assert record["device"] == "cpu" and record["finished"] is True and record["final_eval_ms"] == 66


def test_warning_lines_are_kept_in_order_and_none_from_the_source_dump():
    body = ["WARNING: NUM_LAYER is not a setting of train_gpt.py and is ignored; did you mean NUM_LAYERS?",
            "run_id:x", "late_qat:enabled step:12 scale:0.1493",
            "WARNING: late QAT switched on 5% into training (the warmdown is longer than the run)",
            "peak memory allocated: 40123 MiB reserved: 41000 MiB"]
    dump = 'log(f"WARNING: quoted in the source {x}")\nprint("WARNING: also quoted")'
    run = runlog.parse_text("\n".join([dump, SEPARATOR, "Running PyTorch 2.9.1", SEPARATOR, *body]))
    assert run.warnings == [body[0], body[3]]
    assert (run.late_qat_step, run.peak_allocated_mib, run.peak_reserved_mib) == (12, 40123, 41000)
    assert run.compile is None and run.to_json()["warnings"] == run.warnings


def test_interrupted_run():
    text = make_log(seed=3, steps=100, val_every=50, train_every=10, config={}, crash_at_step=40,
                    interrupted="SIGTERM")
    run = runlog.parse_text(text)
    assert (run.interrupted, run.interrupted_step, run.iterations) == ("SIGTERM", 40, 20000)
    assert not run.finished and run.status == "interrupted (SIGTERM at step 40)"
    run = runlog.parse_text("model_params:5\ninterrupted: SIGINT\n")  # stopped before the first step
    assert run.interrupted == "SIGINT" and run.interrupted_step is None and run.status == "interrupted (SIGINT)"
    run = runlog.parse_text("model_params:5\nerror: FINAL_WEIGHTS=swa but no SWA snapshot was taken\n")
    assert run.error.startswith("FINAL_WEIGHTS=swa") and run.status == "failed"


@pytest.mark.parametrize("config, sliding, finished", [
    ({}, True, True),                          # default EVAL_STRIDE=64: the sliding line is promised
    ({}, False, False),                        # ...and missing: truncated
    ({"EVAL_STRIDE": "0"}, False, True),       # no sliding eval: the roundtrip line ends the run
    ({"EVAL_STRIDE": "32"}, False, False),
])
def test_finished_means_every_promised_final_line(config, sliding, finished):
    text = make_log(steps=40, val_every=20, train_every=20, config=config,
                    sliding=(1.9, 1.12) if sliding else None)
    run = runlog.parse_text(text)
    assert run.finished is finished
    assert run.missing_final == ([] if finished else ["final_int6_sliding_window_exact"])
    if config.get("EVAL_STRIDE") == "0":
        assert run.final_eval_ms == 1960 + 6344  # no sliding eval to add


def test_values_keep_their_logged_precision():
    text = "\n".join([
        "final_int6_roundtrip val_loss:1.9359 val_bpb:1.1460 eval_time:6344ms",
        "final_int6_sliding_window_exact val_loss:1.895762351234 val_bpb:1.12278020",
        "DIAGNOSTIC post_ema val_loss:1.9222 val_bpb:1.1385 eval_time:1960ms",
    ])
    run = runlog.parse_text(text)
    assert run.logged == {"roundtrip_val_loss": "1.9359", "roundtrip_val_bpb": "1.1460",
                          "sliding_val_loss": "1.895762351234", "sliding_val_bpb": "1.12278020",
                          "post_ema_val_loss": "1.9222", "post_ema_val_bpb": "1.1385",
                          "score_val_loss": "1.895762351234", "score_val_bpb": "1.12278020"}  # scored by sliding
    assert run.sliding_val_loss == 1.895762351234  # every logged digit


def test_differences_and_groups():
    def run(**kw):
        return runlog.parse_text(make_log(steps=40, val_every=20, train_every=20, **kw))

    a = run(seed=1, activation="relu2", config={"NUM_LAYERS": "4", "VAL_LOSS_EVERY": "0"})
    b = run(seed=2, activation="relu2", config={"NUM_LAYERS": "4", "TRAIN_LOG_EVERY": "5"})
    assert runlog.differences(a, b) == [] and runlog.group_key(a) == runlog.group_key(b)
    c = run(seed=1, activation="asqu", config={"NUM_LAYERS": "4", "ASQU_LR": "0.01"})
    assert runlog.differences(a, c) == []  # only the activation and its knobs differ
    d = run(seed=1, activation="asqu", config={"NUM_LAYERS": "3", "ASQU_LR": "0.02"}, world_size=2)
    assert runlog.differences(c, d) == ["NUM_LAYERS=4 vs NUM_LAYERS=3", "ASQU_LR=0.01 vs ASQU_LR=0.02",
                                        "world_size=8 vs world_size=2"]
    assert runlog.differences(a, d) == ["NUM_LAYERS=4 vs NUM_LAYERS=3", "world_size=8 vs world_size=2"]
    # logs without a config line: compared on what they show
    old1, old2 = run(seed=1, activation="relu2"), run(seed=2, activation="relu2", model_params=123)
    assert runlog.differences(old1, old2) == ["model_params=26993756 vs model_params=123"]
    assert runlog.group_key(old1) != runlog.group_key(old2)
    assert runlog.differences(old1, run(seed=3, activation="relu2", dataset="sample_sp1024")) == [
        "dataset=fineweb10B_sp1024 vs dataset=sample_sp1024"]
    assert "config line logged in one log but not in the other" in runlog.differences(a, old1)
    assert "fineweb10B_sp1024" in runlog.group_label(a) and a.config_fingerprint in runlog.group_label(a)


def test_strict_json():
    text = runlog.strict_json({"a": float("nan"), "b": [1.5, float("-inf")], "c": {"d": float("inf")}}, indent=None)
    assert text == '{"a": null, "b": [1.5, null], "c": {"d": null}}'


def test_separator_must_be_exactly_100_characters():
    source = "x = 1\n"
    text = source + "\n" + "=" * 99 + "\nseed:5\n"
    assert runlog.parse_text(text).source_dump is None
    text = source + "\n" + SEPARATOR + "\nseed:5\n"
    run = runlog.parse_text(text)
    assert run.source_dump == source and run.seed == 5


def test_damaged_unreadable_and_foreign_files_are_one_clear_refusal(tmp_path, monkeypatch):
    text = make_log(seed=1, steps=60, val_every=30, train_every=30)
    damaged = tmp_path / "runs" / "damaged.log"
    damaged.parent.mkdir()
    damaged.write_bytes(text.encode().replace(b"seed:1\n", b"seed:1\xff\n"))  # the seed line would be lost
    for given in (damaged, damaged.parent):  # named, or found in a folder
        with pytest.raises(runlog.LogError) as err:
            runlog.collect_runs([given])
        offset = text.encode().index(b"seed:1\n") + 6
        assert str(err.value) == (f"{damaged} is not UTF-8 text (byte 0xff at offset {offset}), so not a log "
                                  "train_gpt.py wrote or a damaged one; use an undamaged copy or leave it out")
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n binary, not a run")  # found in a folder and not a run: skipped
    (tmp_path / "runs" / "ok.log").write_text(text)
    assert [r.path.name for r in runlog.collect_runs([tmp_path])] == ["ok.log"]
    foreign = tmp_path / "notes.txt"
    foreign.write_text("just some notes\n")
    with pytest.raises(runlog.LogError, match=rf"^{foreign} is not a run log \(no model_params, step, run_id or error "
                                              r"line\); name a log train_gpt.py wrote$"):
        runlog.collect_runs([foreign])
    (tmp_path / "early.log").write_text("run_id:r9\nerror: NUM_LAYERS='x' is not a whole number\n")
    assert runlog.collect_runs([tmp_path / "early.log"])[0].status == "failed"  # a run that ended early is a run

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(runlog.LogError, match=r"^cannot read log .*ok.log: Permission denied; fix its permissions or "
                                              r"leave it out$"):
        runlog.collect_runs([tmp_path / "runs" / "ok.log"])


def test_crlf_copy_counts_once_and_another_tokenizer_is_not_pooled(tmp_path):
    text = make_log(seed=1, steps=60, val_every=30, train_every=30, config={})
    (tmp_path / "a.log").write_text(text)
    (tmp_path / "a_crlf.log").write_bytes(text.replace("\n", "\r\n").encode())
    runs = runlog.collect_runs([tmp_path])
    assert len(runs) == 1 and runs[0].tokenizer == "fineweb_1024_bpe.model" and len(runs[0].duplicates) == 1
    (tmp_path / "b.log").write_text(text.replace("tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model",
                                                 "tokenizer_path=/data/tok/other_1024.model byte_probes_ok:1"))
    a, b = runlog.collect_runs([tmp_path / "a.log", tmp_path / "b.log"])
    assert b.tokenizer == "other_1024.model" and a.config_fingerprint == b.config_fingerprint
    assert runlog.differences(a, b) == ["tokenizer=fineweb_1024_bpe.model vs tokenizer=other_1024.model"]
    assert len(runlog.groups([a, b])) == 2


def test_the_trainer_is_the_one_home_of_the_constants_the_tools_use():
    sys.path.insert(0, str(REPO))
    import train_gpt

    assert runlog.NON_RESULT_VARIABLES == set(train_gpt.NOT_FINGERPRINTED)
    assert runlog.trainer_constant("SIZE_LIMIT") == train_gpt.SIZE_LIMIT == 16_000_000
    assert runlog.trainer_constant("MODEL_SETTINGS") == train_gpt.MODEL_SETTINGS
    assert runlog.ACTIVATION_ALIASES == train_gpt.ACTIVATION_ALIASES == {"leaky_relu2": "leaky2"}
    assert set(runlog.ACTIVATION_ALIASES.values()) <= set(train_gpt.ACTIVATIONS)
    defaults = train_gpt.Hyperparameters({})
    assert runlog.trainer_constant("DATA_PATH") == defaults.data_path
    assert runlog.trainer_constant("TOKENIZER_PATH") == defaults.tokenizer_path
    with pytest.raises(LookupError, match="defines no NO_SUCH_NAME"):
        runlog.trainer_constant("NO_SUCH_NAME")


def test_keep_existing_moves_earlier_files_to_the_first_free_name(tmp_path):
    path = tmp_path / "summary.json"
    assert runlog.keep_existing(path) is None
    kept = tmp_path / "kept"
    for k, text in enumerate(("first", "second", "third")):
        path.write_text(text)
        assert runlog.keep_existing(path, kept) == kept / ("summary.json" + (f".{k}" if k else ""))
        assert not path.exists()
    assert [(p.name, p.read_text()) for p in sorted(kept.iterdir())] == [
        ("summary.json", "first"), ("summary.json.1", "second"), ("summary.json.2", "third")]
    path.write_text("in place")
    assert runlog.keep_existing(path) == tmp_path / "summary.json.1" and not path.exists()


def test_keep_existing_is_train_gpts_convention(tmp_path):
    sys.path.insert(0, str(REPO))
    import train_gpt

    for keep, folder in ((runlog.keep_existing, tmp_path / "tools"), (train_gpt.keep_existing, tmp_path / "trainer")):
        (folder / "kept").mkdir(parents=True)
        (folder / "kept" / "a.txt.1").write_text("taken")
        for text in ("one", "two", "three"):
            (folder / "a.txt").write_text(text)
            keep(folder / "a.txt", folder / "kept")
        (folder / "b").mkdir()
        keep(folder / "b")
    tree = [sorted((str(p.relative_to(root)), p.is_file() and p.read_text()) for p in root.rglob("*"))
            for root in (tmp_path / "tools", tmp_path / "trainer")]
    assert tree[0] == tree[1] and ("kept/a.txt.2", "two") in tree[0]


def test_a_log_of_no_known_family_is_read_by_its_named_finals():
    # mid-April style: no Hyperparameters: block, no final_int6 lines; "seed: N"; a compressor with a level
    text = "\n".join([
        "model_params:100", "seed: 7", "step:10/20 val_loss:2.0000 val_bpb:1.2000 train_time:600ms step_avg:60.00ms",
        "Serialized model int6+zstd-22: 900 bytes", "Total submission size int6+zstd-22: 1000 bytes",
        "Total submission size int8+zlib: 1000 bytes",  # an alias line repeating the size: the first counts
        "diagnostic quantized val_loss:2.10000000 val_bpb:1.25000000 eval_time:100000ms",
        "quantized_ttt val_loss:2.00000000 val_bpb:1.20000000 eval_time:300000ms", ""])
    run = runlog.parse_text(text)
    assert (run.family, run.finished, run.seed, run.compressor, run.submission_bytes) == ("other", True, 7, "zstd-22",
                                                                                        1000)
    assert (run.score, run.score_val_bpb, run.final_eval_ms) == ("quantized_ttt", 1.2, 300000)  # diagnostic left out
    assert run.mlp_activation == "unknown" and not run.activation_logged
    cut = runlog.parse_text(text.split("diagnostic")[0])
    assert cut.status == "truncated" and cut.missing_final == ["final_int6_roundtrip_exact",
                                                               "final_int6_sliding_window_exact"]
    early = runlog.parse_text(text.split("quantized_ttt")[0])
    assert early.status == "truncated" and early.missing_final == ["a final score line"]
