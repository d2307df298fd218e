"""Does the Map panel stay fluid at 10⁶ points?  (issue 12 targets, GUI-thread time)

Opens the Map panel alone (offscreen, 1400×900) on N synthetic 2-D points in
258 blob-shaped classes of Zipf-like sizes, and measures on the GUI thread:

- load: ``model.set_layout`` plus applying the worker's result (index, colours,
  density image) plus the first paint — target ≤ 200 ms; the worker's wall time
  and the longest heartbeat gap while it ran are printed too;
- pan/zoom: 60 wheel-zoom and drag-pan steps from the whole map down to a few
  hundred points and back, each timed from the range change to the end of a
  repaint it causes (the event loop's turn) — target p95 ≤ 30 ms;
- hover: 200 mouse-move handlers (KD-tree query, marker, tooltip), the first
  included — target ≤ 5 ms (the repaint after it is printed separately);
- lasso: a 200-vertex polygon holding ~500 000 points (at 10⁶): the hit test
  (on a worker in the app) and applying the selection on the GUI thread —
  target ≤ 300 ms.

A 10 ms QTimer heartbeat runs throughout; its longest gap is what a user feels.
Times are wall clock; on a shared machine another process can take the CPU in
the middle of a 0.3 ms handler, so the GUI thread's own CPU time
(``time.thread_time``) is printed beside the pan/zoom and hover percentiles.

    python benchmarks/bench_map.py [--samples 1000000 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_responsive import Heartbeat  # noqa: E402


def make_points(n: int, classes: int = 258, seed: int = 0):
    """N points in ``classes`` Gaussian blobs with Zipf-like sizes; labels, ids and texts."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, classes + 1) ** 0.8
    label = rng.choice(classes, size=n, p=weights / weights.sum())
    centres = rng.normal(0, 10, size=(classes, 2))
    coords = (centres[label] + rng.normal(0, 0.8, size=(n, 2))).astype(np.float32)
    names = np.array([f"class {i:03d}" for i in range(classes)])
    return coords, names[label]


def stand_in_result(labels: np.ndarray):
    """The parts of an AnalysisResult the Map panel reads (the map alone is measured)."""
    from embscope.data import EmbeddingSet

    n = len(labels)
    emb = EmbeddingSet(
        vectors=np.zeros((n, 1), np.float32),
        labels=labels,
        ids=np.char.add("s", np.arange(n).astype(str)),
        texts=np.char.add("a sentence about ", labels),
    )
    return SimpleNamespace(embeddings=emb, graph=None, geometry=None)


def run_until(app, condition, timeout: float = 300) -> None:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("benchmark step timed out")
        app.processEvents()
        time.sleep(0.001)


def measure(n: int, app) -> dict:
    from PySide6.QtCore import QPointF

    from embscope.gui.model import ViewModel
    from embscope.gui.panels.map import MapPanel

    coords, labels = make_points(n)
    model = ViewModel()
    panel = MapPanel(model)
    panel.resize(1400, 900)
    panel.show()
    app.processEvents()
    model.set_result(stand_in_result(labels))
    viewport = panel.plot_widget.viewport()
    beat = Heartbeat()
    out: dict = {}

    # ---- load
    applied = []
    original_apply = panel._apply_prepared

    def timed_apply(prepared) -> None:
        t = time.perf_counter()
        original_apply(prepared)
        viewport.repaint()
        applied.append(time.perf_counter() - t)

    panel._apply_prepared = timed_apply
    panel.prepare_runner._callbacks = {}
    beat.start()
    t0 = time.perf_counter()
    model.set_layout(coords, "umap")
    set_layout = time.perf_counter() - t0
    run_until(app, lambda: applied)
    wall = time.perf_counter() - t0
    gaps = beat.stop()
    out["load_gui_ms"] = (set_layout + sum(applied)) * 1000
    out["load_wall_s"] = wall
    out["load_gap_ms"] = float(gaps.max()) if len(gaps) else 0.0
    assert panel.is_prepared

    # ---- pan / zoom
    vb = panel.view_box
    steps = []
    for _ in range(6):  # zoom in (towards a dense blob), pan, zoom back out
        steps += [("zoom", 0.6)] * 4 + [("pan", (0.3, 0.2)), ("pan", (-0.2, 0.3))] + [("zoom", 1 / 0.6)] * 4
    focus = coords[0]
    event_ms, event_cpu, modes = [], [], []
    beat.start()
    for kind, arg in steps:
        t, c = time.perf_counter(), time.thread_time()
        if kind == "zoom":
            vb.scaleBy((arg, arg), center=pg_point(focus))
        else:
            (x0, x1), (y0, y1) = vb.viewRange()
            vb.translateBy(x=arg[0] * (x1 - x0), y=arg[1] * (y1 - y0))
        app.processEvents()  # the coalesced update_view and the repaint it asks for run here
        app.processEvents()
        event_ms.append((time.perf_counter() - t) * 1000)
        event_cpu.append((time.thread_time() - c) * 1000)
        modes.append(panel.mode)
        for _ in range(3):  # a moment between wheel steps: queued worker results land too
            app.processEvents()
            time.sleep(0.01)
    gaps = beat.stop()
    out["pan_p95_ms"] = float(np.percentile(event_ms, 95))
    out["pan_cpu_p95_ms"] = float(np.percentile(event_cpu, 95))
    out["pan_max_ms"] = float(np.max(event_ms))
    out["pan_median_ms"] = float(np.median(event_ms))
    out["pan_modes"] = f"{modes.count('points')} points / {modes.count('density')} density"
    out["pan_gap_ms"] = float(gaps.max())

    # ---- hover (whole map in view)
    panel.view_box.setRange(
        xRange=(panel.index.lo[0], panel.index.hi[0]), yRange=(panel.index.lo[1], panel.index.hi[1])
    )
    app.processEvents()
    viewport.repaint()
    rng = np.random.default_rng(1)
    rect = panel.plot.sceneBoundingRect()
    hover_ms, hover_cpu, paint_ms = [], [], []
    for _ in range(200):
        pos = QPointF(rect.left() + rng.random() * rect.width(), rect.top() + rng.random() * rect.height())
        t, c = time.perf_counter(), time.thread_time()
        panel._on_view_mouse_moved(pos)
        t1 = time.perf_counter()
        hover_cpu.append((time.thread_time() - c) * 1000)
        app.processEvents()  # the repaint of the marker and tooltip
        hover_ms.append((t1 - t) * 1000)
        paint_ms.append((time.perf_counter() - t1) * 1000)
    out["hover_first_ms"] = hover_ms[0]
    out["hover_p95_ms"] = float(np.percentile(hover_ms, 95))
    out["hover_cpu_p95_ms"] = float(np.percentile(hover_cpu, 95))
    out["hover_cpu_first_ms"] = hover_cpu[0]
    out["hover_max_ms"] = float(np.max(hover_ms))
    out["hover_paint_median_ms"] = float(np.median(paint_ms))

    # ---- lasso: a 200-vertex polygon around the centre holding ~half the points
    centre = np.median(coords, axis=0)
    radii = np.sort(np.linalg.norm(coords - centre, axis=1))
    radius = float(radii[len(radii) // 2])
    angle = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    wobble = 1 + 0.03 * np.sin(7 * angle)
    polygon = centre + radius * wobble[:, None] * np.column_stack([np.cos(angle), np.sin(angle)])
    t = time.perf_counter()
    rows = panel.index.lasso(polygon)
    out["lasso_hit_ms"] = (time.perf_counter() - t) * 1000
    out["lasso_points"] = len(rows)
    t = time.perf_counter()
    model.set_selection(rows, origin="map")
    app.processEvents()
    viewport.repaint()
    out["lasso_apply_gui_ms"] = (time.perf_counter() - t) * 1000
    panel.close()
    panel.deleteLater()
    model.deleteLater()
    app.processEvents()
    return out


def pg_point(xy):
    import pyqtgraph as pg

    return pg.Point(float(xy[0]), float(xy[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from embscope.gui.app import create_application

    app = create_application()
    runs: dict[int, list[dict]] = {n: [] for n in args.samples}
    for _ in range(args.repeats):  # interleaved sizes
        for n in args.samples:
            runs[n].append(measure(n, app))
    keys = [
        ("load_gui_ms", "load: GUI-thread ms (≤ 200)"),
        ("load_wall_s", "load: wall s until drawn (worker)"),
        ("load_gap_ms", "load: longest heartbeat gap ms"),
        ("pan_p95_ms", "pan/zoom: p95 ms per event (≤ 30)"),
        ("pan_cpu_p95_ms", "pan/zoom: p95 GUI-thread CPU ms"),
        ("pan_median_ms", "pan/zoom: median ms"),
        ("pan_max_ms", "pan/zoom: max ms"),
        ("pan_gap_ms", "pan/zoom: longest heartbeat gap ms"),
        ("hover_first_ms", "hover: first ms (≤ 5)"),
        ("hover_p95_ms", "hover: p95 ms (≤ 5)"),
        ("hover_max_ms", "hover: max ms"),
        ("hover_cpu_first_ms", "hover: first, GUI-thread CPU ms"),
        ("hover_cpu_p95_ms", "hover: p95 GUI-thread CPU ms"),
        ("hover_paint_median_ms", "hover: event-loop turn after it, median ms"),
        ("lasso_hit_ms", "lasso: hit test ms (≤ 300)"),
        ("lasso_apply_gui_ms", "lasso: apply selection, GUI ms"),
    ]
    for n in args.samples:
        r = runs[n]
        print(f"Map panel, {n:,} points, 258 classes ({len(r)} runs; min / median):")
        for key, name in keys:
            values = [run[key] for run in r]
            print(f"  {name:<42s} {min(values):9.1f} / {np.median(values):9.1f}")
        print(f"  lasso selected {r[0]['lasso_points']:,} points; pan/zoom events drawn as {r[0]['pan_modes']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
