"""Writing an analysis to disk: summary.json, report.md, arrays.npz (atomically).

Every file is written to a temporary sibling and renamed into place, so an
interrupted export never leaves a half-written report behind.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from embscope.errors import BadInputError
from embscope.formatting import format_number as _fmt
from embscope.storage import atomic_write_bytes, atomic_write_text


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


#: Order and wording of the graded table (seed 002's tables).
METRIC_LABELS = {
    "collapse_ratio": "Collapse ratio (max L2 / mean norm)",
    "effective_rank_normalized": "Effective rank (normalised)",
    "participation_ratio_normalized": "Participation ratio (normalised)",
    "dims_for_95_variance_normalized": "Dims for 95% variance (share)",
    "collapsed_dimensions_ratio": "Collapsed dimensions (share)",
    "isotropy": "Isotropy",
    "mean_cosine": "Mean pairwise cosine",
    "max_cosine": "Max pairwise cosine",
    "uniformity": "Uniformity (Wang & Isola, t=2)",
    "top1_dominance": "Top-1 dominance σ₁/Σσ",
    "top1_variance_ratio": "Top-1 variance ratio",
    "top5_variance_ratio": "Top-5 variance ratio",
    "mean_dimension_std_normalized": "Mean dimension std / RMS std",
    "min_dimension_std_normalized": "Min dimension std / RMS std",
    "knn_label_lift": "kNN label accuracy, lift over chance (chance-corrected)",
    "purity_parent": "Parent purity, lift over chance (coarsest informative inflation)",
}


def _with_chance(value, score: dict | None) -> str:
    if score is None:
        return _fmt(value)
    return f"{_fmt(value)} ({_fmt(score['chance'])} ± {_fmt(score['chance_std'])})"


def _with_z(score: dict | None) -> str:
    if score is None:
        return "—"
    return f"{_fmt(score['value'])} (z {_fmt(score['z'])})"


def _label_lines(geo: dict) -> list[str]:
    """kNN label accuracy beside its chance baseline and interval (report.md)."""
    if geo.get("knn_label_accuracy") is None or geo.get("knn_label_chance") is None:
        return []
    times = geo.get("knn_label_times_chance")
    return [
        "",
        "## Labels against chance",
        "",
        f"kNN label accuracy {_fmt(geo['knn_label_accuracy'])} (95% interval {_fmt(geo['knn_label_ci_low'])}–"
        f"{_fmt(geo['knn_label_ci_high'])}) vs {_fmt(geo['knn_label_chance'])} ± {_fmt(geo['knn_label_chance_std'])} "
        f"by chance on the same graph ({_fmt(times) + '× chance' if times is not None else 'chance is 0'}, "
        f"z {_fmt(geo['knn_label_z'])}; ceiling {_fmt(geo['knn_label_ceiling'])}, chance-corrected lift "
        f"{_fmt(geo['knn_label_lift'])}). Method: {geo.get('knn_label_method', '')}.",
    ]


def _interval(geo: dict, name: str) -> str:
    low, high = geo.get(f"{name}_ci_low"), geo.get(f"{name}_ci_high")
    return f" (95% interval {_fmt(low)}–{_fmt(high)})" if low is not None and high is not None else ""


def label_free_rows(geo: dict) -> list[tuple[str, str, str]]:
    """(label, value with its interval, how it was estimated) of each label-free quality metric present.

    Shown ungraded (no source justifies a threshold) in report.md and the GUI's Overview.
    """
    rows = [
        ("RankMe (= effective rank, Garrido et al. 2023)", "rankme", ""),
        ("α-ReQ, eigenvalue decay exponent (Agrawal et al. 2022)", "alpha_req", ""),
        ("NESum Σλ/λ₁ (He & Ozay 2022)", "nesum", ""),
        ("Condition number λmax/λmin", "condition_number", "unbounded (rank-deficient) when —"),
        ("Self-clustering (Tsitsulin et al. 2023)", "self_clustering", geo.get("self_clustering_method", "")),
        (
            "Intrinsic dimension, TwoNN (Facco et al. 2017)",
            "intrinsic_dimension_twonn",
            geo.get("intrinsic_dimension_method", ""),
        ),
        ("Uniformity (Wang & Isola)", "uniformity", geo.get("cosine_method", "")),
    ]
    if not any(geo.get(key) is not None for _, key, _ in rows):
        return []
    out = []
    for label, key, how in rows:
        if key in geo:
            interval_key = "intrinsic_dimension" if key == "intrinsic_dimension_twonn" else key
            out.append((label, f"{_fmt(geo.get(key))}{_interval(geo, interval_key)}", how))
    return out


def _label_free_lines(geo: dict) -> list[str]:
    """report.md's table of :func:`label_free_rows`."""
    rows = label_free_rows(geo)
    if not rows:
        return []
    lines = ["", "## Label-free quality (ungraded)", "", "| Metric | Value | How |", "|---|---|---|"]
    return lines + [f"| {label} | {value} | {how} |" for label, value, how in rows]


def report_markdown(summary: dict, weights_lines: list[str] | None = None) -> str:
    """Human-readable report: the verdict and its evidence first, then the graded table."""
    verdict = summary["verdict"]
    geo = summary["geometry"]
    lines = [
        f"# EmbScope report — {Path(summary['source']).name or summary['source']}",
        "",
        f"**Verdict: `{verdict['label']}`** — {verdict['headline']}",
        "",
    ]
    lines += [f"- {line}" for line in verdict["evidence"]]
    kind = summary["kind"]
    shape = f"{summary['n_samples']} × {summary['dim']}"
    if kind == "concept":
        shape = f"{summary['n_samples']} × {summary['n_concepts']} × {summary['dim']}"
    lines += ["", f"Input: {kind} embeddings, {shape}. Schema {summary['schema_version']}."]
    for note in summary.get("input_notes", []):
        lines.append(f"Note: {note}")
    lines += ["", "## Graded metrics", "", "| Metric | Value | Target | Grade |", "|---|---|---|---|"]
    grades = summary["grades"]
    ordered = [m for m in METRIC_LABELS if m in grades] + [m for m in grades if m not in METRIC_LABELS]
    for name in ordered:
        g = grades[name]
        mark = {"GOOD": "GOOD", "OK": "OK", "POOR": "**POOR**"}[g["grade"]]
        lines.append(f"| {METRIC_LABELS.get(name, name)} | {_fmt(g['value'])} | {g['target']} | {mark} |")
    lines += _label_lines(geo)
    lines += _label_free_lines(geo)
    lines += ["", "## Geometry", "", "| Metric | Value |", "|---|---|"]
    for key, value in geo.items():
        lines.append(f"| {key} | {_fmt(value)} |")
    if "concepts" in summary:
        lines += ["", "## Concepts (per sample)", "", "| Metric | Value |", "|---|---|"]
        for key, value in summary["concepts"].items():
            if key != "duplicate_concept_pairs":
                lines.append(f"| {key} | {_fmt(value)} |")
    if "predictions" in summary:
        p = summary["predictions"]
        lines += ["", "## Predictions (Phase 1)", ""]
        lines.append(
            f"Accuracy {_fmt(p['accuracy'])}, macro-F1 {_fmt(p['macro_f1'])}, modal class "
            f"'{p['modal_class']}' at {_fmt(p['modal_share'])} of predictions; modal base rate "
            f"{_fmt(p['modal_base_rate'])}. Mode collapse: {_fmt(p['mode_collapse'])}; accuracy is "
            f"the base rate: {_fmt(p['accuracy_is_base_rate'])}."
        )
        lines += ["", "| Class | Count | Share |", "|---|---|---|"]
        lines += [f"| {row['class']} | {row['count']} | {_fmt(row['share'])} |" for row in p["top"]]
    if "clusters" in summary:
        c = summary["clusters"]
        lines += ["", "## MCL inflation sweep (Phase 3)", "", f"Read-out: {c['readout']['text']}", ""]
        lines += [
            "| Inflation | Clusters | Singletons | Iterations | Purity leaf (chance) | Purity parent (chance) "
            "| NMI leaf (chance) | AMI leaf (z) | ARI leaf (z) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in c["inflations"]:
            chance = row.get("chance") or {}
            leaf, parent = chance.get("leaf") or {}, chance.get("parent") or {}
            singles = f"{row['n_singletons']}" + (" (fragmented)" if row.get("fragmented") else "")
            lines.append(
                f"| {row['inflation']:g} | {row['n_clusters']} | {singles} | {row['iterations']} | "
                f"{_with_chance(row['purity_leaf'], leaf.get('purity'))} | "
                f"{_with_chance(row['purity_parent'], parent.get('purity'))} | "
                f"{_with_chance(row['nmi_leaf'], leaf.get('nmi'))} | {_with_z(leaf.get('ami'))} | "
                f"{_with_z(leaf.get('ari')) if leaf else _fmt(row['ari_leaf'])} |"
            )
        lines.append("")
        lines.append(
            "Chance: the same clustering with the labels randomly permuted (mean ± std over the permutations; "
            "NMI/AMI/ARI baselines in closed form). z: one-sided permutation z-score. Fragmented: more than half "
            "the samples are singletons, so purity there is not evidence."
        )
    if weights_lines:  # the weights report brings its own "## Weights" heading
        lines += [""] + list(weights_lines)
    return "\n".join(lines) + "\n"


def arrays_payload(result) -> dict[str, np.ndarray]:
    """Raw arrays for ``arrays.npz``: embeddings, labels, predictions, confusion, clusters, spectra.

    A checkpoint's weight inspection adds each matrix's full singular spectrum
    (``weights/sv/<parameter name>``).
    """
    emb = result.embeddings
    out: dict[str, np.ndarray] = {"embeddings": emb.vectors}
    for name in ("labels", "parents", "predictions", "ids"):
        value = getattr(emb, name)
        if value is not None:
            out[name] = np.asarray(value).astype(str)
    if result.predictions is not None and result.predictions.confusion.size:
        out["confusion"] = result.predictions.confusion
        out["confusion_classes"] = np.asarray(result.predictions.classes).astype(str)
    out["singular_values"] = result.geometry.spectrum.singular_values
    out["centered_singular_values"] = result.geometry.spectrum.centered_singular_values
    out["dimension_std"] = result.geometry.dimension_std
    out["norms"] = result.geometry.norms
    if result.geometry.duplicate_pairs.size:
        out["duplicate_pairs"] = result.geometry.duplicate_pairs
    if result.graph is not None:
        out["knn_indices"] = result.graph.indices
        out["knn_similarities"] = result.graph.similarities
    if result.clusters is not None:
        out.update(result.clusters.arrays())
    if result.weights is not None:
        out.update(result.weights.arrays())
    return out


def write_outputs(result, out_dir: str | Path) -> dict[str, Path]:
    """Write summary.json, report.md and arrays.npz for ``result`` into ``out_dir``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    weights_lines = result.weights.markdown_lines() if result.weights is not None else None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays_payload(result))
    return {
        "summary": atomic_write_text(out / "summary.json", summary_json(result.summary)),
        "report": atomic_write_text(out / "report.md", report_markdown(result.summary, weights_lines)),
        "arrays": atomic_write_bytes(out / "arrays.npz", buffer.getvalue()),
    }
