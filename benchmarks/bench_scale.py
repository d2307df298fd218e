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

# The child: `embscope analyze` through its real entry point, with a thread noting the peak RSS of each stage
# (the stage is the one the pipeline last reported; "write outputs" after the pipeline returned).
DRIVER = r"""
import json, sys, threading, time
import embscope.tasks.analyze as pipeline
from embscope.cli import main

stage, peaks, cpu = ["start-up"], {}, {}
last = [time.process_time()]

def enter(name):
    # CPU seconds (all threads) per stage: what a shared machine inflates least.
    now = time.process_time()
    cpu[stage[0]] = cpu.get(stage[0], 0.0) + now - last[0]
    last[0] = now
    stage[0] = name

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024

def sample():
    while True:
        peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss_mib())
        time.sleep(0.05)

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
threading.Thread(target=sample, daemon=True).start()
code = main(sys.argv[2:])
peaks[stage[0]] = max(peaks.get(stage[0], 0.0), rss_mib())
enter("end")
with open(sys.argv[1], "w") as handle:
    json.dump({"rss": peaks, "cpu": cpu}, handle)
sys.exit(code)
"""


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
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "timings": summary.get("timings_s", {}),
        "stage_rss_mib": json.loads(peaks.read_text())["rss"],
        "stage_cpu_s": json.loads(peaks.read_text())["cpu"],
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
    parser.add_argument("analyze_args", nargs="*", help="extra arguments for embscope analyze (after --)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.2f} (shared machine)", flush=True)
    for corpus in args.corpus:
        for n in args.n:
            with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
                folder = Path(tmp)
                emb, meta, description = make_input(corpus, n, args.dim, folder)
                input_mib = emb.stat().st_size / 2**20
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
                    f"  peak RSS by stage (MiB): {rss}\n  MCL: {r['mcl']}"
                    + (f"\n  graph: {r['graph']}" if r["graph"] else ""),
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
