#!/usr/bin/env bash
# Set up EmbScope from a checkout (idempotent):  bash tools/setup.sh  then  .venv/bin/embscope gui
#
# Installs into a project venv, .venv, so it works on a Python that refuses system-wide
# installs (PEP 668, e.g. Debian's /usr/bin/python3 with apt's python3-venv).
#   PYTHON=python3.12          interpreter the venv is made from (default python3, >= 3.11)
#   EMBSCOPE_VENV=path         venv folder (default .venv); EMBSCOPE_VENV=none installs into $PYTHON itself
#   EMBSCOPE_EXTRAS=test       pip extras (default hf,parquet)
# A re-run with nothing changed returns at once: a stamp in the venv (one per extras set) records
# the hash of pyproject.toml and this script, and pip and apt run only when that hash changes.
# torch is pinned to 2.13.0 only where none is installed: on this project's machines the pin
# takes the CPU wheel kept on disk; a looser requirement would pull several GB of CUDA packages.
# A CUDA build of torch installed in the venv beforehand is kept.
#
# Debian packages: van Dongen's mcl is REQUIRED (the MCL reference test fails without
# it); Xvfb and the xcb libraries (screenshots on a virtual screen) are optional.
# Environment: EMBSCOPE_APT=0 skips apt entirely; EMBSCOPE_REQUIRE_MCL=0 lets set-up
# finish without mcl (the reference test will then fail, as it should).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${PYTHON:-python3}
venv=${EMBSCOPE_VENV:-.venv}
extras=${EMBSCOPE_EXTRAS:-hf,parquet}

# One stamp per extras set, so alternating `setup.sh` and `EMBSCOPE_EXTRAS=test setup.sh` stays instant.
if [ "$venv" = "none" ]; then
    PY="$base"
    stamp="build/.embscope-setup-stamp-${extras//[^a-z0-9]/_}"
else
    PY="$venv/bin/python"
    stamp="$venv/.embscope-setup-stamp-${extras//[^a-z0-9]/_}"
fi
key="$(cat pyproject.toml tools/setup.sh | sha256sum | cut -d' ' -f1) $extras $(command -v "$base" || echo "$base")"
if [ -x "$PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
    exit 0  # nothing changed since the last set-up
fi

if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: EmbScope needs Python >= 3.11; '$base' is $("$base" --version 2>&1 || echo missing) (set PYTHON=...)" >&2
    exit 2
fi
if [ "$venv" != "none" ] && [ ! -x "$PY" ]; then
    if ! "$base" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        echo "setup: '$base -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 2
    fi
fi
if ! "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)' 2>/dev/null; then
    "$PY" -m pip install --quiet "torch==2.13.0"
fi
"$PY" -m pip install --quiet -e ".[${extras}]"

# apt-get as root, or through passwordless sudo; nothing when neither works.
apt_run() {
    if [ "$(id -u)" = "0" ]; then
        DEBIAN_FRONTEND=noninteractive "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        sudo -n env DEBIAN_FRONTEND=noninteractive "$@"
    else
        return 1
    fi
}

# Install the named packages (one apt transaction), refreshing the package lists
# once and retrying when the first attempt fails (stale lists, a busy lock).
apt_install() {
    local log
    log=$(mktemp)
    for attempt in 1 2 3; do
        if apt_run apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1; then
            rm -f "$log"
            return 0
        fi
        apt_run apt-get update -qq >>"$log" 2>&1 || true
        sleep "$attempt"
    done
    echo "setup: apt-get install $* failed:" >&2
    tail -n 5 "$log" >&2
    rm -f "$log"
    return 1
}

if [ "${EMBSCOPE_APT:-1}" = "1" ] && command -v apt-get >/dev/null 2>&1; then
    if ! command -v mcl >/dev/null 2>&1; then
        apt_install mcl || true
    fi
    optional=""
    command -v Xvfb >/dev/null 2>&1 || optional="$optional xvfb"
    # WordNet 3.0: tools/make_demo_embeddings.py and tools/make_verdict_matrix.py,
    # which remake the real-data test inputs (the tests use the committed arrays).
    [ -f /usr/share/wordnet/data.noun ] || optional="$optional wordnet-base"
    # Fashion-MNIST (70 000 images): tools/train_demo.py and the benchmark corpus (benchmarks/corpora.py).
    [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || optional="$optional dataset-fashion-mnist"
    for lib in libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
               libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1; do
        dpkg -s "$lib" >/dev/null 2>&1 || optional="$optional $lib"
    done
    if [ -n "$optional" ]; then
        # shellcheck disable=SC2086  # one word per package
        apt_install $optional || echo "setup: could not install$optional (optional: screenshots and the real-data makers only)" >&2
    fi
fi

if ! command -v mcl >/dev/null 2>&1; then
    echo "setup: van Dongen's mcl is not installed (Debian/Ubuntu: apt-get install mcl; it is the" \
         "reference of tests/test_mcl.py::test_agrees_with_van_dongen_mcl)" >&2
    if [ "${EMBSCOPE_REQUIRE_MCL:-1}" = "1" ]; then
        exit 1
    fi
fi
mkdir -p "$(dirname "$stamp")"
echo "$key" > "$stamp"
