"""MCL inflation sweep and its seed-000 read-out (phase 3 of the diagnostic).

For each inflation: cluster count, singletons, iterations, purity against the
leaf labels and the parent labels, NMI and ARI against the leaf labels.  The
read-out follows the postmortem: one cluster everywhere → collapse (and the
parent purity is then only the modal-parent share); parent purity rising
relative to leaf purity as inflation gets coarser → the geometry encodes the
hierarchy and the classifier head is the bottleneck; flat → weak representation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from embscope.analysis.cluster_metrics import adjusted_rand_index, normalized_mutual_info, purity
from embscope.errors import BadInputError
from embscope.options import DEFAULT_INFLATIONS  # noqa: F401 (re-exported: the one definition is in options)

#: Parent purity must exceed leaf purity by this much more at the coarsest
#: inflation than at the finest one to count as "rising".
HIERARCHY_GAP_RISE = 0.05
#: ... and cover at least this share of the way from the modal-parent baseline to 1.
HIERARCHY_LIFT = 0.5
#: Leaf purity at the coarsest inflation above which leaves are simply never merged.
LEAVES_SEPARATED_PURITY = 0.9
#: Parent-purity lift over chance below which the sweep reads as flat (weak representation).
WEAK_LIFT = 0.3


@dataclass(frozen=True)
class InflationStats:
    """Statistics of one MCL clustering; label-based fields are None without labels."""

    inflation: float
    n_clusters: int
    n_singletons: int
    iterations: int
    purity_leaf: float | None
    purity_parent: float | None
    nmi_leaf: float | None
    ari_leaf: float | None

    def to_dict(self) -> dict:
        return {
            "inflation": float(self.inflation),
            "n_clusters": int(self.n_clusters),
            "n_singletons": int(self.n_singletons),
            "iterations": int(self.iterations),
            "purity_leaf": self.purity_leaf,
            "purity_parent": self.purity_parent,
            "nmi_leaf": self.nmi_leaf,
            "ari_leaf": self.ari_leaf,
        }


@dataclass(frozen=True)
class Readout:
    """Short code (``collapse``, ``hierarchy``, ``weak``, ``leaves_separated``,
    ``no_parents``, ``unlabelled``) and one sentence for the report."""

    label: str
    text: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class ClusterSweep:
    """Result of an inflation sweep.

    Attributes
    ----------
    stats
        One :class:`InflationStats` per inflation, ascending inflation.
    cluster_ids
        Inflation → int64 cluster id per node.
    readout
        The seed-000 read-out.
    modal_parent_share
        Purity of a single cluster against the parent labels (None without parents).
    """

    stats: tuple[InflationStats, ...]
    cluster_ids: dict[float, np.ndarray] = field(repr=False)
    readout: Readout
    modal_parent_share: float | None = None

    def to_summary(self) -> dict:
        """``{"inflations": [...], "readout": {"label", "text"}}`` for ``summary.json``."""
        return {
            "inflations": [s.to_dict() for s in self.stats],
            "readout": {"label": self.readout.label, "text": self.readout.text},
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Cluster ids per inflation keyed ``clusters_I<inflation>`` (e.g. ``clusters_I2``, ``clusters_I1.4``).

        What ``arrays.npz`` holds (``embscope.tasks.report.arrays_payload``).
        """
        return {f"clusters_I{float(i):g}": np.asarray(ids) for i, ids in sorted(self.cluster_ids.items())}

    def evidence_lines(self) -> list[str]:
        """One line per inflation, then the read-out (and any notes), for the verdict."""
        lines = []
        for s in self.stats:
            parts = [
                f"MCL I={s.inflation:g}: {s.n_clusters} clusters ({s.n_singletons} singletons), "
                f"{s.iterations} iterations"
            ]
            if s.purity_leaf is not None:
                parts.append(f"purity leaf {s.purity_leaf:.3f}")
            if s.purity_parent is not None:
                parts.append(f"parent {s.purity_parent:.3f}")
            if s.nmi_leaf is not None:
                parts.append(f"NMI {s.nmi_leaf:.3f}, ARI {s.ari_leaf:.3f}")
            lines.append(", ".join(parts))
        lines.append(self.readout.text)
        lines.extend(self.readout.notes)
        return lines


def _present(values) -> np.ndarray | None:
    """Mask of rows with a usable label (not None/empty/NaN); None when no labels at all."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=object)
    mask = np.array([v is not None and v == v and str(v) != "" for v in arr], dtype=bool)
    return mask if mask.any() else None


def inflation_stats(
    inflation: float,
    cluster_ids: np.ndarray,
    iterations: int,
    labels=None,
    parents=None,
) -> InflationStats:
    """Statistics of one clustering against optional leaf and parent labels.

    Rows without a label are left out of the label-based scores.
    """
    ids = np.asarray(cluster_ids)
    sizes = np.bincount(ids) if ids.size else np.zeros(0, dtype=np.int64)
    p_leaf = nmi = ari = p_parent = None
    mask = _present(labels)
    if mask is not None:
        lab = np.asarray(labels, dtype=object)[mask].astype(str)
        p_leaf = purity(ids[mask], lab)
        nmi = normalized_mutual_info(ids[mask], lab)
        ari = adjusted_rand_index(ids[mask], lab)
    pmask = _present(parents)
    if pmask is not None:
        p_parent = purity(ids[pmask], np.asarray(parents, dtype=object)[pmask].astype(str))
    return InflationStats(
        float(inflation),
        int(np.count_nonzero(sizes)),
        int(np.sum(sizes == 1)),
        int(iterations),
        p_leaf,
        p_parent,
        nmi,
        ari,
    )


def modal_share(values) -> float | None:
    """Share of the most common value (the purity of a single all-embracing cluster)."""
    mask = _present(values)
    if mask is None:
        return None
    _, counts = np.unique(np.asarray(values, dtype=object)[mask].astype(str), return_counts=True)
    return float(counts.max() / counts.sum())


def sweep_readout(
    stats: Iterable[InflationStats], modal_parent: float | None = None, modal_leaf: float | None = None
) -> Readout:
    """The seed-000 read-out of a sweep (see the module docstring)."""
    stats = sorted(stats, key=lambda s: s.inflation)
    if not stats:
        raise BadInputError("an MCL sweep needs at least one inflation")
    notes = []
    counts = [s.n_clusters for s in stats]
    if any(b < a for a, b in zip(counts, counts[1:], strict=False)):
        listing = ", ".join(f"I={s.inflation:g}: {s.n_clusters}" for s in stats)
        notes.append(
            f"Cluster count is not monotone in inflation ({listing}); "
            "the graph is near a threshold between granularities."
        )
    else:
        notes.append(
            "Cluster count grows monotonically with inflation "
            f"({counts[0]} at I={stats[0].inflation:g} to {counts[-1]} at I={stats[-1].inflation:g})."
        )
    notes = tuple(notes)
    if all(s.n_clusters == 1 for s in stats):
        if modal_parent is not None:
            share = f"just the modal-parent share ({modal_parent:.3f})"
        elif modal_leaf is not None:
            share = f"just the modal-label share ({modal_leaf:.3f})"
        else:
            share = "meaningless"
        return Readout(
            "collapse",
            "One cluster at every inflation: the representation has collapsed; "
            f"purity is then {share}, a property of the labels, not of the geometry.",
            notes,
        )
    if stats[0].purity_leaf is None:
        return Readout(
            "unlabelled",
            f"{counts[0]}–{counts[-1]} clusters across inflations; no labels, so purity cannot be judged.",
            notes,
        )
    # Coarsest inflation that still splits the data: there merging behaviour shows.
    coarse = next(s for s in stats if s.n_clusters > 1)
    fine = stats[-1]
    if stats[0].purity_parent is None:
        return Readout(
            "no_parents",
            f"Leaf purity {coarse.purity_leaf:.3f} at I={coarse.inflation:g} to "
            f"{fine.purity_leaf:.3f} at I={fine.inflation:g}; no parent labels, so the "
            "hierarchy cannot be judged.",
            notes,
        )
    gap_coarse = coarse.purity_parent - coarse.purity_leaf
    gap_fine = fine.purity_parent - fine.purity_leaf
    base = modal_parent if modal_parent is not None else 0.0
    lift = (coarse.purity_parent - base) / (1.0 - base) if base < 1.0 else 0.0
    if lift < WEAK_LIFT:
        return Readout(
            "weak",
            f"Parent purity stays near chance across inflations ({coarse.purity_parent:.3f} "
            f"at I={coarse.inflation:g}, {fine.purity_parent:.3f} at I={fine.inflation:g}; one "
            f"cluster would give {base:.3f}): no hierarchical structure in the embeddings, the "
            "representation itself is weak; loss-function fixes won't help.",
            notes,
        )
    if gap_coarse - gap_fine >= HIERARCHY_GAP_RISE and lift >= HIERARCHY_LIFT:
        return Readout(
            "hierarchy",
            f"Parent purity holds at {coarse.purity_parent:.3f} at coarse inflation "
            f"(I={coarse.inflation:g}, {coarse.n_clusters} clusters) while leaf purity falls to "
            f"{coarse.purity_leaf:.3f}: clusters merge leaves of the same parent, so the embedding "
            "encodes the label hierarchy; if predictions are poor, the classifier head is the "
            "bottleneck.",
            notes,
        )
    if coarse.purity_leaf >= LEAVES_SEPARATED_PURITY:
        return Readout(
            "leaves_separated",
            f"Clusters keep the leaf labels apart even at I={coarse.inflation:g} "
            f"(leaf purity {coarse.purity_leaf:.3f}, {coarse.n_clusters} clusters): the "
            "representation separates leaves; no parent-level merging at these inflations.",
            notes,
        )
    return Readout(
        "mixed",
        f"Clusters are far purer than chance (parent purity {coarse.purity_parent:.3f} at "
        f"I={coarse.inflation:g} vs {base:.3f} for one cluster) but merging at coarse inflation "
        "does not follow the parent labels: structure without the label hierarchy.",
        notes,
    )


def build_sweep(results: dict[float, tuple[np.ndarray, int]], labels=None, parents=None) -> ClusterSweep:
    """Assemble a :class:`ClusterSweep` from ``inflation → (cluster_ids, iterations)``."""
    stats = tuple(inflation_stats(i, ids, it, labels, parents) for i, (ids, it) in sorted(results.items()))
    modal_parent = modal_share(parents)
    readout = sweep_readout(stats, modal_parent, modal_share(labels))
    return ClusterSweep(stats, {float(i): ids for i, (ids, _) in results.items()}, readout, modal_parent)


def cluster_sweep(
    adjacency,
    labels=None,
    parents=None,
    inflations: Iterable[float] = DEFAULT_INFLATIONS,
    on_done: Callable[[float, int, int], None] | None = None,
    **mcl_options,
) -> ClusterSweep:
    """Run MCL at every inflation (highest first: it converges fastest) and read the sweep.

    Parameters
    ----------
    adjacency
        Non-negative ``N×N`` adjacency (see :func:`embscope.analysis.graph.knn_adjacency`).
    labels, parents
        Optional length-N leaf and parent labels.
    inflations
        Inflation values (> 1); duplicates are dropped.
    on_done
        Called as ``on_done(inflation, done, total)`` after each inflation; may raise to stop.
    **mcl_options
        Passed to :func:`embscope.analysis.mcl.markov_cluster`.
    """
    from embscope.analysis.mcl import markov_cluster

    todo = sorted({float(i) for i in inflations}, reverse=True)
    results = {}
    for done, inflation in enumerate(todo, 1):
        ids, info = markov_cluster(adjacency, inflation, return_info=True, **mcl_options)
        results[inflation] = (ids, info.iterations)
        if on_done is not None:
            on_done(inflation, done, len(todo))
    return build_sweep(results, labels, parents)
