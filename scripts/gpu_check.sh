#!/usr/bin/env bash
# The one prepared GPU check (README.md, "The Triton kernels"): `bash scripts/gpu_check.sh [OUT]`, about 10 minutes
# on one GPU. Each part (environment, preflight + preflight.json: the kernel choice, bench_activation: torch vs Triton
# at the record's per-GPU shape) stops at its time limit, the next still runs, and what it prints is also written to
# OUT/<part>.txt (default OUT results/gpu-<UTC date>/); then commit OUT.
# Settings: PYTHON (python3), BUDGET_S (600: the whole check's seconds). Without a CUDA GPU: one line, exit 1.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-600}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA GPU visible to torch here; this check needs one (the CPU test suite covers the rest)" >&2
    exit 1
fi
OUT=${1:-results/gpu-$(date -u +%F)}
mkdir -p "$OUT" || exit 1
START=$SECONDS

# part NAME LIMIT_S COMMAND...: runs COMMAND for at most LIMIT_S (and what is left of the budget), printing and
# writing OUT/NAME.txt; an earlier file of that name is kept as NAME.txt.1, .2, ...
part() {
    local name=$1 limit=$2 file="$OUT/$1.txt" n=1
    shift 2
    local left=$((BUDGET_S - (SECONDS - START)))
    ((limit > left)) && limit=$left
    while [[ -e $file.$n ]]; do n=$((n + 1)); done
    [[ -e $file ]] && mv "$file" "$file.$n"
    if ((limit < 20)); then
        echo "gpu_check: $name skipped: the ${BUDGET_S} s budget is spent" | tee "$file"
        return
    fi
    echo "+ $* (limit ${limit} s)" | tee "$file"
    timeout "$limit" "$@" 2>&1 | tee -a "$file"
    local status=${PIPESTATUS[0]}
    ((status == 124)) && echo "gpu_check: $name stopped at its ${limit} s limit (partial output above)" | tee -a "$file"
    echo "exit:$status elapsed:$((SECONDS - START))s" | tee -a "$file"
}

part environment 60 bash -c "nvidia-smi; $PY - <<'EOF'
import importlib, platform, torch
print('python', platform.python_version(), '| torch', torch.__version__, '| cuda', torch.version.cuda)
print('device', torch.cuda.get_device_name(0))
for name in ('triton', 'flash_attn_interface', 'flash_attn', 'zstandard', 'sentencepiece'):
    try:
        print(name, getattr(importlib.import_module(name), '__version__', 'importable'))
    except Exception as exc:
        print(name, 'not importable:', exc)
EOF"
part preflight 530 "$PY" scripts/gpu_preflight.py --activations relu2,asqu --steps 20 --warmup 6 --eval-stride 0 \
    --json "$OUT/preflight.json"
part bench_activation 60 "$PY" scripts/bench_asqu.py activation --tokens 98304 --hidden 1536 --rounds 5
echo "gpu_check: done in $((SECONDS - START)) s; files in $OUT"
