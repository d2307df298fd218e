"""``embscope analyze`` at 10⁵ and 10⁶ samples: wall and CPU time, peak RSS, time per stage.

Each run is the real command line (``embscope analyze emb.npy --meta meta.csv
--out DIR``, through ``embscope.cli.main``) in a child process, so its peak RSS
(``ru_maxrss`` of that child, from ``os.wait4``) covers loading, every stage
and writing the output files, and nothing of this script.  Per-stage times
come from the summary's ``timings_s``; a thread in the child notes the peak
RSS of each stage (the stage the pipeline last reported); the MCL line says
whether it ran on a subsample.

Corpora (both printed by default):

``planted``
    :func:`planted.planted_hierarchy`: ``--dim`` (128) dimensions, 50 parents ×
    20 leaves.
``wordnet-stacked``
    The real WordNet/MiniLM corpus of :mod:`corpora` (384-d), stacked to N
    rows with noise (real geometry, but every point has near-copies: says so).

Targets (issue 11, 2 cores): analyze 10⁶ × 128 ≤ 10 min, peak RSS ≤ 3× the
input array.  The machine may be shared: the load average before and after
each run is printed, and CPU time beside wall time (CPU time is what a busy
machine inflates least).

    python benchmarks/bench_scale.py [--n 100000 1000000] [--corpus planted wordnet-stacked] [--dim 128]
    python benchmarks/bench_scale.py --layout --no-analyze --n 1000000 --corpus planted

``--layout`` also times the UMAP layout (issue 11: ≤ 10 min at 10⁶ on 2 cores)
in its own child process: the k-NN graph as ``analyze`` builds it, then
:func:`embscope.analysis.layout.iter_umap_layout` from that graph to the final
coordinates (set-up: fuzzy graph, PCA start, optimiser state; then the
epochs, single-threaded), each phase's wall and CPU time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Peak RSS of each stage, in both children: the kernel's high-water mark (VmHWM), read and reset
# (``clear_refs`` 5) at every stage change, so a spike inside one long GIL-holding call is counted
# too (a sampling thread missed a 0.8 GB one at 10⁶ rows).  Where the reset is refused, a thread
# samples VmRSS every 50 ms instead (and says so).
PEAKS = r"""
import threading, time

def status_mib(key):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key)) / 1024

def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False

HWM = reset_hwm()
stage, peaks = ["start-up"], {}

def close_stage():
    # The peak of the stage ending now, then a fresh high-water mark for the next one.
    peaks[stage[0]] = max(peaks.get(stage[0], 0.0), status_mib("VmHWM" if HWM else "VmRSS"))
    if HWM:
        reset_hwm()

def sample():
    while True:
        peaks[stage[0]] = max(peaks.get(stage[0], 0.0), status_mib("VmRSS"))
        time.sleep(0.05)

if not HWM:
    threading.Thread(target=sample, daemon=True).start()
PEAK_METHOD = "kernel high-water mark per stage" if HWM else "VmRSS sampled every 50 ms (may miss short spikes)"
"""

# The child: `embscope analyze` through its real entry point, noting the peak RSS of each stage
# (the stage is the one the pipeline last reported; "write outputs" after the pipeline returned).
DRIVER = (
    PEAKS
    + r"""
import json, sys
import embscope.tasks.analyze as pipeline
from embscope.cli import main

cpu = {}
last = [time.process_time()]

def enter(name):
    # CPU seconds (all threads) per stage: what a shared machine inflates least.
    now = time.process_time()
    cpu[stage[0]] = cpu.get(stage[0], 0.0) + now - last[0]
    last[0] = now
    close_stage()
    stage[0] = name

original = pipeline.analyze_job

def traced(request, cancel=pipeline.NEVER_CANCELLED):
    job = original(request, cancel)
    while True:
        try:
            report = next(job)
        except StopIteration as stop:
            enter("write outputs")
            return stop.value
        name = report.stage.split(":")[0]
        name = {"k-NN graph": "graph", "MCL": "clusters", "done": "verdict"}.get(name, name)
        if name != stage[0]:
            enter(name)
        yield report

pipeline.analyze_job = traced
code = main(sys.argv[2:])
enter("end")
with open(sys.argv[1], "w") as handle:
    json.dump({"rss": peaks, "cpu": cpu, "peak_method": PEAK_METHOD}, handle)
sys.exit(code)
"""
)


# The UMAP child: the k-NN graph as analyze builds it, then the layout from the graph to the final coordinates
# (fuzzy graph, PCA start, epochs), each phase timed (wall and CPU) with its peak RSS.
LAYOUT_DRIVER = (
    PEAKS
    + r"""
import json, sys
import numpy as np
from embscope.analysis.layout import DEFAULT_EPOCHS, iter_umap_layout
from embscope.tasks.graph_cache import GraphCache, build_knn_graph
from embscope.tasks.progress import run_job

stage[0] = "load"
wall, cpu = {}, {}
clock = [time.perf_counter(), time.process_time()]

def enter(name):
    now = (time.perf_counter(), time.process_time())
    wall[stage[0]], cpu[stage[0]] = now[0] - clock[0], now[1] - clock[1]
    clock[:] = now
    close_stage()
    stage[0] = name

x = np.load(sys.argv[2])
enter("graph")
graph = run_job(build_knn_graph(x, None, cache=GraphCache()))
enter("layout set-up")
job = iter_umap_layout(graph, x, seed=0)
next(job)  # fuzzy graph, PCA start, optimiser state: the first yield comes before the first epoch
enter("layout epochs")
while True:
    try:
        next(job)
    except StopIteration as stop:
        coords = stop.value
        break
enter("end")
assert coords.shape == (x.shape[0], 2) and np.isfinite(coords).all()
with open(sys.argv[1], "w") as handle:
    json.dump(
        {"rss": peaks, "wall": wall, "cpu": cpu, "epochs": DEFAULT_EPOCHS, "graph": graph.describe(),
         "peak_method": PEAK_METHOD},
        handle,
    )
"""
)


def run_layout(emb: Path, out: Path) -> dict:
    """The k-NN graph and UMAP layout of ``emb`` in a child process: per phase wall/CPU seconds and peak RSS (MiB)."""
    result = out.parent / "layout.json"
    cmd = [sys.executable, "-c", LAYOUT_DRIVER, str(result), str(emb)]
    load_before = os.getloadavg()[0]
    with open(out.parent / "layout.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the layout child failed: see {out.parent / 'layout.log'}")
    r = json.loads(result.read_text())
    r.update(
        peak_rss_mib=peak_mib(usage, r["rss"], r["peak_method"]),
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
    return r


def make_input(corpus: str, n: int, dim: int, folder: Path) -> tuple[Path, Path, str]:
    """Write ``emb.npy`` and ``meta.csv`` (label, parent) of ``corpus`` at ``n`` rows; return them and what it is."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    if corpus == "planted":
        from planted import planted_hierarchy

        x, leaf, parent = planted_hierarchy(n, dim=dim, n_parents=50, leaves_per_parent=20, seed=0)
        labels = np.char.add("leaf", leaf.astype(str))
        parents = np.char.add("p", parent.astype(str))
        description = f"planted hierarchy, {n} × {dim}, 50 parents × 20 leaves"
    else:
        from corpora import load_corpus

        x, labels, parents, description = load_corpus(corpus, n=n)
    emb, meta = folder / "emb.npy", folder / "meta.csv"
    np.save(emb, np.ascontiguousarray(x, dtype=np.float32))
    with meta.open("w", encoding="utf-8") as handle:
        handle.write("label,parent\n")
        for start in range(0, len(labels), 100_000):
            rows = zip(labels[start : start + 100_000], parents[start : start + 100_000], strict=True)
            handle.writelines(f'"{a}","{b}"\n' for a, b in rows)
    return emb, meta, description


def write_input(corpus: str, n: int, dim: int, folder: Path) -> tuple[Path, Path, str]:
    """:func:`make_input` in a child process, so this process never holds the data.

    A child's ``ru_maxrss`` counts its parent's resident memory at the spawn
    (Linux records the forked image's high-water mark at ``exec``, for
    ``posix_spawn`` too): with the 10⁶-row corpus built here, every child
    reported this process's ~2 GB as its own peak.
    """
    code = (
        f"import sys; sys.path.insert(0, {str(HERE)!r}); from bench_scale import make_input; "
        f"from pathlib import Path; print(make_input({corpus!r}, {n}, {dim}, Path({str(folder)!r}))[2])"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return folder / "emb.npy", folder / "meta.csv", done.stdout.strip().splitlines()[-1]


def peak_mib(usage, stage_peaks: dict, method: str) -> float:
    """The child's peak RSS: the largest stage high-water mark when those were read.

    Resetting the high-water mark per stage (``clear_refs``) also resets what
    ``ru_maxrss`` reports, so then the stage marks are the whole record.
    """
    if method.startswith("kernel"):
        return max(stage_peaks.values())
    return usage.ru_maxrss / 1024


def run_analyze(emb: Path, meta: Path, out: Path, extra: list[str]) -> dict:
    """One ``embscope analyze`` in a child process: wall/CPU seconds, peak RSS (MiB), its summary."""
    peaks = out.parent / f"{out.name}.rss.json"
    args = ["analyze", str(emb), "--meta", str(meta), "--out", str(out), *extra]
    cmd = [sys.executable, "-c", DRIVER, str(peaks), *args]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1 = a verdict other than healthy with --fail-on-collapse: not used here
        raise RuntimeError(f"analyze exited {code}: see {out.parent / f'{out.name}.log'}")
    summary = json.loads((out / "summary.json").read_text())
    child = json.loads(peaks.read_text())
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": peak_mib(usage, child["rss"], child["peak_method"]),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "timings": summary.get("timings_s", {}),
        "stage_rss_mib": child["rss"],
        "peak_method": child["peak_method"],
        "stage_cpu_s": child["cpu"],
        "mcl": (summary.get("clusters") or {}).get("sample", {}).get("text", "all samples"),
        # The k-NN graph's method and measured recall, where the summary states them.
        "graph": summary.get("graph") or summary.get("geometry", {}).get("knn_label_method", ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--corpus", nargs="+", default=["planted", "wordnet-stacked"])
    parser.add_argument("--dim", type=int, default=128, help="dimensions of the planted corpus")
    parser.add_argument("--keep", type=Path, default=None, help="keep the inputs and outputs in this folder")
    parser.add_argument(
        "--layout", action="store_true", help="also time the UMAP layout (k-NN graph to final coordinates)"
    )
    parser.add_argument("--no-analyze", action="store_true", help="skip embscope analyze (with --layout)")
    parser.add_argument("analyze_args", nargs="*", help="extra arguments for embscope analyze (after --)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f} (shared machine)", flush=True)
    for corpus in args.corpus:
        for n in args.n:
            with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
                folder = Path(tmp)
                emb, meta, description = write_input(corpus, n, args.dim, folder)
                input_mib = emb.stat().st_size / 2**20
                if args.layout:
                    print_layout(corpus, n, description, run_layout(emb, folder / "out"), input_mib)
                if args.no_analyze:
                    continue
                r = run_analyze(emb, meta, folder / "out", args.analyze_args)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
                rss = ", ".join(f"{k} {v:.0f}" for k, v in r["stage_rss_mib"].items())
                cpu = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_cpu_s"].items())
                print(
                    f"\n{corpus} N={n}: {description}\n"
                    f"  wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s (load {r['load_before']:.1f} → "
                    f"{r['load_after']:.1f}); peak RSS {r['peak_rss_mib']:.0f} MiB = "
                    f"{r['peak_rss_mib'] / input_mib:.2f}× the {input_mib:.0f} MiB input array\n"
                    f"  stages, wall s (summary timings_s): {stages}\n  stages, CPU s: {cpu}\n"
                    f"  peak RSS by stage (MiB, {r['peak_method']}): {rss}\n  MCL: {r['mcl']}"
                    + (f"\n  graph: {r['graph']}" if r["graph"] else ""),
                    flush=True,
                )
    return 0


def print_layout(corpus: str, n: int, description: str, r: dict, input_mib: float) -> None:
    """The layout run's lines: wall and CPU time, peak RSS of each phase."""
    phases = [p for p in ("graph", "layout set-up", "layout epochs") if p in r["wall"]]
    layout = [p for p in phases if p.startswith("layout")]
    wall = sum(r["wall"][p] for p in layout)
    cpu = sum(r["cpu"][p] for p in layout)
    layout_peak = max(r["rss"][p] for p in layout)
    print(
        f"\n{corpus} N={n} UMAP layout ({r['epochs']} epochs, from the k-NN graph to the final coordinates): "
        f"{description}\n"
        f"  layout wall {wall:.1f} s, CPU {cpu:.1f} s (load {r['load_before']:.1f} → {r['load_after']:.1f}); "
        f"peak RSS during the layout {layout_peak:.0f} MiB = {layout_peak / input_mib:.2f}× the "
        f"{input_mib:.0f} MiB input (input, graph and layout all held); process peak {r['peak_rss_mib']:.0f} MiB "
        f"({r['peak_method']})\n"
        + "\n".join(
            f"  {p}: wall {r['wall'][p]:.1f} s, CPU {r['cpu'][p]:.1f} s, peak RSS {r['rss'][p]:.0f} MiB" for p in phases
        )
        + f"\n  graph: {r['graph']}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
