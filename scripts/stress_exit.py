#!/usr/bin/env python3
"""Stress test for a clean exit (issue 9): run N finished 2-process CPU runs of the tiny configuration and
count the ones that exit non-zero.

    python3 scripts/stress_exit.py                          # N=30, the repo's train_gpt.py
    python3 scripts/stress_exit.py -n 50 --script /tmp/copy/train_gpt.py
    python3 scripts/stress_exit.py -n 5 --thread-check      # also: gloo threads still alive at exit?

Each run is `python -m torch.distributed.run --standalone --nproc_per_node=2 SCRIPT` in a fresh temporary
working folder (logs/, runs/, final_model.* and train_seed*.log land there and are deleted afterwards, unless
the run failed and --keep-failed is given), with the tests' tiny configuration (tests/conftest.py TINY_ENV:
6 steps, EVAL_STRIDE=64 so the sliding-window eval runs too); --set NAME=VALUE changes it. A run is
finished when its log holds its last result line (final_int6_sliding_window_exact, or
final_int6_roundtrip_exact with EVAL_STRIDE=0); a failure is any non-zero exit.

The abort it looks for ("terminate called without an active exception", SIGABRT, exit -6 after every result
line) is a race at interpreter shutdown: a gloo worker thread still alive then, releasing a collective's
tensor, waits for the GIL and is ended by CPython (pthread_exit), which C++ turns into std::terminate. It is
rare (timing), so N runs can all pass before the fix. --thread-check shows the precondition deterministically:
each rank reports, from an atexit handler (the last to run before the interpreter shuts down), the gloo
threads (pt_gloo_runloop, gloo_tcp_loop) still alive; 0 on every rank means the race cannot happen. It runs
the trainer through a small wrapper (runpy), so keep it off when counting aborts.

Prints N, the number of failures and, for each failure, its exit code and the last lines of its stderr.
Exit status: 0 when every run exited 0, 1 otherwise. Run it under `nice -n 10` on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(REPO / "tests"))
from conftest import TINY_ENV  # noqa: E402  the tests' tiny configuration, with which the abort was seen

TINY = {**TINY_ENV, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # every feature on, sliding eval on

# --thread-check: run the trainer as __main__ after registering an atexit handler. atexit handlers run last
# registered first, so this one runs after every handler the trainer and torch register, just before the
# interpreter starts finalizing.
WRAPPER = '''import atexit, os, runpy, sys
def _report():
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{tid}/comm").read().strip())
        except OSError:
            pass
    gloo = sorted(n for n in names if "gloo" in n)
    print(f"stress_exit_threads rank:{os.environ.get('RANK', '0')} gloo_threads_at_exit:{len(gloo)} {gloo}",
          file=sys.stderr, flush=True)
atexit.register(_report)
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''
THREADS_RE = re.compile(r"stress_exit_threads rank:(\d+) gloo_threads_at_exit:(\d+)")
# torchrun's failure report: "rank : 1 (local_rank: 1)" then "exitcode : -6 (pid: 123)  (SIGABRT)"
WORKER_RE = re.compile(r"rank\s*:\s*(\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)[^\n]*?(\(SIG\w+\))?\n")
KEY_LINES = ("terminate called", "Segmentation fault")


def describe_failure(err: str, tail: int) -> list[str]:
    """The workers' exit codes from torchrun's report, the telling lines, then the last `tail` stderr lines."""
    workers = sorted({(int(r), int(c), sig or "") for r, c, sig in WORKER_RE.findall(err)})
    out = ["worker exit codes: " + (", ".join(f"rank{r}={c}{' ' + s if s else ''}" for r, c, s in workers)
                                    or "none reported")]
    lines = err.splitlines()
    keys = [ln for ln in lines if any(k in ln for k in KEY_LINES)]
    out += [f"  {ln}" for ln in dict.fromkeys(keys)]
    out += ["last stderr lines:"] + [f"  {ln}" for ln in lines[-tail:]]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=30, help="number of runs (default 30)")
    ap.add_argument("--script", default=str(REPO / "train_gpt.py"), help="trainer to run (default: the repo's)")
    ap.add_argument("--data-path", default=str(REPO / "data/datasets/sample_sp1024"))
    ap.add_argument("--tokenizer-path", default=str(REPO / "data/tokenizers/sample_1024_bpe.model"))
    ap.add_argument("--nproc", type=int, default=2, help="processes per run (default 2)")
    ap.add_argument("--tail", type=int, default=15, help="stderr lines shown per failure (default 15)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds before a run is killed (default 600)")
    ap.add_argument("--keep-failed", action="store_true", help="keep the working folder of a failed run")
    ap.add_argument("--thread-check", action="store_true",
                    help="report the gloo threads each rank still has when the interpreter shuts down")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override or add an environment variable for every run (repeatable)")
    opts = ap.parse_args()

    script = Path(opts.script).resolve()
    data = Path(opts.data_path).resolve()
    if not script.is_file():
        print(f"error: no trainer at {script}", file=sys.stderr)
        return 2
    if not any(data.glob("fineweb_val_*.bin")):
        print(f"error: no dataset at {data}; build it with `python3 data/build_sample.py`", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if k not in TINY}
    env.update(TINY, DATA_PATH=str(data), TOKENIZER_PATH=str(Path(opts.tokenizer_path).resolve()))
    for item in opts.set:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    mark = "final_int6_sliding_window_exact" if env.get("EVAL_STRIDE", "0") != "0" else "final_int6_roundtrip_exact"

    print(f"stress_exit: {opts.runs} runs of {script} with {opts.nproc} processes"
          + (" (thread check on)" if opts.thread_check else ""), flush=True)
    failures, unfinished, exposed = [], 0, 0
    t_all = time.perf_counter()
    for i in range(opts.runs):
        work = Path(tempfile.mkdtemp(prefix=f"stress_exit_{i:03d}_"))
        run_id = f"stress_exit_{i:03d}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={opts.nproc}"]
        if opts.thread_check:
            (work / "stress_exit_wrapper.py").write_text(WRAPPER)
            cmd += [str(work / "stress_exit_wrapper.py"), str(script)]
        else:
            cmd += [str(script)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=work, env=dict(env, RUN_ID=run_id), capture_output=True, text=True,
                                  timeout=opts.timeout)
            rc, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc = "timeout"
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        secs = time.perf_counter() - t0
        log = work / "logs" / f"{run_id}.txt"
        # a result line, not the same words in the source code the log starts with
        finished = log.is_file() and re.search(rf"^{mark} ", log.read_text(encoding="utf-8", errors="replace"), re.M)
        unfinished += not finished
        line = f"run {i + 1}/{opts.runs}: exit {rc} finished:{int(finished)} {secs:.1f}s"
        if opts.thread_check:
            counts = {int(r): int(n) for r, n in THREADS_RE.findall(err)}
            exposed += any(counts.values())
            line += " gloo_threads_at_exit:" + (",".join(f"rank{r}={n}" for r, n in sorted(counts.items())) or "?")
        print(line, flush=True)
        if rc != 0:
            failures.append((i + 1, rc, finished, describe_failure(err, opts.tail), work))
        if rc == 0 or not opts.keep_failed:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nN={opts.runs} failures={len(failures)} unfinished={unfinished}"
          + (f" runs_with_gloo_threads_at_exit={exposed}" if opts.thread_check else "")
          + f" ({time.perf_counter() - t_all:.0f}s)")
    for run, rc, finished, details, work in failures:
        print(f"\n--- run {run}: exit code {rc} (torchrun), all result lines written: {'yes' if finished else 'no'}"
              + (f", folder kept: {work}" if opts.keep_failed else ""))
        for text in details:
            print(f"    {text}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
