"""A finished 2-process run leaves no gloo thread alive when the interpreter shuts down (issue 9): such a thread,
releasing a collective's tensor, waits for the GIL, is ended by CPython and C++ aborts ("terminate called
without an active exception"). The abort itself is a rare race; the threads' presence is deterministic."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def test_no_gloo_thread_outlives_a_finished_two_process_run(sample_data):
    proc = subprocess.run([sys.executable, str(REPO / "scripts/stress_exit.py"), "-n", "1", "--thread-check",
                           "--data-path", sample_data["data_path"], "--tokenizer-path", sample_data["tokenizer"]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"gloo_threads_at_exit:rank0=0,rank1=0", proc.stdout), proc.stdout[-3000:]
    assert "N=1 failures=0 unfinished=0 runs_with_gloo_threads_at_exit=0" in proc.stdout
