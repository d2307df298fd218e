#!/usr/bin/env bash
# Screenshots of every panel: starts the app under Xvfb on the bundled demos (the WordNet/MiniLM
# embeddings that `embscope gui` opens, and the healthy + collapsed checkpoints of `embscope demo`),
# waits until the analyses and maps are done, and saves one PNG per panel, plus the Compare tab
# (healthy vs collapsed) and the Series tab (the demo series).
#
#     bash tools/screenshots.sh [OUT_DIR]      # default: screenshots/ (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-screenshots}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/embscope/numba}
unset QT_QPA_PLATFORM  # a real X server (Xvfb), not the offscreen plugin
exec xvfb-run -a -s "-screen 0 1600x1000x24" python3 tools/screenshots.py "$out"
