"""scripts/h100_campaign.sh: syntax, and the commands its dry run (DRY_RUN=1) prints, in order."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "h100_campaign.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def dry_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("OUT", "SEEDS", "ACTIVATIONS", "NPROC", "WALLCLOCK", "TRAIN_SHARDS", "VAL_LOSS_EVERY",
                            "SKIP_PREFLIGHT", "SKIP_DOWNLOAD", "PYTHON")}
    environ.update(DRY_RUN="1", **env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ,
                          cwd="/", timeout=60)


def commands(stdout: str) -> list[list[str]]:
    """The printed commands ('+ ...' lines) as argument lists; '> FILE' kept as two items."""
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def test_bash_syntax():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dry_run_prints_the_campaign_in_order(tmp_path):
    out = tmp_path / "campaign out"  # a space, to check the quoting
    result = dry_run(str(out))
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert cmds[0] == ["python3", "scripts/gpu_preflight.py"]
    assert cmds[1] == ["python3", "data/cached_challenge_fineweb.py", "--variant", "sp1024", "--train-shards", "80"]
    assert cmds[2] == ["python3", "tools/sweep.py", "--activations", "relu2,leaky2,asqu", "--seeds", "1337,42,2025",
                       "--out", str(out), "--nproc", "8", "--wallclock", "600", "--no-plots"]
    assert cmds[3] == ["python3", "tools/summarize.py", str(out), ">", f"{out}/summary.txt"]
    assert cmds[4] == ["python3", "tools/summarize.py", "--json", str(out), ">", f"{out}/summary.json"]
    assert cmds[5:8] == [
        ["python3", "tools/compare.py", "relu2", "asqu", str(out), ">", f"{out}/compare_asqu_vs_relu2.txt"],
        ["python3", "tools/compare.py", "leaky2", "asqu", str(out), ">", f"{out}/compare_asqu_vs_leaky2.txt"],
        ["python3", "tools/compare.py", "relu2", "leaky2", str(out), ">", f"{out}/compare_leaky2_vs_relu2.txt"],
    ]
    assert cmds[8] == ["python3", "tools/plots.py", str(out), "--out", f"{out}/plots",
                       "--state-dict", f"{out}/asqu_seed1337",
                       "--state-dict", f"{out}/asqu_seed42",
                       "--state-dict", f"{out}/asqu_seed2025"]
    assert len(cmds) == 9
    assert not out.exists(), "a dry run must not create anything"


def test_dry_run_settings(tmp_path):
    result = dry_run(PYTHON="py", SEEDS="1,2", NPROC="4", WALLCLOCK="300", TRAIN_SHARDS="10",
                     VAL_LOSS_EVERY="1000", SKIP_PREFLIGHT="1", OUT=str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert cmds[0] == ["py", "data/cached_challenge_fineweb.py", "--variant", "sp1024", "--train-shards", "10"]
    sweep = cmds[1]
    assert sweep[:2] == ["py", "tools/sweep.py"]
    assert sweep[sweep.index("--seeds") + 1] == "1,2" and sweep[sweep.index("--nproc") + 1] == "4"
    assert sweep[sweep.index("--wallclock") + 1] == "300" and sweep[sweep.index("--out") + 1] == str(tmp_path / "o")
    assert sweep[sweep.index("--env") + 1] == "VAL_LOSS_EVERY=1000"
    assert not any("gpu_preflight" in " ".join(c) for c in cmds)


def test_preflight_failure_stops_everything(tmp_path):
    """Not a dry run: a preflight that fails (here: a PYTHON that always fails) stops before any download."""
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\necho \"fakepython $*\" >> \"$(dirname \"$0\")/calls\"\nexit 3\n")
    fake.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    environ["PYTHON"] = str(fake)
    result = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "o")], capture_output=True, text=True,
                            env=environ, timeout=60)
    assert result.returncode == 3
    assert "preflight failed" in result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["fakepython scripts/gpu_preflight.py"]
    assert not (tmp_path / "o").exists()


def test_needs_two_activations():
    result = dry_run(ACTIVATIONS="asqu")
    assert result.returncode == 2 and "at least two" in result.stderr
