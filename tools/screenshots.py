"""Drive the app on the bundled demos and save one PNG per panel (called by tools/screenshots.sh).

Usage: python tools/screenshots.py OUT_DIR [--timeout S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def wait_idle(app, window, timeout: float) -> bool:
    """Process events until no job runs (analysis, then PCA → UMAP maps); False on timeout."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        app.processEvents()
        if window.busy:
            quiet_since = None
        else:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:  # a finished job may start the next (PCA → UMAP)
                return True
        time.sleep(0.02)
    return False


def grab_panels(app, window, out: Path, prefix: str) -> list[Path]:
    written = []
    for i, panel in enumerate(window.panels):  # the registered per-source panels, in tab order
        window.tabs.setCurrentIndex(i)
        for _ in range(5):
            app.processEvents()
            time.sleep(0.05)
        path = out / f"{prefix}-{panel.title.lower()}.png"
        window.grab().save(str(path))
        written.append(path)
    return written


def grab_tab(app, window, widget, path: Path) -> Path:
    window.tabs.setCurrentWidget(widget)
    for _ in range(5):
        app.processEvents()
        time.sleep(0.05)
    window.grab().save(str(path))
    return path


def grab_compare_and_series(app, window, out: Path, timeout: float) -> list[Path]:
    """The Compare tab (healthy vs collapsed, a hovered sample and a selected class) and the demo Series tab."""
    import numpy as np

    written = []
    compare = window.comparisons.compare
    if compare.result is not None:
        emb = compare.result.sides[0].result.embeddings
        if emb.labels is not None:
            compare.select_rows(0, np.flatnonzero(emb.labels == emb.labels[0]))  # one class, shown in both maps
        compare.show_hover(0, int(np.flatnonzero(emb.labels != emb.labels[0])[0]) if emb.labels is not None else 0)
        written.append(grab_tab(app, window, compare, out / "demo-compare.png"))
        compare.colour_combo.setCurrentText("cluster")
        compare.set_inflation(1.4)
        wait_idle(app, window, timeout)
        written.append(grab_tab(app, window, compare, out / "demo-compare-clusters.png"))
    series = window.comparisons.series
    window.comparisons.offer_demo_series(run=True)
    wait_idle(app, window, timeout)
    if series.result is not None:
        series.set_metric("effective_rank_normalized")
        written.append(grab_tab(app, window, series, out / "demo-series.png"))
        series.set_metric("mean_cosine")
        written.append(grab_tab(app, window, series, out / "demo-series-mean-cosine.png"))
    return written


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--size", default="1500x950", help="window size WxH, e.g. 900x700 for a small screen")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EMBSCOPE_CONFIG_DIR", tempfile.mkdtemp(prefix="embscope-shots-"))
    from embscope.gui.app import create_application
    from embscope.gui.main_window import MainWindow, app_icon
    from embscope.gui.panels.map import MapPanel
    from embscope.gui.settings import Settings

    app = create_application()
    app.setWindowIcon(app_icon())
    written: list[Path] = []
    ok = True

    # 1. `embscope gui` with no source: the WordNet / MiniLM embeddings demo.
    window = MainWindow(Settings(), persist=False)
    window.resize(width, height)
    window.show()
    window.warm_up()
    window.open_demo()
    ok &= wait_idle(app, window, args.timeout)
    if window.model.coords is not None:
        # Click a point so the map shows a neighbour list, as a user would.
        window.panel(MapPanel).select_neighbours(0)
    written += grab_panels(app, window, out, "wordnet")
    window.close()

    # 2. `embscope demo`: the healthy and the collapsed checkpoints as two sources.
    window = MainWindow(Settings(), persist=False)
    window.resize(width, height)
    window.show()
    window.comparisons.open_demo_comparison()  # as `embscope demo`: both checkpoints, then their comparison
    ok &= wait_idle(app, window, args.timeout)
    for source, name in zip(window.session.sources, ("healthy", "collapsed"), strict=True):
        window.session.select(source)
        ok &= wait_idle(app, window, args.timeout)
        written += grab_panels(app, window, out, f"demo-{name}")
    written += grab_compare_and_series(app, window, out, args.timeout)
    window.close()
    for path in written:
        print(path)
    if not ok:
        print("screenshots: timed out waiting for the work to finish", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Two main windows' worth of pyqtgraph items left to the interpreter's final
    # garbage collection can trip a shiboken refcount abort at exit; the PNGs are
    # written by now, so leave without that finalisation.
    os._exit(code)
