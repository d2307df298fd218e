#!/usr/bin/env bash
# Install EmbScope's launcher for the current user, so a double-click starts it:
#
#     bash packaging/install_desktop.sh            # install
#     bash packaging/install_desktop.sh --uninstall
#
# Puts the .desktop file in ~/.local/share/applications and the icon (SVG + 256 px PNG) in
# ~/.local/share/icons/hicolor. EmbScope itself must be installed (bash tools/setup.sh makes
# .venv/bin/embscope-gui, or pip install a wheel); the launcher's Exec line is pinned to its full
# path, because desktop sessions often do not have ~/.local/bin or a virtualenv on PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data/applications"
icons="$data/icons/hicolor"

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$apps/embscope.desktop" "$icons/scalable/apps/embscope.svg" "$icons/256x256/apps/embscope.png"
    echo "EmbScope launcher removed."
    exit 0
fi

# The project venv that tools/setup.sh makes, else whatever embscope-gui is on PATH.
if [ -x "$repo/.venv/bin/embscope-gui" ]; then
    exe="$repo/.venv/bin/embscope-gui"
else
    exe="$(command -v embscope-gui || true)"
fi
if [ -z "$exe" ]; then
    echo "install_desktop: 'embscope-gui' not found; run bash tools/setup.sh first" >&2
    exit 2
fi
mkdir -p "$apps" "$icons/scalable/apps" "$icons/256x256/apps"
install -m 644 "$repo/resources/icons/embscope.svg" "$icons/scalable/apps/embscope.svg"
install -m 644 "$repo/resources/icons/embscope.png" "$icons/256x256/apps/embscope.png"
sed -e "s|^Exec=embscope-gui|Exec=$exe|" -e "s|^TryExec=embscope-gui|TryExec=$exe|" \
    "$here/embscope.desktop" > "$apps/embscope.desktop"
chmod 644 "$apps/embscope.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$icons" || true
echo "EmbScope installed: $apps/embscope.desktop (runs $exe)"
