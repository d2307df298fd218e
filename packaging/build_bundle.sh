#!/usr/bin/env bash
# Build the one-folder desktop bundle: dist/EmbScope/ and dist/EmbScope-<version>-linux-x86_64.tar.gz.
#
#     bash packaging/build_bundle.sh
#
# The build runs in its own venv (build/bundle-env) holding only EmbScope's run-time
# dependencies, CPU torch 2.13.0 and PyInstaller: nothing from a test or dev install can be
# collected. The venv is reused while pyproject.toml and this script are unchanged.
# PYTHON picks the interpreter the bundle is built from (default python3, >= 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
env_dir=build/bundle-env
stamp="$env_dir/.embscope-stamp"
# torch pinned: 2.13.0 is the CPU wheel here; a looser pin would pull several GB of CUDA packages.
build_requirements=("torch==2.13.0" "pyinstaller>=6.10,<7")
key="$( (cat pyproject.toml; echo "${build_requirements[*]}") | sha256sum | cut -d' ' -f1)"
start=$(date +%s)

if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ]; then
    rm -rf "$env_dir"
    "$PY" -m venv "$env_dir"
    "$env_dir/bin/python" -m pip install --quiet "${build_requirements[@]}"
    echo "$key" > "$stamp"
fi
# EmbScope itself (not editable: the bundle must not point back into the checkout) on every build.
"$env_dir/bin/python" -m pip install --quiet --no-deps --force-reinstall .
"$env_dir/bin/python" -m pip install --quiet .  # its run-time dependencies, if pyproject added any
if "$env_dir/bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
    echo "build_bundle: CUDA packages (nvidia-*) in the build env; refusing to bundle them" >&2
    exit 1
fi

rm -rf dist/EmbScope
"$env_dir/bin/python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/embscope.spec

# Menu entry and icon travel inside the folder, with the script that installs them.
install -m 755 packaging/install_bundle.sh dist/EmbScope/install.sh
install -m 644 packaging/embscope.desktop dist/EmbScope/embscope.desktop
install -m 644 resources/icons/embscope.png resources/icons/embscope.svg dist/EmbScope/

version="$("$env_dir/bin/python" -c 'import embscope; print(embscope.__version__)')"
archive="dist/EmbScope-${version}-linux-$(uname -m).tar.gz"
rm -f "$archive"
tar -C dist -czf "$archive" EmbScope
end=$(date +%s)
echo "build_bundle: dist/EmbScope $(du -sh dist/EmbScope | cut -f1), $archive $(du -sh "$archive" | cut -f1), $((end - start)) s"
