"""Screenshots of the map's tools on a 258-label map: a search hit, a selection summary (and its CSV), kNN agreement.

The corpus is the issue's: about 2 000 WordNet noun glosses embedded with
all-MiniLM-L6-v2, each labelled with its direct hypernym (258 fine labels; the
parent is the lexicographer file).  It is built once into OUT_DIR/wordnet258.npz
(tools/make_demo_embeddings.py's reader and model), then opened in the real
window under Xvfb:

    xvfb-run -a -s "-screen 0 1600x1000x24" python3 tools/screenshots_map_tools.py OUT_DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_LABELS = 258
PER_LABEL = 8  # at most this many synsets per hypernym; 258 × ≤ 8 ≈ 2 000 samples
SEED = 258


def build_corpus(path: Path) -> Path:
    """WordNet glosses labelled by their direct hypernym: 258 labels, ≈ 2 000 samples, MiniLM vectors."""
    if path.exists():
        return path
    sys.path.insert(0, str(Path(__file__).parent))
    from make_demo_embeddings import LEXFILES, definition, embed, pretty, read_noun_synsets

    synsets = read_noun_synsets()
    by_hypernym: dict[str, list[str]] = {}
    for offset, synset in synsets.items():
        if synset.lexfile in LEXFILES and len(synset.hypernyms) == 1:
            by_hypernym.setdefault(synset.hypernyms[0], []).append(offset)
    rng = np.random.default_rng(SEED)
    candidates = [h for h, members in by_hypernym.items() if len(members) >= PER_LABEL]
    # One label per name: a word naming two hypernyms (two senses) would merge two labels.
    name_count: dict[str, int] = {}
    for h in candidates:
        name_count[synsets[h].lemmas[0]] = name_count.get(synsets[h].lemmas[0], 0) + 1
    candidates = sorted(h for h in candidates if name_count[synsets[h].lemmas[0]] == 1)
    chosen = sorted(rng.choice(candidates, size=N_LABELS, replace=False).tolist())
    rows = []
    for hypernym in chosen:
        members = sorted(rng.choice(by_hypernym[hypernym], size=PER_LABEL, replace=False).tolist())
        name = pretty(synsets[hypernym].lemmas[0])
        rows += [(o, name, LEXFILES[synsets[o].lexfile]) for o in members]
    ids = np.array([o for o, _, _ in rows])
    labels = np.array([lab for _, lab, _ in rows])
    parents = np.array([p for _, _, p in rows])
    texts = np.array([f"{pretty(synsets[o].lemmas[0])}: {definition(synsets[o].gloss)}" for o in ids])
    vectors = embed(texts.tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, embeddings=vectors, labels=labels, parents=parents, texts=texts, ids=ids)
    print(f"{path}: {len(ids)} samples, {len(set(labels))} labels, {len(set(parents))} parents")
    return path


def settle(app, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--query", default="bird")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(out / "wordnet258.npz")
    os.environ.setdefault("EMBSCOPE_CONFIG_DIR", tempfile.mkdtemp(prefix="embscope-shots-"))
    sys.path.insert(0, str(Path(__file__).parent))
    from screenshots import wait_idle

    from embscope.gui.app import create_application
    from embscope.gui.main_window import MainWindow
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.settings import Settings

    app = create_application()
    window = MainWindow(Settings(), persist=False)
    window.resize(1500, 950)
    window.show()
    window.warm_up()
    window.open_paths([str(corpus)])
    ok = wait_idle(app, window, args.timeout)
    panel = window.panel(MapPanel)
    window.tabs.setCurrentWidget(panel)
    tools = panel.tools
    n_labels = len(set(window.model.result.embeddings.labels.tolist()))
    print(f"labels on the map: {n_labels}, layout {window.model.layout_method}")

    # 1. A search hit on the 258-label map, with the legend.
    tools.search_edit.setText(args.query)
    tools.run_search()
    settle(app)
    shots = [out / "map-search-hit.png"]
    window.grab().save(str(shots[-1]))
    print(tools.search_status.text())

    # 2. The matches selected: the selection summary, then its CSV.
    tools.select_hits()
    tools.wait(30)
    settle(app)
    shots.append(out / "map-selection-summary.png")
    window.grab().save(str(shots[-1]))
    print(tools.summary_label.text())
    tools.export_to(out / "selection.csv")
    tools.wait(30)
    settle(app, 0.2)
    print(tools.export_status.text())
    # 3. A continuous colour source of the tools: per-sample kNN label agreement.
    tools.search_edit.setText("")
    tools.run_search()
    window.model.clear_selection()
    panel.colour_combo.setCurrentText("kNN agreement")
    panel.finish_drawing()
    settle(app)
    shots.append(out / "map-knn-agreement.png")
    window.grab().save(str(shots[-1]))
    for path in shots:
        print(path)
    sys.stdout.flush()
    os._exit(0 if ok else 1)  # as tools/screenshots.py: skip the interpreter's final pyqtgraph teardown


if __name__ == "__main__":
    main()
