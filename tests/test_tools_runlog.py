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
    assert run.complete and run.has_final and run.missing_final == []
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
    assert run.seed is None and not run.activation_logged and run.mlp_activation == "relu2"
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
    assert not run.has_final and not run.complete
    assert run.missing_final == [
        "Total submission size", "final_int6_roundtrip_exact", "final_int6_sliding_window_exact"
    ]
    assert run.post_ema_val_bpb is None and run.sliding_val_bpb is None
    assert "enable_gqa" in run.last_line
    assert run.to_json()["finished"] is False


def test_legacy_log_without_activation_line_zlib_and_no_sliding():
    run = runlog.parse_log(FIXTURES / "legacy_seed2024.log")
    assert run.mlp_activation == "relu2" and not run.activation_logged
    assert run.source_dump is None and run.header_blocks == 0
    assert run.compressor == "zlib" and run.submission_bytes == 15555017
    assert run.sliding_val_loss is None and run.roundtrip_exact
    assert run.has_final and not run.complete
    assert run.missing_final == ["final_int6_sliding_window_exact"]
    assert run.steps == 800 and not run.stopped_early


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
    assert run.complete and run.steps == 100 and run.sliding_val_bpb == 1.12278022


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
    # an explicit file is always taken, even a duplicate
    assert len(runlog.collect_runs([run_dir / "train.log", run_dir / "train_seed1337.log"])) == 2
    with pytest.raises(runlog.LogError, match="no such log file or folder"):
        runlog.collect_runs([tmp_path / "missing.txt"])


def test_separator_must_be_exactly_100_characters():
    source = "x = 1\n"
    text = source + "\n" + "=" * 99 + "\nseed:5\n"
    assert runlog.parse_text(text).source_dump is None
    text = source + "\n" + SEPARATOR + "\nseed:5\n"
    run = runlog.parse_text(text)
    assert run.source_dump == source and run.seed == 5
