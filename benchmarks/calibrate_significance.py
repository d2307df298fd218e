"""How often the verdict's "label scores above chance" family fires on real embeddings with shuffled labels.

A calibrated family of tests at family-wise α = 0.01 fires on shuffled labels
in at most 1 % of shuffles.  This takes a real corpus (benchmarks/corpora.py:
MiniLM on WordNet glosses, or the demo model's Fashion-MNIST features), its
exact 15-NN cosine graph and its MCL clusters at the default inflations, all
computed once and label-free, then shuffles the labels (leaf with its parent)
``--shuffles`` times.  Each shuffle gets the verdict's family exactly as
``embscope analyze`` builds it: kNN label accuracy and, at every informative
inflation, leaf AMI and parent purity (``build_sweep``; the family size F is
the one the verdict uses).  It prints, per test and for the family, how often

* ``z ≥ z(α/F)`` — the normal reading of the z-score (the rule before schema 1.6);
* ``p ≤ α/F`` — the p-value significance is read from now (:mod:`embscope.analysis.chance`);

with Wilson 95 % intervals, how often permutations were extended, and the
same family on the real labels (the power the rule keeps).

    python benchmarks/calibrate_significance.py [--corpus wordnet:1000] [--shuffles 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import load_corpus  # noqa: E402

from embscope.analysis.chance import MAX_PERMUTATIONS, SIGNIFICANCE_ALPHA, knn_chance, wilson_interval  # noqa: E402
from embscope.analysis.geometry import KNN_VOTE_K  # noqa: E402
from embscope.analysis.graph import knn_adjacency, knn_graph  # noqa: E402
from embscope.analysis.mcl import markov_cluster  # noqa: E402
from embscope.analysis.sweep import build_sweep, cluster_tests  # noqa: E402
from embscope.options import DEFAULT_INFLATIONS, DEFAULT_KNN  # noqa: E402


def family(graph, results, labels, parents, seed: int) -> list[tuple[str, object]]:
    """The verdict's test family for these labels: kNN label accuracy, then the sweep's cluster tests."""
    knn = knn_chance(graph.indices[:, :KNN_VOTE_K], labels, seed=seed)
    sweep = build_sweep(results, labels, parents, seed=seed)
    return [("kNN label accuracy", knn)] + cluster_tests(sweep.stats)


def rate_text(hits: int, total: int) -> str:
    low, high = wilson_interval(hits, total)
    return f"{hits / total:7.4f} [{low:.4f}, {high:.4f}]"


def main(argv: list[str] | None = None) -> int:
    from scipy.stats import norm

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="wordnet:1000", help="name:N of benchmarks/corpora.py")
    parser.add_argument("--shuffles", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    name, _, n = args.corpus.partition(":")
    vectors, labels, parents, description = load_corpus(name, int(n) if n else None)
    print(f"corpus: {description}")
    graph = knn_graph(vectors, DEFAULT_KNN, exact=True, device="cpu")
    adjacency = knn_adjacency(graph)
    results = {}
    for inflation in DEFAULT_INFLATIONS:
        ids, info = markov_cluster(adjacency, inflation, return_info=True)
        results[inflation] = (ids, info.iterations)
        sizes = np.bincount(ids)
        print(f"MCL I={inflation:g}: {sizes.size} clusters, {np.count_nonzero(sizes == 1)} singletons")

    real = family(graph, results, labels, parents, args.seed)
    n_tests = len(real)
    p_crit = SIGNIFICANCE_ALPHA / n_tests
    z_crit = float(norm.isf(p_crit))
    print(f"family: {n_tests} tests at family-wise α = {SIGNIFICANCE_ALPHA:g}: z ≥ {z_crit:.2f} or p ≤ {p_crit:.4f}")
    print("real labels:")
    for test, score in real:
        print(f"  {test:24s} z {score.z:8.1f}  p {score.p_value:.2e} ({score.p_method}, {score.n_permutations} perm.)")

    rng = np.random.default_rng(args.seed)
    z_hits = np.zeros((args.shuffles, n_tests), dtype=bool)
    p_hits = np.zeros_like(z_hits)
    extended = np.zeros_like(z_hits)
    names = [test for test, _ in real]
    started = time.perf_counter()
    for r in range(args.shuffles):
        order = rng.permutation(labels.size)
        tests = family(graph, results, labels[order], parents[order], args.seed + 1 + r)
        if [test for test, _ in tests] != names:
            raise RuntimeError("the family changed with the labels; it is decided by the clusters alone")
        for j, (_, score) in enumerate(tests):
            z_hits[r, j] = score.z >= z_crit
            p_hits[r, j] = score.p_value <= p_crit
            extended[r, j] = score.n_permutations > MAX_PERMUTATIONS
    seconds = time.perf_counter() - started
    print(f"{args.shuffles} shuffles in {seconds:.1f} s ({1000 * seconds / args.shuffles:.0f} ms each)")
    print(f"{'test':24s} {'z ≥ z_crit':>25s} {'p ≤ p_crit':>25s}  extended   (per-test target ≤ {p_crit:.4f})")
    for j, test in enumerate(names):
        print(
            f"{test:24s} {rate_text(int(z_hits[:, j].sum()), args.shuffles):>25s} "
            f"{rate_text(int(p_hits[:, j].sum()), args.shuffles):>25s}  {extended[:, j].mean():8.3f}"
        )
    print(
        f"{'family (any test)':24s} {rate_text(int(z_hits.any(1).sum()), args.shuffles):>25s} "
        f"{rate_text(int(p_hits.any(1).sum()), args.shuffles):>25s}            (target ≤ {SIGNIFICANCE_ALPHA:g})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
