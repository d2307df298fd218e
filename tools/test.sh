#!/usr/bin/env bash
# Lint, then run the test suite headless (no screen, no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
# The project venv made by tools/setup.sh when there is one; PYTHON overrides.
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=${PYTHON:-python3}
fi
"$PY" -m ruff check src tests benchmarks tools
"$PY" -m ruff format --check --quiet src tests benchmarks tools
export QT_QPA_PLATFORM=offscreen OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-${EMBSCOPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/embscope}/numba}
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
