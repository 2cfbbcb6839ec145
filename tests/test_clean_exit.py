"""A finished 2-process run leaves no gloo thread alive when the interpreter shuts down (issue 9): such a thread,
releasing a collective's tensor, waits for the GIL, is ended by CPython and C++ aborts ("terminate called
without an active exception"). The abort itself is a rare race; the threads' presence is deterministic: each rank
reports, from an atexit handler (the last to run before the interpreter shuts down), the gloo threads
(pt_gloo_runloop, gloo_tcp_loop) still alive; 0 on every rank means the race cannot happen."""
from __future__ import annotations

import re
import shutil
import sys

import numpy as np

from conftest import REPO, THREAD_CHECK
from shard_io import read_shard, write_shard

sys.path.insert(0, str(REPO / "tools"))
import runlog  # noqa: E402

# torchrun's failure report: "rank : 1 (local_rank: 1)" then "exitcode : -6 (pid: 123)  (SIGABRT)"
WORKER = re.compile(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def run_with_thread_check(run_train, tmp_path, **overrides):
    """A 2-process tiny run under the thread check: (process, {rank: gloo threads at exit}, its log)."""
    wrapper = tmp_path / "thread_check.py"
    wrapper.write_text(THREAD_CHECK)
    proc = run_train(nproc=2, script=[str(wrapper), str(REPO / "train_gpt.py")], check=False, timeout=900,
                     RUN_ID="clean_exit", **overrides)
    return proc, thread_counts(proc.stderr), runlog.parse_log(tmp_path / "logs" / "clean_exit.txt")


def thread_counts(stderr: str) -> dict[int, int]:
    return {int(rank): int(n) for rank, n in re.findall(r"thread_check rank:(\d+) gloo_threads_at_exit:(\d+)", stderr)}


def test_no_gloo_thread_outlives_a_finished_two_process_run(two_process_run):
    folder, proc = two_process_run  # the session's 2-process run, under THREAD_CHECK
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = runlog.parse_log(folder / re.search(r"^logs: (\S+)$", proc.stdout, re.M).group(1))
    assert log.finished, log.missing_final
    assert thread_counts(proc.stderr) == {0: 0, 1: 0}, proc.stderr[-3000:]


def test_no_gloo_thread_outlives_an_error_mid_run(run_train, small_data, tmp_path):
    """The same on an error path (issue 23): a bad token id in a later train shard is a ConfigError raised on both
    ranks after the process group started; the group and its threads are released before the exit."""
    data = tmp_path / "data"
    shutil.copytree(small_data["data_path"], data)
    shard = sorted(data.glob("fineweb_train_*.bin"))[-1]
    tokens = read_shard(shard).astype(np.int64)
    tokens[3] = 5000
    write_shard(shard, tokens.astype(np.uint16))
    proc, counts, _ = run_with_thread_check(run_train, tmp_path, DATA_PATH=str(data), ITERATIONS=200)
    exits = {int(r): int(c) for r, c in WORKER.findall(proc.stderr)}
    # Both ranks raise the error; whichever exits first (exit code 2, the trainer's error exit) is torchrun's root
    # cause, and torchrun may stop the other (SIGTERM, -15) before it reports. Which one wins is a race.
    failed = [rank for rank, code in exits.items() if code == 2]
    assert failed and set(exits.values()) <= {2, -15}, proc.stderr[-3000:]
    assert all(counts.get(rank) == 0 for rank in failed), proc.stderr[-3000:]
    assert counts and set(counts.values()) == {0}, proc.stderr[-3000:]
