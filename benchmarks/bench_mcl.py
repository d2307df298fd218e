"""EmbScope's MCL vs van Dongen's ``mcl -I X -te T`` on the same 30-NN cosine graph, real and planted.

Graphs (``--graphs``):

* ``wordnet:N`` — the real corpus of benchmarks/corpora.py (MiniLM embeddings
  of WordNet noun glosses, the first N of 20 000), exact 30-NN cosine graph;
  ``wordnet:N@F`` takes N rows from row F (``wordnet:10000@10000`` is a
  second, disjoint real graph);
* ``fashion:N`` — the corpus's Fashion-MNIST features of the demo model (a
  real corpus of another kind: images, 10 classes), same graph;
* ``planted:N`` — planted clusters with a parent level (benchmarks/planted.py).

For each graph and inflation the two programs run interleaved (mcl, ours,
mcl, ours, …) ``--repeats`` times with the same thread count (``mcl -te T``,
numba ``T`` threads); the table prints min and median wall time of each, the
ratio of the minima (mcl / ours; > 1: ours faster) and of the medians, the ARI
between the two partitions, the cluster counts and our iteration count.
``mcl`` is timed as a process (reading the graph included: that is how it is
used); ours from the sparse adjacency in memory, as the GUI does.  The machine
is shared: only ratios of interleaved runs mean anything.

``--mcl-cache DIR`` keeps mcl's partitions and times on disk (keyed by the
graph's hash, the inflation and the thread count); a cached row runs mcl no
more and says so in the ``mcl src`` column — report only rows measured in
the run.

With a CUDA GPU, ours takes ``markov_cluster``'s default: the dense early
iterations on the GPU (each row says so); ``--cpu`` forces the CPU kernel.

    python benchmarks/bench_mcl.py [--graphs wordnet:10000,planted:10000] [--inflations 1.4,2,3,4]
                                   [--repeats 3] [--threads 2] [--mcl-cache DIR] [--memory]
                                   [--tails 0,0.003,0.01] [--cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from planted import planted_hierarchy


def mcl_command(abc: Path, inflation: float, threads: int, out: Path) -> list[str]:
    """``mcl`` at its defaults on the graph in ``abc`` (label format), clusters written to ``out``."""
    return ["mcl", str(abc), "--abc", "-I", str(inflation), "-te", str(threads), "-o", str(out)]


def run_mcl(abc: Path, inflation: float, n: int, workdir: Path, threads: int) -> tuple[np.ndarray, float]:
    out = workdir / "out.txt"
    t = time.perf_counter()
    subprocess.run(
        mcl_command(abc, inflation, threads, out),
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - t
    ref = np.full(n, -1)
    for cid, line in enumerate(out.read_text().splitlines()):
        ref[np.array(line.split(), dtype=int)] = cid
    missing = np.flatnonzero(ref < 0)
    ref[missing] = ref.max() + 1 + np.arange(missing.size)
    return ref, seconds


def graph_key(adj) -> str:
    """Hash of the adjacency (structure and weights) for the mcl result cache."""
    h = hashlib.sha256()
    for part in (adj.indptr, adj.indices, adj.data):
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()[:16]


def build_graph(spec: str, knn: int, cache: Path | None = None):
    """(name, adjacency, description) of a ``wordnet:N`` or ``planted:N`` graph.

    With ``cache``, the adjacency is kept there (keyed by the spec and k) and
    read back on later runs: another machine then needs neither the corpus
    nor faiss, and gets the very graph whose ``mcl`` results ``--mcl-cache``
    holds (a k-NN search elsewhere may order equal cosines differently).
    """
    from scipy import sparse

    path = cache / f"graph-{spec.replace(':', '-').replace('@', '-at-')}-k{knn}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as stored:
            adj = sparse.csr_matrix((stored["data"], stored["indices"], stored["indptr"]), shape=stored["shape"])
            return str(stored["name"]), adj, str(stored["description"]) + f" (graph read from {path.name})"
    name, adj, description = _new_graph(spec, knn)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            data=adj.data,
            indices=adj.indices,
            indptr=adj.indptr,
            shape=np.array(adj.shape),
            name=name,
            description=description,
        )
    return name, adj, description


def _new_graph(spec: str, knn: int):
    from embscope.analysis.graph import knn_adjacency, knn_graph

    kind, _, size = spec.partition(":")
    size, _, offset = size.partition("@")
    n, first = int(size or 10_000), int(offset or 0)
    if kind in ("wordnet", "fashion"):
        from corpora import load_corpus

        x, _leaf, _parent, description = load_corpus(kind, n=first + n)
        x = x[first:]
        if first:
            description = f"rows {first}–{first + n - 1} of " + description
    elif kind == "planted":
        x, _leaf, _parent = planted_hierarchy(n)
        description = f"{n} planted points (benchmarks/planted.py), 32-d"
    else:
        raise SystemExit(f"unknown graph {spec!r}: wordnet:N, fashion:N or planted:N")
    graph = knn_graph(x, knn, exact=True)
    return f"{kind}:{n}" + (f"@{first}" if first else ""), knn_adjacency(graph), description


def gpu_peak_reset() -> None:
    """Start a new peak of torch's CUDA allocator (nothing without a GPU)."""
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        sys.modules["torch"].cuda.reset_peak_memory_stats()


def gpu_peak_mib() -> float:
    """The CUDA allocator's peak since :func:`gpu_peak_reset`, MiB."""
    return sys.modules["torch"].cuda.max_memory_allocated() / 2**20


def mcl_peak_rss(abc: Path, inflation: float, workdir: Path, threads: int) -> int:
    """Peak resident memory (bytes) of one ``mcl`` process: its own figure to set ours against.

    Read as the process's VmHWM, polled until it exits: the rusage of a child
    forked from this (large) Python process counts the parent's pages it held
    before exec, while VmHWM belongs to mcl's own address space.
    """
    proc = subprocess.Popen(
        mcl_command(abc, inflation, threads, workdir / "rss.txt"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    if proc.returncode:
        raise SystemExit(f"mcl failed with exit code {proc.returncode}")
    return peak


def sweep_memory(adj, inflations: list[float], abc: Path, workdir: Path, threads: int) -> None:
    """Peak memory (tracemalloc: every numpy allocation) of one MCL per inflation, against the graph and iterate.

    "graph": the sparse adjacency handed to MCL; "iterate": the largest MCL
    matrix of that run (row ids, values and per-column arrays).  Any MCL
    holds at least one iterate and the product being formed from it, so
    ``peak / iterate`` near 2 is the floor of the method.  The last column
    is ``mcl``'s own peak resident memory on the same graph (a whole process:
    its start-up and the graph's reading included).
    """
    import tracemalloc

    from embscope.analysis.mcl import markov_cluster

    graph = adj.data.nbytes + adj.indices.nbytes + adj.indptr.nbytes
    print(f"\nmemory (tracemalloc peak of one run; graph {graph / 2**20:.1f} MiB)")
    print(
        f"{'I':>4} {'peak MiB':>9} {'iterate MiB':>11} {'peak/iterate':>12} {'peak/(2 graph + iterate)':>25}"
        f" {'mcl RSS MiB':>11}"
    )
    for inflation in inflations:
        tracemalloc.start()
        try:
            _, info = markov_cluster(adj, inflation, return_info=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        iterate = info.max_bytes
        theirs = mcl_peak_rss(abc, inflation, workdir, threads)
        print(
            f"{inflation:>4g} {peak / 2**20:>9.1f} {iterate / 2**20:>11.1f} {peak / iterate:>12.2f} "
            f"{peak / (2 * graph + iterate):>25.2f} {theirs / 2**20:>11.1f}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graphs", default="wordnet:10000,planted:10000")
    parser.add_argument("--inflations", default="1.4,2,3,4")
    parser.add_argument("--knn", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each program")
    parser.add_argument("--threads", type=int, default=2, help="mcl -te and numba threads")
    parser.add_argument(
        "--tails", default="", help="also run ours once at each of these tail masses (the pruning study), e.g. 0,0.003"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="the CPU kernel even where a CUDA GPU would take the dense products"
    )
    parser.add_argument("--memory", action="store_true", help="also print each inflation's peak memory (tracemalloc)")
    parser.add_argument(
        "--per-iteration",
        action="store_true",
        help="also print where our time goes: seconds of each of the first iterations (last repeat)",
    )
    parser.add_argument(
        "--mcl-cache", type=Path, default=None, help="keep/reuse mcl's results here (the table says which were reused)"
    )
    parser.add_argument(
        "--graph-cache",
        type=Path,
        default=None,
        help="keep/reuse the k-NN graphs here (so another machine runs on the same graphs without the corpus)",
    )
    args = parser.parse_args()
    products = {"dense": False} if args.cpu else {}  # default: markov_cluster's own choice (dense on a CUDA GPU)
    if shutil.which("mcl") is None:
        print("mcl binary not found (Debian package 'mcl')")
        return 1
    import numba
    from scipy import sparse
    from sklearn.metrics import adjusted_rand_score

    from embscope.analysis.mcl import default_tail_mass, markov_cluster

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    markov_cluster(np.ones((3, 3)), 2.0)  # load the numba kernels outside the timings
    print(f"threads: mcl -te {args.threads}, numba {numba.get_num_threads()}; repeats {args.repeats} (interleaved)")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores, shared: other work skews both)")
    header = (
        f"{'graph':>14} {'I':>4} {'mcl min':>8} {'mcl med':>8} {'src':>5} {'ours min':>8} {'ours med':>8} "
        f"{'ratio':>6} {'r med':>6} {'ARI':>6} {'K mcl':>6} {'K ours':>6} {'iter':>4}"
    )
    cached_rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for spec in args.graphs.split(","):
            name, adj, description = build_graph(spec, args.knn, args.graph_cache)
            print(f"\n{name}: {adj.shape[0]} nodes, {adj.nnz} edges ({args.knn}-NN, symmetric) — {description}")
            print(header)
            key = graph_key(adj)
            coo = sparse.triu(adj, 1).tocoo()
            abc = workdir / "graph.abc"
            np.savetxt(abc, np.c_[coo.row, coo.col, coo.data], fmt="%d\t%d\t%.7g")
            n = adj.shape[0]
            for inflation in [float(s) for s in args.inflations.split(",")]:
                path = args.mcl_cache / f"mcl-{key}-I{inflation:g}-t{args.threads}.npz" if args.mcl_cache else None
                hit = path is not None and path.exists()
                t_mcl, t_ours = [], []
                ref = ours = info = None
                if hit:
                    stored = np.load(path)
                    ref, t_mcl = stored["ref"], list(stored["seconds"])
                for _ in range(max(1, args.repeats)):
                    if not hit:
                        ref, seconds = run_mcl(abc, inflation, n, workdir, args.threads)
                        t_mcl.append(seconds)
                    marks: list[float] = []
                    timing = {"on_iteration": lambda *_, m=marks: m.append(time.perf_counter())}
                    timing = timing if args.per_iteration else {}
                    gpu_peak_reset()
                    t = time.perf_counter()
                    ours, info = markov_cluster(adj, inflation, return_info=True, **products, **timing)
                    t_ours.append(time.perf_counter() - t)
                if path is not None and not hit:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(path, ref=ref, seconds=np.array(t_mcl))
                cached_rows += hit
                ari = adjusted_rand_score(ref, ours)
                print(
                    f"{name:>14} {inflation:>4g} {min(t_mcl):>8.2f} {np.median(t_mcl):>8.2f} "
                    f"{'cache' if hit else 'run':>5} {min(t_ours):>8.3f} {np.median(t_ours):>8.3f} "
                    f"{min(t_mcl) / min(t_ours):>6.1f} {np.median(t_mcl) / np.median(t_ours):>6.1f} {ari:>6.3f} "
                    f"{ref.max() + 1:>6} {ours.max() + 1:>6} {info.iterations:>4}  "
                    f"tail {default_tail_mass(inflation):g}"
                    + (
                        ""
                        if info.device == "cpu"
                        else f", dense products on {info.device} (no tail; GPU peak {gpu_peak_mib():.0f} MiB), "
                        "then the CPU"
                    ),
                    flush=True,
                )
                if args.per_iteration and marks:
                    # The first iteration's time includes the set-up (flow matrix, ordering).
                    steps = np.diff([t, *marks])
                    shown = " ".join(f"{x:.2f}" for x in steps[:8])
                    print(
                        f"{'':>14} {'':>4} seconds per iteration (last run): {shown}" + (" …" if steps.size > 8 else "")
                    )
                for tail in [float(t) for t in args.tails.split(",")] if args.tails else []:
                    # The pruning study: the same graph and mcl partition, another tail mass (one run each).
                    t = time.perf_counter()
                    other, other_info = markov_cluster(adj, inflation, tail_mass=tail, return_info=True)
                    seconds = time.perf_counter() - t
                    print(
                        f"{'':>14} {'':>4} {'':>8} {'':>8} {'':>5} {seconds:>8.3f} {'':>8} "
                        f"{min(t_mcl) / seconds:>6.1f} {'':>6} {adjusted_rand_score(ref, other):>6.3f} "
                        f"{'':>6} {other.max() + 1:>6} {other_info.iterations:>4}  tail {tail:g}",
                        flush=True,
                    )
            if args.memory:
                sweep_memory(adj, [float(s) for s in args.inflations.split(",")], abc, workdir, args.threads)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    if cached_rows:
        print(f"NOTE: {cached_rows} row(s) used mcl results cached in {args.mcl_cache}, not measured in this run")
    else:
        print("all mcl times measured in this run, interleaved with ours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
