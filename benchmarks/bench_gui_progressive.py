"""The app on a large file: when does each result appear, how much memory, and does Cancel stop the CPU?

Opens N × D planted embeddings (50 leaf classes under 10 parents, labels in
the sidecar CSV), or with ``--corpus`` N rows of a real corpus
(``benchmarks/corpora.py``: ``fashion``, ``wordnet``, or ``*-stacked`` above
their real sizes), in the real window (offscreen), as a user would with
``embscope gui x.npy``, and prints the seconds from opening to:

- the provisional verdict (geometry, no graph), the PCA map,
- the k-NN graph's metrics (verdict with label scores), the UMAP map,
- the start of the MCL sweep, and (``--finish``) the final verdict;

then, once the UMAP map is shown, presses Cancel at least ``--cancel-after``
seconds into the MCL sweep and reads
the process's CPU time (``getrusage``: every thread, numba's and BLAS's
included) in the windows [0, 0.5 s] and [0.5 s, 1.5 s] after the press, and
when the analysis thread ended.  Peak memory is the process's maximum RSS.

    python benchmarks/bench_gui_progressive.py --samples 200000 --dim 128
    python benchmarks/bench_gui_progressive.py --samples 20000 --finish   # to the final verdict
    python benchmarks/bench_gui_progressive.py --corpus fashion --samples 70000 --finish

The machine this ran on is shared; the order of events and the CPU after Cancel are the point.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_data(folder: Path, n: int, dim: int) -> Path:
    from planted import planted_hierarchy

    x, leaf, parent = planted_hierarchy(n, dim=dim, n_parents=10, leaves_per_parent=5, seed=0)
    path = folder / f"planted_{n}.npy"
    np.save(path, x)
    with open(folder / f"planted_{n}.csv", "w") as out:  # the sidecar the app picks up by name
        out.write("id,label,parent\n")
        out.writelines(f"s{i},c{a},p{b}\n" for i, (a, b) in enumerate(zip(leaf, parent, strict=True)))
    return path


def write_corpus(folder: Path, name: str, n: int) -> Path:
    """``n`` rows of a real corpus as ``.npy`` plus the sidecar CSV of its leaf and parent labels."""
    from corpora import load_corpus

    vectors, leaf, parent, description = load_corpus(name, n=n)
    print(f"{name}: {description}", flush=True)
    path = folder / f"{name}_{len(vectors)}.npy"
    np.save(path, vectors)
    with open(folder / f"{name}_{len(vectors)}.csv", "w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow(["id", "label", "parent"])
        rows.writerows((f"s{i}", a, b) for i, (a, b) in enumerate(zip(leaf, parent, strict=True)))
    return path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128, help="planted data only")
    parser.add_argument("--corpus", default=None, help="a real corpus of benchmarks/corpora.py instead of planted data")
    parser.add_argument("--cancel-after", type=float, default=3.0, help="seconds into the MCL sweep")
    parser.add_argument("--finish", action="store_true", help="let the MCL sweep finish instead of cancelling")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--wait-umap",
        action="store_true",
        help="cancel only once the UMAP map (made beside the MCL sweep) is shown; without it the map is "
        "made again, alone, after the cancel measurement",
    )
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from embscope.gui.main_window import MainWindow
    from embscope.gui.settings import Settings

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        if args.corpus:
            path = write_corpus(Path(tmp), args.corpus, args.samples)
        else:
            path = write_data(Path(tmp), args.samples, args.dim)
        window = MainWindow(Settings(), persist=False)
        window.resize(1400, 900)
        window.show()
        events: dict[str, float] = {}
        started = time.perf_counter()

        def mark(name: str) -> None:
            if name not in events:
                events[name] = time.perf_counter() - started
                print(f"{events[name]:8.1f} s  {name}", flush=True)

        def on_result() -> None:
            result = window.model.result
            if result is None:
                return
            if result.provisional and result.graph is None:
                mark("provisional verdict (geometry)")
            elif result.provisional:
                mark("verdict with label scores (k-NN graph)")
            else:
                mark("final verdict")

        def on_layout() -> None:
            if window.model.coords is not None:
                mark(f"{window.model.layout_method.upper()} map")

        def on_progress(_id, report) -> None:
            if report.step == "clusters":
                mark("MCL sweep started")

        window.model.result_changed.connect(on_result)
        window.model.layout_changed.connect(on_layout)
        window.runners["analysis"].progress.connect(on_progress)
        window.open_paths([str(path)])
        deadline = started + args.timeout
        cancel_at = None
        while time.perf_counter() < deadline:
            app.processEvents()
            time.sleep(0.01)
            # Cancel inside the MCL sweep (with --wait-umap once the UMAP map is on screen).
            umap_ok = "UMAP map" in events or not args.wait_umap
            if "MCL sweep started" in events and umap_ok and cancel_at is None and not args.finish:
                cancel_at = max(time.perf_counter() + 0.5, started + events["MCL sweep started"] + args.cancel_after)
                if window.session.running is None:
                    print("the MCL sweep ended before the cancel: nothing to cancel (use more --samples)")
                    break
            if cancel_at is not None and time.perf_counter() >= cancel_at:
                break
            if args.finish and "final verdict" in events and not window.busy:
                break
        print(f"peak memory (max RSS): {peak_rss_gib():.2f} GiB")
        if cancel_at is None:
            window.close()
            return
        thread = window.runners["analysis"]._thread
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        window.cancel_button.click()
        ended = None
        samples = {}
        while time.perf_counter() - t0 < 1.5:
            app.processEvents()
            now = time.perf_counter() - t0
            if ended is None and not thread.is_alive():
                ended = now
            for mark_s in (0.5, 1.5):
                if mark_s not in samples and now >= mark_s:
                    samples[mark_s] = cpu_seconds()
            time.sleep(0.005)
        samples.setdefault(1.5, cpu_seconds())
        print(
            f"Cancel during MCL: process CPU {samples[0.5] - cpu0:.3f} s in the first 0.5 s, "
            f"{samples[1.5] - samples[0.5]:.3f} s in the next second; analysis thread ended "
            + (f"{ended:.3f} s after the press" if ended is not None else "later than 1.5 s")
        )
        if "UMAP map" not in events:
            # The cancelled analysis left its graph on screen: the map it still needs, alone on the machine.
            restarted = time.perf_counter()
            window._ensure_layout(window.session.sources[0])
            while window.model.layout_method != "umap" and time.perf_counter() < deadline:
                app.processEvents()
                time.sleep(0.01)
            print(f"UMAP map alone after the cancel: {time.perf_counter() - restarted:.1f} s")
        print(f"peak memory (max RSS): {peak_rss_gib():.2f} GiB")
        window.close()


if __name__ == "__main__":
    main()
