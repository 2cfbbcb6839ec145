"""The challenge's own record folders, one of each period (../shared/records): every log family read, the audit's
verdict, the per-seed figures and the claimed score. The expected numbers were read from the logs by hand (grep);
the folders' README says what was changed (source dumps removed). Skipped where ../shared/records is absent."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDS = Path(__import__("os").environ.get("ASQU_GOLF_RECORDS", REPO.parent / "shared" / "records"))
sys.path.insert(0, str(REPO / "tools"))

import package  # noqa: E402
import plots  # noqa: E402
import runlog  # noqa: E402
import summarize  # noqa: E402

pytestmark = pytest.mark.skipif(not RECORDS.is_dir(), reason=f"{RECORDS} (the sample record folders) is absent")
BASELINE, SLIDING = "2026-03-17_NaiveBaseline", "2026-03-19_SlidingWindowEval"
MARCH20 = "2026-03-20_11L_XSA4_EMA_Int6_MLP3x_WD04_1.1271"
MARCH22 = "2026-03-22_11L_EMA_GPTQ-lite_warmdown3500_QAT015_1.1233"
LEAKY, APRIL5 = "2026-03-23_LeakyReLU_LegalTTT_ParallelMuon", "2026-04-05_SP8192_GPTQ-Embeddings_SDClip_Loop45x2"
APRIL29 = "2026-04-29_SmearGateBOSFix_3Seed_1.06141"

# folder: (family, score line, {log: (seed, score val_bpb, score val_loss, total bytes, train_time ms, steps)})
SEEDS = {
    BASELINE: ("int8_zlib", "final_int8_zlib_roundtrip", {
        "train.log": (1337, 1.22436570, 2.07269931, 15863489, 600038, 13780)}),
    SLIDING: ("int8_zlib", "final_int8_zlib_roundtrip", {
        "train.log": (1337, 1.19250007, 2.01348383, 15874829, 600028, 13450)}),
    MARCH20: ("train_gpt", "final_int6_sliding_window", {
        "train_seed1337.log": (1337, 1.12707468, 1.90301335, 15534645, 600021, 7103),
        "train_seed2025.log": (2025, 1.12835808, 1.90518030, 15649516, 600043, 7107),
        "train_seed42.log": (42, 1.12862486, 1.90563076, 15745973, 600017, 7094)}),
    MARCH22: ("train_gpt", "final_int6_sliding_window", {
        "train_seed1337.log": (1337, 1.12278022, 1.89576235, 15555017, 600036, 7096),
        "train_seed2024.log": (2024, 1.12356596, 1.89708903, 15586805, 600070, 7099),
        "train_seed42.log": (42, 1.12360306, 1.89715168, 15540675, 600059, 7103)}),
    LEAKY: ("train_gpt", "legal_ttt", {
        "train_seed1337.log": (1337, 1.11922988, 1.88976776, 15977386, 600128, 7179),
        "train_seed2025.log": (2025, 1.11888882, 1.88919190, 15990006, 600110, 7193),
        "train_seed42.log": (42, 1.12002032, 1.89110239, 15876510, 600128, 7182)}),
    APRIL5: ("hyperparameters", "quantized_sliding_window", {
        "train_seed1.log": (1, 1.08553523, 2.80405024, 15987547, 588138, 4988),
        "train_seed1234.log": (1234, 1.08462640, 2.80170263, 15983318, 588024, 4989),
        "train_seed1337.log": (1337, 1.08554182, 2.80406725, 15984924, 588041, 4992),
        "train_seed2025.log": (2025, 1.08577632, 2.80467299, 15983617, 588097, 4989),
        "train_seed42.log": (42, 1.08664424, 2.80691494, 15988983, 588136, 4986)}),
    APRIL29: ("hyperparameters", "quantized_ttt_phased", {
        "train_seed42_pr1851_original.log": (42, 1.06128183, 2.32247803, 15952086, 599623, 4900),
        "train_seed314_original.log": (314, 1.06086831, 2.32157310, 15952419, 599613, 4960),
        "train_seed1234_original.log": (1234, 1.06220261, 2.32449303, 15952690, 599544, 4958),
        "train_seed42_rerun_gptq8s.log": (42, 1.06083288, 2.32149556, 15949701, 592054, 4942),
        "train_seed314_rerun_gptq8s.log": (314, 1.06090748, 2.32165882, 15951777, 592045, 4921),
        "train_seed1234_rerun_gptq8s.log": (1234, 1.06248776, 2.32511706, 15951968, 592065, 4902)}),
}
# folder: the audit's faults (each a true one, with its evidence); none = PASS
FAULTS = {
    BASELINE: ["train.log: val_tokens is 63,779,840; the record track needs val_tokens 62,021,632",
               "needs at least 3 distinct seeds to show significance; got 1"],
    SLIDING: ["needs at least 3 distinct seeds to show significance; got 1"],
    MARCH20: [], MARCH22: [], LEAKY: [], APRIL29: [],
    APRIL5: [f"train_seed{seed}.log: train_shards is 128; the record track trains on the published 80"
             for seed in (1, 42, 1234, 1337, 2025)],
}
NOT_FAULTS = ("truncated", "does not show seed", "equals no log's figure", "not byte-identical", "duplicate")


def audit(capsys, folder: Path, *extra: str) -> tuple[int, list[str], list[str]]:
    status = package.main(["--audit", str(folder), *extra])
    out = capsys.readouterr().out.splitlines()
    pick = lambda kind: [line.split(f"audit: {kind}: ", 1)[1] for line in out if f"audit: {kind}: " in line]  # noqa
    return status, pick("fault"), pick("note")


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_log_family_gives_its_per_seed_figures(name):
    family, score, logs = SEEDS[name]
    runs = {run.path.name: run for run in runlog.collect_runs([RECORDS / name])}
    assert set(runs) == set(logs)  # a train.log copy of a seed's log counted once
    for log, (seed, bpb, loss, size, train_ms, steps) in logs.items():
        run = runs[log]
        assert (run.family, run.score, run.finished, run.missing_final) == (family, score, True, [])
        assert (run.seed, run.score_val_bpb, run.score_val_loss) == (seed, bpb, loss)
        assert (run.submission_bytes, run.train_time_ms, run.steps) == (size, train_ms, steps)
        assert run.mlp_activation == "unknown" and run.source_dump is None  # none states it; dumps removed


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_audit_verdict_of_each_period(capsys, name):
    status, faults, notes = audit(capsys, RECORDS / name)
    assert status == (1 if FAULTS[name] else 0)
    assert len(faults) == len(FAULTS[name]) and all(any(want in f for f in faults) for want in FAULTS[name]), faults
    assert not [f for f in faults if any(word in f for word in NOT_FAULTS)]
    assert any(note.startswith(f"score line: {SEEDS[name][1]}_exact (submission.json's val_bpb") for note in notes)


def test_the_claim_picks_the_original_runs_and_sets_the_reruns_apart(capsys):
    status, faults, notes = audit(capsys, RECORDS / APRIL29)
    assert status == 0 and faults == []
    assert "submission.json claims val_bpb 1.06145: the mean of 3 logs' quantized_ttt_phased" in notes
    assert sum("a rerun of seed" in note and "shown apart and not counted" in note for note in notes) == 3
    runs = runlog.collect_runs([RECORDS / APRIL29])
    counted = sorted(r.path.name for r in runs if r.counted)
    assert counted == ["train_seed1234_original.log", "train_seed314_original.log", "train_seed42_pr1851_original.log"]
    # by hand: (1.06128183 + 1.06086831 + 1.06220261) / 3; the reruns' (1.06083288 + 1.06090748 + 1.06248776) / 3
    assert runlog.mean_std(r.score_val_bpb for r in runs if r.counted)[0] == pytest.approx(1.06145092, abs=1e-8)
    assert {r.rerun_of.name for r in runs if r.rerun_of} == set(counted)


def test_summaries_and_against_give_the_claimed_mean(capsys):
    assert summarize.main([str(RECORDS / APRIL29)]) == 0
    lines = capsys.readouterr().out.splitlines()
    means = [line for line in lines if line.startswith("unknown mean")]
    assert "1.06145092" in means[0].split() and "n=3" in means[0]  # the original runs
    assert "n=0 of 3 (reruns and EVAL_ONLY re-scores are not counted)" in means[1]  # the reruns, apart
    assert "score line: quantized_ttt_phased_exact (submission.json's val_bpb 1.06145" in lines[-1]
    sota = package.scored_runs([str(RECORDS / APRIL29)])
    assert len(sota) == 3 and runlog.mean_std(r.score_val_bpb for r in sota)[0] == pytest.approx(1.06145092, abs=1e-8)
    # the March 23 record (its legal TTT mean 1.11937967 by hand) against the April 29 one, through --against
    status, faults, notes = audit(capsys, RECORDS / LEAKY, "--against", str(RECORDS / APRIL29))
    assert any("README rule against 3 SOTA log(s) scored by quantized_ttt_phased_exact" in n for n in notes)
    assert any("not met: mean 1.11937967 here vs 1.06145092" in f for f in faults)


def doctored(tmp_path: Path, name: str, **claim) -> Path:
    folder = tmp_path / name
    shutil.copytree(RECORDS / name, folder)
    record = json.loads((folder / "submission.json").read_text())
    (folder / "submission.json").write_text(json.dumps({**record, **claim}))
    return folder


def test_true_faults_stay_faults_with_their_evidence(capsys, tmp_path):
    folder = doctored(tmp_path, APRIL29, val_bpb=1.0601)  # no one-log-per-seed choice gives it
    status, faults, _ = audit(capsys, folder)
    assert status == 1 and any("val_bpb 1.0601 equals no log's figure" in f and "whichever log of each seed" in f
                               for f in faults)
    assert any("seed 42 appears twice" in f for f in faults)  # nothing chose between the original and the rerun
    folder = doctored(tmp_path / "code", MARCH20)
    (folder / "train_gpt.py").write_text("x" * 66_000)
    status, faults, notes = audit(capsys, folder)
    assert "bytes_code 66,133 but train_gpt.py has 66,000 bytes" in "\n".join(faults)
    assert "Code size (66,133 bytes) differs from the script to package (66,000 bytes)" in "\n".join(faults)
    assert not any("not byte-identical" in f for f in faults)  # no dump is not a wrong dump
    (folder / "train_gpt.py").write_text("x" * 66_133)
    status, faults, notes = audit(capsys, folder)
    assert status == 0 and sum("no source dump; matched by code size only" in n for n in notes) == 3
    log = folder / "train_seed42.log"
    log.write_text(log.read_text().replace("eval_time:84494ms", "eval_time:584494ms"))
    status, faults, _ = audit(capsys, folder)
    assert any("train_seed42.log: eval_time of the final evaluations is 615.3 s" in f for f in faults)


def test_a_truncated_april_log_lacks_its_own_formats_end_lines(tmp_path):
    text = (RECORDS / APRIL29 / "train_seed314_original.log").read_text()
    run = runlog.parse_text(text.split("Serialized model quantized")[0])
    assert run.status == "truncated" and run.seed == 314
    assert run.missing_final == ["Total submission size", "a final score line",
                                 "a test-time-training final (..._ttt...)"]


EVAL_ONLY_LOG = """model_params:26993756
eval_only: artifact:/runs/x/final_model.int6.ptz sha256:{sha} bytes:15487414
final_int6_roundtrip_exact val_loss:1.93592275 val_bpb:1.14656250
final_int6_sliding_window val_loss:1.8958 val_bpb:1.1228 stride:64 eval_time:73000ms
final_int6_sliding_window_exact val_loss:1.89576235 val_bpb:1.12278022
""".format(sha="ab" * 32)


def test_eval_only_logs_are_rescores_never_training_runs(capsys, tmp_path):
    shutil.copytree(RECORDS / MARCH22, tmp_path / "runs")
    (tmp_path / "runs" / "logs").mkdir()
    (tmp_path / "runs" / "logs" / "rescore.txt").write_text(EVAL_ONLY_LOG)
    run = runlog.parse_text(EVAL_ONLY_LOG)
    assert (run.family, run.finished, run.counted, run.status) == ("eval_only", True, False,
                                                                   "finished (EVAL_ONLY re-score)")
    assert summarize.main([str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "finished (EVAL_ONLY re-score)" in out
    assert "n=0 of 1 (reruns and EVAL_ONLY re-scores are not counted)" in out
    assert "1.12331641" in out  # the record's three seeds, their mean as before
    assert plots.write_plots([run], tmp_path / "plots") == []  # nothing of training to plot
    assert "EVAL_ONLY re-score, not a training run; not plotted" in capsys.readouterr().err
    problems, _ = package.check_runs([run], None, None, "non_record_16mb")
    assert problems == ["<text> is an EVAL_ONLY re-score of /runs/x/final_model.int6.ptz, not a training run; "
                        "not counted"]


def test_one_log_claim_says_its_number_once(capsys):
    _, _, notes = audit(capsys, RECORDS / BASELINE)
    assert "submission.json claims val_bpb 1.2243657: seed 1337's final_int8_zlib_roundtrip (train.log)" in notes
    assert "submission.json claims val_loss 2.07269931: seed 1337's final_int8_zlib_roundtrip (train.log)" in notes
    assert not any("not the mean" in note for note in notes)
