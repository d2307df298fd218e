#!/usr/bin/env bash
# Put EmbScope in the user's application menu, pointing at this unpacked bundle:
#
#     ./install.sh               # after: tar xzf EmbScope-*.tar.gz && cd EmbScope
#     ./install.sh --uninstall
#
# Writes ~/.local/share/applications/embscope.desktop (Exec = this folder's EmbScope) and the
# icon into ~/.local/share/icons/hicolor. Move the folder first if you want it elsewhere; run
# this again after moving it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data/applications"
icons="$data/icons/hicolor"

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$apps/embscope.desktop" "$icons/scalable/apps/embscope.svg" "$icons/256x256/apps/embscope.png"
    echo "EmbScope menu entry removed."
    exit 0
fi
exe="$here/EmbScope"
if [ ! -x "$exe" ]; then
    echo "install.sh: $exe is missing; run this script from the unpacked EmbScope folder" >&2
    exit 2
fi
mkdir -p "$apps" "$icons/scalable/apps" "$icons/256x256/apps"
install -m 644 "$here/embscope.svg" "$icons/scalable/apps/embscope.svg"
install -m 644 "$here/embscope.png" "$icons/256x256/apps/embscope.png"
# Quoted Exec path: the folder may sit under a name with spaces.
sed -e "s|^Exec=embscope-gui|Exec=\"$exe\"|" -e "s|^TryExec=embscope-gui|TryExec=$exe|" \
    "$here/embscope.desktop" > "$apps/embscope.desktop"
chmod 644 "$apps/embscope.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$icons" || true
echo "EmbScope installed in the menu: $apps/embscope.desktop (runs $exe)"
