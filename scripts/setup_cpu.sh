#!/usr/bin/env bash
# Installs what the trainer, tools and tests need on a CPU machine.
# torch: the CPU wheel torch==2.13.0, and only when no torch is importable (a GPU machine's torch is left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "setup: no torch found, installing the CPU build torch==2.13.0"
  "$PY" -m pip install -q torch==2.13.0
fi
# requirements.txt names torch for submissions; here the torch above (or the GPU machine's) is kept as it is
grep -v '^torch' requirements.txt | "$PY" -m pip install -q -r /dev/stdin -r requirements-dev.txt
"$PY" -c "import torch; print(f'setup: torch {torch.__version__}, cuda available: {torch.cuda.is_available()}')"
