"""k-NN graph: time and recall@k of EmbScope's faiss search against the previous path, on planted and real data.

The previous path (before issue 11) was an exhaustive torch matmul + top-k up
to 30 000 points and pynndescent's NN-descent above.  Equal work: both build
the same cosine k-NN graph (same k, self excluded) of the same rows with the
same threads; NN-descent's JIT compile is paid once in a warm-up and reported
apart, never inside a timed run.  The runs of the two paths alternate
(interleaved) and each prints min / median over the repeats, of wall time and
of the process's CPU time (on a shared machine the CPU time, divided by the
threads, is the closer estimate of an idle machine's wall time).  Recall@k of
both is measured on the same 1 000 random points against an exhaustive search
(a neighbour counts when its cosine is within 1e-5 of the k-th exact one).

Cases (``--case``):

``planted-50k``    planted two-level clusters, 50 000 × 384
``wordnet-20k``    real: 20 000 MiniLM WordNet gloss embeddings (benchmarks/corpora.py), 384-d
``wordnet-50k``    the real set stacked to 50 000 rows (noisy copies, see corpora.py), 384-d
``planted-1m``     planted two-level clusters, 10⁶ × 128
``wordnet-1m``     the real set stacked to 10⁶ rows, projected on its top 128 principal axes (PCA of
                   the 20 000 real rows): real geometry at the issue's 10⁶ × 128 shape

``--crossover 5000x384 8000x128 …`` instead times EmbScope's exhaustive and IVF
searches forced on planted data of those shapes (interleaved, min of the
repeats): where they cost the same is ``graph.EXACT_MAX_WORK``.

Usage::

    python benchmarks/bench_knn.py --case planted-50k wordnet-50k --repeats 3
    python benchmarks/bench_knn.py --case planted-1m wordnet-1m --repeats 1
    python benchmarks/bench_knn.py --crossover 5000x384 8000x128 15000x128 --repeats 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PREVIOUS_EXACT_MAX = 30_000  # the previous rule: exhaustive torch search up to here, NN-descent above


def make_case(name: str) -> tuple[np.ndarray, str]:
    """The rows of a case and one line saying what they are."""
    from planted import planted_hierarchy

    if name.startswith("planted"):
        n, d = (50_000, 384) if name == "planted-50k" else (1_000_000, 128)
        x, _, _ = planted_hierarchy(n, dim=d, n_parents=20, leaves_per_parent=25, seed=0)
        return x, f"planted two-level clusters (500 leaves), {n} × {d}"
    from corpora import load_corpus

    if name == "wordnet-20k":
        x, _, _, what = load_corpus("wordnet")
        return x, what
    if name == "wordnet-50k":
        x, _, _, what = load_corpus("wordnet-stacked", n=50_000)
        return x, what
    if name == "wordnet-1m":
        real, _, _, _ = load_corpus("wordnet")
        x, _, _, what = load_corpus("wordnet-stacked", n=1_000_000)
        mean = real.mean(axis=0)
        _, _, vt = np.linalg.svd(real - mean, full_matrices=False)
        axes = vt[:128].T.astype(np.float32)
        out = np.empty((x.shape[0], 128), np.float32)
        for s in range(0, x.shape[0], 65_536):
            out[s : s + 65_536] = (x[s : s + 65_536] - mean) @ axes
        return out, f"{what}; projected on the top 128 principal axes of the 20 000 real rows"
    raise SystemExit(f"unknown case {name!r}")


def previous_graph(x: np.ndarray, k: int, threads: int) -> np.ndarray:
    """The pre-issue-11 graph: exhaustive torch top-k up to 30 000 points, pynndescent above (indices only)."""
    from embscope.analysis.graph import unit_rows

    u = unit_rows(x)
    n = u.shape[0]
    if n <= PREVIOUS_EXACT_MAX:
        import torch

        torch.set_num_threads(threads)
        t = torch.from_numpy(u)
        out = np.empty((n, k), np.int64)
        with torch.inference_mode():
            for start in range(0, n, 4096):
                s = t[start : start + 4096] @ t.T
                rows = torch.arange(s.shape[0])
                s[rows, rows + start] = -torch.inf
                out[start : start + 4096] = torch.topk(s, k, dim=1).indices.numpy()
        return out
    import numba
    from pynndescent import NNDescent

    numba.set_num_threads(threads)
    index = NNDescent(u, metric="cosine", n_neighbors=k + 1, random_state=0, low_memory=True, compressed=False)
    idx, _ = index.neighbor_graph
    out = np.empty((n, k), np.int64)
    for i in range(n):  # as the previous code: self removed, short rows padded with the last
        row = idx[i][(idx[i] != i) & (idx[i] >= 0)][:k]
        out[i] = np.concatenate([row, np.repeat(row[-1:], k - row.size)])
    return out


def recall_of(indices: np.ndarray, u: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> float:
    """recall@k of ``indices[queries]`` against the exact top-k cosines ``truth`` (ties counted)."""
    from embscope.analysis.knn_faiss import recall_at_k

    found = np.einsum("id,ikd->ik", u[queries], u[indices[queries]])
    return recall_at_k(found, truth)


def crossover(shapes: list[str], k: int, repeats: int, threads: int) -> int:
    """Exhaustive against IVF search, both forced, on planted data of each shape: wall and CPU time, recall."""
    from planted import planted_hierarchy

    from embscope.analysis.graph import SELECTION_COST, knn_graph

    print(f"k = {k}, {threads} threads; machine shared with other jobs (CPU time is the steadier figure)")
    for shape in shapes:
        n, d = (int(v) for v in shape.lower().split("x"))
        x, _, _ = planted_hierarchy(n, dim=d, n_parents=20, leaves_per_parent=25, seed=0)
        runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        for _ in range(repeats):
            for exact in (True, False):  # interleaved
                t0, c0 = time.perf_counter(), time.process_time()
                graph = knn_graph(x, k, exact=exact, device="cpu", threads=threads)
                runs[exact].append((time.perf_counter() - t0, time.process_time() - c0, graph.recall))
        for exact in (True, False):
            wall, cpu = min(r[0] for r in runs[exact]), min(r[1] for r in runs[exact])
            print(
                f"{n} × {d} (n²·(d + {SELECTION_COST}) = {n * n * (d + SELECTION_COST):.2e}) "
                f"{'exhaustive' if exact else 'IVF       '}: wall min {wall:.1f} s, CPU min {cpu:.1f} s, "
                f"recall {runs[exact][-1][2]:.3f}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="+", default=["planted-50k", "wordnet-50k"])
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-previous", action="store_true", help="time EmbScope's search only")
    parser.add_argument("--crossover", nargs="+", metavar="NxD", help="exhaustive vs IVF on planted data")
    args = parser.parse_args(argv)
    if args.crossover:
        return crossover(args.crossover, args.k, args.repeats, args.threads)

    from embscope.analysis import knn_faiss as kf
    from embscope.analysis.graph import knn_graph, unit_rows, without_self
    from embscope.generators import run_to_end

    print(f"k = {args.k}, {args.threads} threads; machine shared with other jobs (figures are noisy, ratios count)")
    for case in args.case:
        x, what = make_case(case)
        n = x.shape[0]
        u = unit_rows(x)
        queries = np.random.default_rng(123).choice(n, 1000, replace=False)
        t0 = time.perf_counter()
        s, i = run_to_end(kf.exact_search(u, queries, args.k + 1, args.threads))
        truth = without_self(i, s, queries, args.k)[1]
        print(f"\n== {case}: {what}\n   exhaustive truth for 1 000 queries: {time.perf_counter() - t0:.1f} s")
        methods = ["embscope"] + ([] if args.no_previous else ["previous"])
        if "previous" in methods and n > PREVIOUS_EXACT_MAX:
            t0 = time.perf_counter()
            previous_graph(x[:2000], args.k, args.threads)  # NN-descent's JIT compile, outside the timed runs
            print(f"   previous: NN-descent warm-up (JIT compile) {time.perf_counter() - t0:.1f} s, not timed below")
        times: dict[str, list[float]] = {m: [] for m in methods}
        cpu: dict[str, list[float]] = {m: [] for m in methods}
        recalls: dict[str, float] = {}
        info = ""
        for _ in range(args.repeats):
            for method in methods:  # interleaved
                t0, c0 = time.perf_counter(), time.process_time()
                if method == "embscope":
                    graph = knn_graph(x, args.k, device="cpu", threads=args.threads)
                    indices = graph.indices
                    info = graph.describe()
                else:
                    indices = previous_graph(x, args.k, args.threads)
                times[method].append(time.perf_counter() - t0)
                cpu[method].append(time.process_time() - c0)
                recalls[method] = recall_of(indices, u, queries, truth)
                del indices
        for method in methods:
            t, c = np.asarray(times[method]), np.asarray(cpu[method])
            print(
                f"   {method:9s} wall min {t.min():7.1f} s  median {np.median(t):7.1f} s; CPU min {c.min():7.1f} s  "
                f"median {np.median(c):7.1f} s ({len(t)} runs); recall@{args.k} {recalls[method]:.4f} "
                "(bench's own 1 000 queries)"
            )
        print(f"   embscope graph: {info}")
        if "previous" in methods:
            ratio = np.median(times["previous"]) / np.median(times["embscope"])
            cpu_ratio = np.median(cpu["previous"]) / np.median(cpu["embscope"])
            print(f"   previous / embscope, median wall time: {ratio:.2f}×, median CPU time: {cpu_ratio:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
