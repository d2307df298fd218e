#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh machine: installs EmbScope and what it needs.
# torch is pinned to 2.13.0 where none is installed: that pin takes the CPU wheel
# already on disk; a looser requirement would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "torch==2.13.0"
fi
extras=${EMBSCOPE_EXTRAS:-hf,parquet}
"$PY" -m pip install --quiet -e ".[${extras}]"
# Debian packages: van Dongen's mcl (reference for tests/benchmarks) and Xvfb
# (screenshots). Optional: skipped quietly where apt is not usable.
if [ "${EMBSCOPE_APT:-1}" = "1" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    missing=""
    command -v mcl >/dev/null 2>&1 || missing="$missing mcl"
    # Xvfb plus the xcb libraries Qt's xcb plugin needs (screenshots on a virtual screen).
    command -v Xvfb >/dev/null 2>&1 || missing="$missing xvfb"
    for lib in libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
               libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1; do
        dpkg -s "$lib" >/dev/null 2>&1 || missing="$missing $lib"
    done
    if [ -n "$missing" ]; then
        (apt-get update -qq && apt-get install -y -qq $missing) >/dev/null 2>&1 \
            || echo "setup: could not install$missing (optional)" >&2
    fi
fi
