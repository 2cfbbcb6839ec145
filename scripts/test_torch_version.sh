#!/usr/bin/env bash
# Runs the compile/QAT tests (or the whole suite) under another PyTorch version, in its own virtualenv. The
# system torch is never touched: the venv has no system site-packages, PYTHONPATH, PYTHONHOME and the user site
# are ignored, and the torch the tests import is checked to be the venv's, of that version.
#
#   scripts/test_torch_version.sh VERSION                  # tests/*qat*.py + tests/*compile*.py
#   scripts/test_torch_version.sh VERSION all              # the whole suite
#   scripts/test_torch_version.sh VERSION tests/test_x.py [more files or pytest options ...]
#   scripts/test_torch_version.sh VERSION --setup-only     # only create/update the venv, run no test
#
# Environment: VENV_DIR (default ~/.cache/asqu-golf/venv-torch-VERSION, created or reused); PYTHON (the
# interpreter that creates the venv, default python3); TORCH_INDEX_URL (a pip --index-url for torch only, e.g.
# https://download.pytorch.org/whl/cpu; default: plain `pip install torch==VERSION`, on Linux x86_64 the ~3.4 GB
# CUDA build, which also runs on CPU); NICE (niceness for pip and pytest, default 10).
# The exit status is pytest's (0 when every selected test passed). Example: scripts/test_torch_version.sh 2.9.1
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then usage; [[ $# -ge 1 ]] && exit 0 || exit 2; fi
VERSION=$1; shift
if ! [[ "$VERSION" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?([a-z0-9.+-]*)$ ]]; then
  echo "error: '$VERSION' is not a torch version (example: 2.9.1)" >&2; exit 2
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV_DIR=${VENV_DIR:-$HOME/.cache/asqu-golf/venv-torch-$VERSION}
PY=${PYTHON:-python3}
NICE=${NICE:-10}
VPY="$VENV_DIR/bin/python"
# Nothing from the outside Python environment may leak into the venv's interpreter.
CLEAN_ENV=(env -u PYTHONPATH -u PYTHONHOME PYTHONNOUSERSITE=1)

mkdir -p "$(dirname "$VENV_DIR")"
# One creator at a time per venv (two sessions asking for the same version wait for each other).
exec 9>"$VENV_DIR.lock"
flock 9

if [[ ! -x "$VPY" ]]; then
  echo "venv: creating $VENV_DIR with $("$PY" --version 2>&1)"
  "$PY" -m venv "$VENV_DIR"
fi

installed_torch() {  # the venv's torch version without a local suffix (2.9.1+cu128 -> 2.9.1), or nothing
  "${CLEAN_ENV[@]}" "$VPY" -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true
}

if [[ "$(installed_torch)" != "${VERSION%%+*}" ]]; then
  echo "venv: installing torch==$VERSION into $VENV_DIR"
  idx=()
  [[ -n "${TORCH_INDEX_URL:-}" ]] && idx=(--index-url "$TORCH_INDEX_URL")
  "${CLEAN_ENV[@]}" nice -n "$NICE" "$VPY" -m pip install -q ${idx[@]+"${idx[@]}"} "torch==$VERSION"
else
  echo "venv: reusing $VENV_DIR (torch $(installed_torch) already installed)"
fi
# The project's other requirements; torch stays pinned to the requested version.
PIN=$(mktemp); trap 'rm -f "$PIN"' EXIT
echo "torch==$VERSION" >"$PIN"
"${CLEAN_ENV[@]}" nice -n "$NICE" "$VPY" -m pip install -q -c "$PIN" \
  -r "$REPO/requirements.txt" -r "$REPO/requirements-dev.txt"

# The torch the tests will import must be the venv's, of the requested version.
TORCH_INFO=$("${CLEAN_ENV[@]}" "$VPY" - "$VENV_DIR" "$VERSION" <<'EOF'
import os, sys, torch
venv, path, version = os.path.realpath(sys.argv[1]), os.path.realpath(torch.__file__), sys.argv[2]
if not path.startswith(venv + os.sep):
    sys.exit(f"error: torch imported from {path}, outside the venv {venv}")
if torch.__version__.split("+")[0] != version.split("+")[0]:
    sys.exit(f"error: the venv has torch {torch.__version__.split('+')[0]}, not {version}")
print(f"torch {torch.__version__} ({path}), python {sys.version.split()[0]}")
EOF
)
echo "venv: $TORCH_INFO"

if [[ "${1:-}" == "--setup-only" ]]; then exit 0; fi

cd "$REPO"
shopt -s nullglob
TESTS=("$@")
[[ $# -eq 0 ]] && TESTS=(tests/*qat*.py tests/*compile*.py)  # test_compile.py among them
[[ "${1:-}" == "all" ]] && TESTS=("${@:2}")  # no file: pytest.ini's testpaths (the whole suite)

echo "pytest: ${TESTS[*]:-the whole suite} (torch $VERSION)"
rc=0
# Compiled kernels of another torch version are kept apart from the system's cache.
"${CLEAN_ENV[@]}" TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-$VENV_DIR/inductor-cache}" \
  nice -n "$NICE" "$VPY" -m pytest -q ${TESTS[@]+"${TESTS[@]}"} || rc=$?
echo "result: pytest exit $rc with $TORCH_INFO"
exit $rc
