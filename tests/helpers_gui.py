"""Known analysis results for the GUI tests, made without the Qt layer.

``make_result`` runs the real pipeline (``analyze_job``) on synthetic
Gaussian clusters with a two-level hierarchy, then attaches an exact k-NN
graph and an MCL sweep computed here with ``markov_cluster`` and purity by
hand, so the panels can be checked against numbers computed independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from embscope.data import EmbeddingSet


def purity(cluster_ids: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose label is their cluster's most common label (by hand)."""
    total = 0
    for c in np.unique(cluster_ids):
        _, counts = np.unique(labels[cluster_ids == c], return_counts=True)
        total += counts.max()
    return total / len(labels)


def mcl_row(graph, labels, parents, inflation: float) -> tuple[dict, np.ndarray]:
    """One sweep row at ``inflation`` and the cluster ids, from embscope's markov_cluster."""
    from embscope.analysis.graph import knn_adjacency
    from embscope.analysis.mcl import markov_cluster

    ids = np.asarray(markov_cluster(knn_adjacency(graph), inflation))
    _, counts = np.unique(ids, return_counts=True)
    row = {
        "inflation": float(inflation),
        "n_clusters": int(len(counts)),
        "n_singletons": int((counts == 1).sum()),
        "iterations": 0,
        "purity_leaf": purity(ids, labels),
        "purity_parent": purity(ids, parents),
        "nmi_leaf": None,
        "ari_leaf": None,
    }
    return row, ids


@dataclass(eq=False)
class SweepForTests:
    """The parts of a ClusterSweep the GUI reads (typed ``stats``, ``readout``, ``cluster_ids``) and
    ``to_summary()``/``evidence_lines()`` for the summary, built from rows computed here by hand."""

    rows: list[dict]
    cluster_ids: dict[float, np.ndarray]
    readout_text: str = "test read-out"
    notes: list[str] = field(default_factory=list)

    @property
    def stats(self) -> tuple:
        from embscope.analysis.sweep import InflationStats

        return tuple(InflationStats(**row) for row in self.rows)

    @property
    def readout(self):
        from embscope.analysis.sweep import Readout

        return Readout("test", self.readout_text)

    def to_summary(self) -> dict:
        return {"inflations": list(self.rows), "readout": {"label": "test", "text": self.readout_text}}

    def evidence_lines(self) -> list[str]:
        return []


def synthetic_embeddings(
    n: int = 300, d: int = 16, seed: int = 0, collapsed: bool = False, predictions: str = "noisy"
) -> EmbeddingSet:
    """Gaussian clusters: 3 parents × 2 leaves; predictions = label with 20 % noise (or one class)."""
    rng = np.random.default_rng(seed)
    n_leaves = 6
    parent_centres = rng.normal(0, 6, size=(3, d))
    leaf_centres = np.repeat(parent_centres, 2, axis=0) + rng.normal(0, 2, size=(n_leaves, d))
    leaf = np.arange(n) % n_leaves
    vectors = (leaf_centres[leaf] + rng.normal(0, 0.7, size=(n, d))).astype(np.float32)
    if collapsed:
        vectors = np.repeat(vectors[:1], n, axis=0)
    labels = np.array([f"leaf{i}" for i in leaf])
    parents = np.array([f"parent{i // 2}" for i in leaf])
    if predictions == "collapsed":
        preds = np.full(n, "leaf0")
    else:
        preds = labels.copy()
        flip = rng.random(n) < 0.2
        preds[flip] = rng.choice(labels, size=int(flip.sum()))
    return EmbeddingSet(
        vectors=vectors,
        labels=labels,
        parents=parents,
        predictions=preds,
        texts=np.array([f"text of sample {i}" for i in range(n)]),
        ids=np.array([f"id{i:04d}" for i in range(n)]),
        source="synthetic.npy",
    )


def make_result(
    n: int = 300,
    d: int = 16,
    seed: int = 0,
    *,
    collapsed: bool = False,
    clusters: bool = True,
    inflations=(1.4, 2.0, 3.0),
    k: int = 10,
    weights=None,
    predictions: str = "noisy",
):
    """A full AnalysisResult of synthetic data (see module docstring)."""
    from embscope.analysis.graph import knn_graph
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job, build_summary
    from embscope.tasks.progress import run_job

    emb = synthetic_embeddings(n, d, seed, collapsed, predictions)
    result = run_job(analyze_job(AnalyzeRequest.of(source="synthetic", embeddings=emb, graph=False, clusters=False)))
    graph = knn_graph(emb.vectors, k, exact=True, device="cpu")
    sweep = None
    if clusters:
        rows, ids = [], {}
        for inflation in inflations:
            row, cid = mcl_row(graph, emb.labels, emb.parents, inflation)
            rows.append(row)
            ids[float(inflation)] = cid
        sweep = SweepForTests(rows, ids)
    summary = dict(result.summary)
    summary.update(
        {
            k_: v
            for k_, v in build_summary(
                emb, result.geometry, result.concepts, result.predictions, sweep, weights
            ).items()
            if k_ in ("clusters", "weights")
        }
    )
    return replace(result, graph=graph, clusters=sweep, weights=weights, summary=summary)


def make_weights():
    """A WeightsReport of a small random state dict with one dead embedding row block and two dead norm gains."""
    from embscope.analysis.weights import inspect_weights

    rng = np.random.default_rng(1)
    table = rng.normal(0, 1, size=(50, 8)).astype(np.float32)
    table[:5] = 0.0
    state = {
        "embed.weight": table,
        "layer.weight": rng.normal(0, 1, size=(8, 8)).astype(np.float32),
        "layer.bias": np.zeros(8, np.float32),
        "out.LayerNorm.weight": np.array([1, 1, 0, 1, 1, 1, 0, 1], np.float32),
    }
    return inspect_weights(state)
