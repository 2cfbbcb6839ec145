"""The named configurations, one file each: tiny.env (the tests' runs, seconds on CPU), cpu_small.env (the
quickstart's model, used by the preflight's --cpu runs and the export/eval benchmark) and mlp_heavy.env (the step
benchmark's model). "default" is train_gpt.py's own defaults: no file. The files are plain NAME=value lines, sourced
by bash (scripts/quickstart.sh) and read here.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def named_config(name: str) -> dict[str, str]:
    """The settings of configs/<name>.env, in file order; blank lines and # comments are skipped."""
    settings = {}
    for line in (HERE / f"{name}.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings
