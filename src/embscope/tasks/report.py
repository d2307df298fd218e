"""Writing an analysis to disk: summary.json, report.md, arrays.npz (atomically).

Every file is written to a temporary sibling and renamed into place, so an
interrupted export never leaves a half-written report behind.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from embscope.errors import BadInputError
from embscope.formatting import format_number as _fmt
from embscope.sources.raw import COLUMNS_PREFIX
from embscope.storage import atomic_path, atomic_write_text


def strict_json_ready(value, path: str = "", nulled: list[str] | None = None):
    """``value`` with every NaN/Infinity float replaced by ``None``; their paths appended to ``nulled``.

    JSON has no NaN or Infinity; Python's ``json`` writes them as bare
    literals that strict parsers (and CI gates) reject.
    """
    if isinstance(value, float | np.floating):
        if math.isfinite(float(value)):
            return float(value) if isinstance(value, np.floating) else value
        if nulled is not None:
            nulled.append(path or "(top)")
        return None
    if isinstance(value, dict):
        return {k: strict_json_ready(v, f"{path}.{k}" if path else str(k), nulled) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json_ready(v, f"{path}[{i}]", nulled) for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return strict_json_ready(value.tolist(), path, nulled)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


#: Key of the note listing the values written as null because they were NaN/Infinity.
NULLED_KEY = "nonfinite_written_as_null"


def summary_json(summary: dict) -> str:
    """Strict JSON text (no NaN/Infinity: null, and a list of where under ``NULLED_KEY``)."""
    nulled: list[str] = []
    clean = strict_json_ready(summary, "", nulled)
    if nulled and isinstance(clean, dict):
        clean[NULLED_KEY] = nulled[:50] + ([f"… {len(nulled) - 50} more"] if len(nulled) > 50 else [])
    return json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- whole output sets

#: Files EmbScope writes into an output folder; a folder holding only these (and
#: stale temporaries) is EmbScope's and is replaced as a whole.
OUTPUT_NAMES = frozenset(
    {
        "summary.json",
        "report.md",
        "arrays.npz",
        "compare.json",
        "compare.md",
        "series.json",
        "series.csv",
        "layout_pca.npy",
        "layout_umap.npy",
        "layers.json",
        "layers.csv",
        "weights.json",
        "weights.md",
        "compare_layers.json",
        "series_layers.json",
        # PNGs of --png (embscope.gui.export, render.compare_png); <prefix>_<metric>.png by pattern.
        "spectrum.png",
        "cumulative_variance.png",
        "concept_spectrum.png",
        "predictions.png",
        "confusion.png",
        "mcl_clusters.png",
        "mcl_purity.png",
        "weight_spectra.png",
        "map.png",
        "report.png",
        "compare_spectra.png",
        "compare_concept_spectra.png",
        "compare_maps.png",
        "compare_table.png",
    }
)
_STAGING = ".embscope-tmp-"
#: Per-metric PNGs: series_<metric>.png, layers_<metric>.png, compare_layers_<metric>.png (series_layers_ too).
_PNG_PREFIXES = ("series_", "layers_", "compare_layers_")


def _is_ours(name: str) -> bool:
    """A file EmbScope writes into an output folder (a user's own ``diagram.png`` is not)."""
    metric_png = name.startswith(_PNG_PREFIXES) and name.endswith(".png")
    return name in OUTPUT_NAMES or metric_png or (name.startswith(".") and ".tmp" in name)


def check_output_dir(out: str | Path | None, option: str = "--out") -> Path:
    """Refuse, before any work starts, an output folder that cannot be written.

    Empty, an existing file (or a file on the way), or a place where neither
    the folder nor its parent can be written: one line each.
    """
    if out is None or not str(out).strip():
        raise BadInputError(f"{option} is empty: give the folder to write the results to")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{option} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"{option} {path}: {existing} is a file, not a folder")
    # os.access is not enough (root, read-only mounts, ACLs): try to create a file.
    try:
        fd, probe = tempfile.mkstemp(prefix=".embscope-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInputError(f"cannot write to {option} {path}: {exc.strerror or exc} in {existing}") from None
    return path


class OutputSet:
    """A run's output files, staged in a private folder and put in place in one step.

    Use as ``with OutputSet(out) as staging: write files into staging``.  On
    success the staged folder replaces ``out`` by an atomic exchange of the
    two folders when ``out`` holds only EmbScope's files, so an interrupted or
    failed run leaves the previous complete set (never a mix).  A folder that
    also holds other files keeps them: the staged files are moved in one by
    one and the previous run's other outputs are removed.  Staging names hold
    the process id, so concurrent runs never share a temporary file.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(os.path.abspath(Path(out).expanduser()))
        self.staging: Path | None = None

    def __enter__(self) -> Path:
        prefix = f"{_STAGING}{os.getpid()}-"
        parent = self.out.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _remove_stale_staging(parent)
            if self.out.is_dir():  # a run staged inside the folder (read-only parent) and was killed there
                _remove_stale_staging(self.out)
            self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        except OSError as exc:
            if not self.out.is_dir():
                raise BadInputError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
            # A writable folder in a read-only parent: stage inside it (files are then moved in one by one).
            try:
                self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=self.out))
            except OSError as inner:
                raise BadInputError(f"cannot write to {self.out}: {inner.strerror or inner}") from None
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> None:
        staging, self.staging = self.staging, None
        if staging is None:
            return
        if exc_type is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return
        try:
            self._commit(staging)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise BadInputError(f"cannot write to {self.out}: {error.strerror or error}") from None

    def _commit(self, staging: Path) -> None:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; the result is not
        if not self.out.exists():
            os.rename(staging, self.out)
            return
        names = [p.name for p in self.out.iterdir() if p != staging]
        here = Path.cwd()
        # Swapping the folder itself is only safe when it is ours alone and not
        # where this process (or a symlink the user made) points.
        swappable = (
            staging.parent != self.out and not self.out.is_symlink() and self.out.resolve() not in (here, *here.parents)
        )
        if swappable and all(_is_ours(n) and (self.out / n).is_file() for n in names):
            if _exchange(staging, self.out):
                shutil.rmtree(staging, ignore_errors=True)  # now holds the previous set
                return
        new = {p.name for p in staging.iterdir()}
        for name in names:  # the previous run's outputs that this run does not replace
            if name not in new and _is_ours(name) and (self.out / name).is_file():
                (self.out / name).unlink(missing_ok=True)
        for name in sorted(new):
            os.replace(staging / name, self.out / name)
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


def _remove_stale_staging(parent: Path) -> None:
    """Staging folders left by killed runs (their process is gone)."""
    for entry in parent.glob(f"{_STAGING}*"):
        try:
            pid = int(entry.name[len(_STAGING) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and entry.is_dir() and not entry.is_symlink() and not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


#: Order and wording of the graded table (seed 002's tables).
METRIC_LABELS = {
    "collapse_ratio": "Collapse ratio (max L2 / mean norm)",
    "effective_rank_normalized": "Effective rank (normalised)",
    "per_sample_effective_rank_normalized": "Concept effective rank per sample (share of the concepts)",
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
    "purity_parent": "Parent purity, lift over chance (coarsest inflation that can be parent-pure)",
}

#: Wording of the ungraded metrics, for pickers and tables that list every metric (Layers, Series, Compare).
OTHER_METRIC_LABELS = {
    "per_sample_effective_rank_mean": "Concept effective rank per sample",
    "per_sample_mean_cosine": "Mean cosine between a sample's concepts",
    "per_sample_max_cosine": "Max cosine between a sample's concepts",
    "samples_with_duplicate_concepts": "Samples with duplicated concepts (share)",
    "n_duplicate_concept_pairs": "Duplicated concept pairs",
    "effective_rank": "Effective rank",
    "effective_rank_centered": "Effective rank, centred",
    "effective_rank_centered_normalized": "Effective rank, centred (normalised)",
    "participation_ratio": "Participation ratio",
    "dims_for_95_variance": "Dims for 95% variance",
    "collapsed_dimensions": "Collapsed dimensions",
    "rankme": "RankMe (= effective rank, Garrido et al. 2023)",
    "alpha_req": "α-ReQ, eigenvalue decay exponent (Agrawal et al. 2022)",
    "nesum": "NESum Σλ/λ₁ (He & Ozay 2022)",
    "condition_number": "Condition number λmax/λmin",
    "self_clustering": "Self-clustering (Tsitsulin et al. 2023)",
    "intrinsic_dimension_twonn": "Intrinsic dimension, TwoNN (Facco et al. 2017)",
    "mean_norm": "Mean norm",
    "std_norm": "Norm std",
    "min_norm": "Min norm",
    "max_norm": "Max norm",
    "max_pairwise_l2": "Max pairwise L2",
    "std_cosine": "Pairwise cosine std",
    "n_duplicate_pairs": "Duplicate pairs (cos ≥ 0.999)",
    "dimension_variance_max": "Max dimension variance",
    "dimension_variance_median": "Median dimension variance",
    "mean_dimension_std": "Mean dimension std",
    "min_dimension_std": "Min dimension std",
    "max_dimension_std": "Max dimension std",
    "intra_class_cosine_distance": "Cosine distance within classes",
    "inter_class_cosine_distance": "Cosine distance between classes",
    "knn_label_accuracy": "kNN label accuracy",
    "knn_label_chance": "kNN label accuracy by chance",
    "knn_label_ceiling": "kNN label accuracy ceiling",
    "knn_label_times_chance": "kNN label accuracy / chance",
    "knn_label_z": "kNN label accuracy z vs chance",
    "knn_label_p_permutation": "kNN label accuracy p (permutations)",
    "knn_label_p": "kNN label accuracy p-value (one-sided)",
    "knn_graph_recall": "k-NN graph recall",
    "label_base_rate": "Modal label share",
    "n_clusters": "MCL clusters",
    "n_singletons": "MCL singletons",
    "singleton_share": "MCL singleton share",
    "iterations": "MCL iterations",
    "purity_leaf": "Leaf purity (MCL, raw)",
    "purity_parent_raw": "Parent purity (MCL, raw)",
    "purity_leaf_chance": "Leaf purity by chance",
    "purity_leaf_corrected": "Leaf purity, lift over chance",
    "purity_leaf_z": "Leaf purity z vs chance",
    "purity_parent_chance": "Parent purity by chance",
    "purity_parent_corrected": "Parent purity, lift over chance to its ceiling",
    "purity_parent_z": "Parent purity z vs chance",
    "nmi_leaf": "NMI (leaf)",
    "ami_leaf": "AMI (leaf)",
    "ari_leaf": "ARI (leaf)",
    "within_parent": "Leaf mixing within parents (MCL)",
    "within_parent_chance": "Leaf mixing within parents by chance",
    "within_parent_z": "Leaf mixing within parents z vs chance",
    "predictions.accuracy": "Prediction accuracy",
    "predictions.macro_f1": "Prediction macro-F1",
    "predictions.modal_share": "Share of the most predicted class",
    "predictions.modal_base_rate": "Modal class base rate (labels)",
    "predictions.modal_class_label_share": "Label share of the most predicted class",
    "weights.total_norm": "Weight norm (all float parameters)",
    "weights.dead_heads": "Dead attention heads",
    "weights.dead_norm_channels": "Dead normalisation channels",
}

#: Bookkeeping beside a metric (its spread, interval, sample counts): kept in the files, not offered as a plot.
UNPLOTTED_METRIC_SUFFIXES = ("_chance_std", "_ci_low", "_ci_high", "_permutations")
UNPLOTTED_METRICS = frozenset(
    {"dim", "n_samples", "mcl_inflation", "predictions.n_classes", "predictions.confusion_classes"}
)


def metric_words(name: str) -> str | None:
    """A metric's wording for people, or None when it has none (``weights.<parameter>.<rank>`` included)."""
    label = METRIC_LABELS.get(name) or OTHER_METRIC_LABELS.get(name)
    if label is None and name.startswith("weights."):
        parameter, _, what = name[len("weights.") :].rpartition(".")
        if parameter and what in ("effective_rank", "stable_rank"):
            label = f"{parameter}: {what.replace('_', ' ')}"
    return label


def is_plotted_metric(name: str) -> bool:
    """Whether a picker offers ``name`` as a curve (False for spreads, intervals and counts of the input)."""
    return name not in UNPLOTTED_METRICS and not name.endswith(UNPLOTTED_METRIC_SUFFIXES)


#: An ``&`` that a Markdown renderer would read as the start of a character reference.
_ENTITY_START = re.compile(r"&(?=#?[0-9A-Za-z]+;)")


def md_text(value) -> str:
    """Text from the data made inert in Markdown: HTML escaped, ``|`` escaped, on one line.

    Labels, class names, file names and notes can hold ``<script>``, ``<unk>``,
    table pipes or newlines; none of it may become markup or break a table.
    Only what can start markup is escaped: ``<`` (a tag) and an ``&`` that would
    start an entity.  A lone ``>`` or ``&`` mid-line is plain text in Markdown,
    so "target > 0.40" and "Sky & weather" stay readable in the raw file.
    """
    text = " ".join(str(value).split())
    text = _ENTITY_START.sub("&amp;", text).replace("<", "&lt;")
    return text.replace("|", "\\|")


def _with_chance(value, score: dict | None) -> str:
    if score is None:
        return _fmt(value)
    return f"{_fmt(value)} ({_fmt(score['chance'])} ± {_fmt(score['chance_std'])})"


def _with_z(score: dict | None) -> str:
    if score is None:
        return "—"
    return f"{_fmt(score['value'])} (z {_fmt(score['z'])})"


def _p_text(p: float | None, how: str | None) -> str:
    """``p 5.0e-04 (permutation)`` or ``p ≤ 1.9e-05 (Cantelli bound)``: the one-sided p-value
    significance is read from, and its source."""
    if p is None:
        return "p —"
    return f"p ≤ {_fmt(p)} (Cantelli bound)" if how == "Cantelli bound" else f"p {_fmt(p)} (permutation)"


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
        f"z {_fmt(geo['knn_label_z'])}, {_p_text(geo.get('knn_label_p'), geo.get('knn_label_p_method'))}; "
        f"ceiling {_fmt(geo['knn_label_ceiling'])}, chance-corrected lift "
        f"{_fmt(geo['knn_label_lift'])}). Method: {geo.get('knn_label_method', '')}.",
    ]


def _interval(geo: dict, name: str) -> str:
    low, high = geo.get(f"{name}_ci_low"), geo.get(f"{name}_ci_high")
    return f" (95% interval {_fmt(low)}–{_fmt(high)})" if low is not None and high is not None else ""


def _condition_how(geo: dict) -> str:
    """What the condition number was taken over, or why it is unbounded."""
    n, d = geo.get("n_samples"), geo.get("dim")
    if geo.get("condition_number") is None:
        return "unbounded: the embeddings do not span their space (constant dimensions or λmin ≈ 0)"
    if isinstance(n, int) and isinstance(d, int) and n - 1 < d:
        return f"over the {n - 1} eigenvalues {n} samples can make non-zero (of {d})"
    return "over all eigenvalues of the covariance"


def label_free_rows(geo: dict, keys: bool = False) -> list[tuple[str, ...]]:
    """(label, value with its interval, how it was estimated) of each label-free quality metric present.

    Shown ungraded (no source justifies a threshold) in report.md and the GUI's Overview;
    ``keys`` puts each metric's key first (the GUI's tooltips look its meaning up by it).
    """
    how = {
        "rankme": "",
        "alpha_req": "",
        "nesum": "",
        "condition_number": _condition_how(geo),
        "self_clustering": geo.get("self_clustering_method", ""),
        "intrinsic_dimension_twonn": geo.get("intrinsic_dimension_method", ""),
    }
    rows = [(metric_words(key), key, text) for key, text in how.items()]
    if "uniformity_ci_low" in geo:
        # Uniformity is graded in the table above; it comes here only for its interval when sampled.
        rows.append(("Uniformity, its interval (graded above)", "uniformity", geo.get("cosine_method", "")))
    if not any(geo.get(key) is not None for _, key, _ in rows):
        return []
    out = []
    for label, key, how in rows:
        if key in geo:
            interval_key = "intrinsic_dimension" if key == "intrinsic_dimension_twonn" else key
            row = (label, f"{_fmt(geo.get(key))}{_interval(geo, interval_key)}", how)
            out.append((key, *row) if keys else row)
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
        f"# EmbScope report — {md_text(Path(summary['source']).name or summary['source'])}",
        "",
        f"**Verdict: `{verdict['label']}`** — {md_text(verdict['headline'])}",
        "",
    ]
    lines += [f"- {md_text(line)}" for line in verdict["evidence"]]
    kind = summary["kind"]
    shape = f"{summary['n_samples']} × {summary['dim']}"
    if kind == "concept":
        shape = f"{summary['n_samples']} × {summary['n_concepts']} × {summary['dim']}"
    lines += ["", f"Input: {kind} embeddings, {shape}. Schema {summary['schema_version']}."]
    if summary.get("extraction"):
        from embscope.tasks.extract import extraction_text

        lines.append(f"Extracted: {md_text(extraction_text(summary['extraction']))}.")
    for note in summary.get("input_notes", []):
        lines.append(f"Note: {md_text(note)}")
    if "graph" in summary:
        lines.append(f"k-NN graph: {md_text(summary['graph']['description'])}.")
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
            f"'{md_text(p['modal_class'])}' at {_fmt(p['modal_share'])} of predictions; modal base rate "
            f"{_fmt(p['modal_base_rate'])}. Mode collapse: {_fmt(p['mode_collapse'])}; accuracy is "
            f"the base rate: {_fmt(p['accuracy_is_base_rate'])}."
        )
        lines += ["", "| Class | Count | Share |", "|---|---|---|"]
        lines += [f"| {md_text(row['class'])} | {row['count']} | {_fmt(row['share'])} |" for row in p["top"]]
    if "clusters" in summary:
        c = summary["clusters"]
        lines += ["", "## MCL inflation sweep (Phase 3)", "", f"Read-out: {md_text(c['readout']['text'])}", ""]
        if c.get("sample"):
            lines += [f"Sample: {md_text(c['sample']['text'])}", ""]
        if c.get("method"):
            lines += [f"Method: {md_text(c['method']['text'])}.", ""]
        lines += [
            "| Inflation | Clusters | Singletons | Iterations | Purity leaf (chance) | Purity parent (chance) "
            "| Leaf mixing within parents (chance) | NMI leaf (chance) | AMI leaf (z) | ARI leaf (z) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in c["inflations"]:
            chance = row.get("chance") or {}
            leaf, parent = chance.get("leaf") or {}, chance.get("parent") or {}
            singles = f"{row['n_singletons']}" + (" (fragmented)" if row.get("fragmented") else "")
            lines.append(
                f"| {row['inflation']:g} | {row['n_clusters']} | {singles} | {row['iterations']} | "
                f"{_with_chance(row['purity_leaf'], leaf.get('purity'))} | "
                f"{_with_chance(row['purity_parent'], parent.get('purity'))} | "
                f"{_with_chance(row.get('within_parent'), (chance.get('hierarchy') or {}).get('within_parent'))} | "
                f"{_with_chance(row['nmi_leaf'], leaf.get('nmi'))} | {_with_z(leaf.get('ami'))} | "
                f"{_with_z(leaf.get('ari')) if leaf else _fmt(row['ari_leaf'])} |"
            )
        lines.append("")
        lines.append(
            "Chance: the same clustering with the labels randomly permuted (mean ± std over the permutations; "
            "NMI/AMI/ARI baselines in closed form). z: distance above chance in permutation spreads; significance "
            "is read from the one-sided p-value (summary.json), not from z, as the chance distributions are skewed. "
            "Leaf mixing within parents: of the sample pairs that share a cluster but not a leaf, the share that "
            "share a parent. Fragmented: more "
            "than half the samples are singletons, so purity there is not evidence."
        )
    if weights_lines:  # the weights report brings its own "## Weights" heading
        lines += [""] + list(weights_lines)
    return "\n".join(lines) + "\n"


def arrays_payload(result) -> dict[str, np.ndarray]:
    """Raw arrays for ``arrays.npz``: embeddings, labels, predictions, confusion, clusters, spectra.

    The input's other columns are ``columns/<name>`` (string arrays).
    A checkpoint's weight inspection adds each matrix's full singular spectrum
    (``weights/sv/<parameter name>``).
    """
    emb = result.embeddings
    out: dict[str, np.ndarray] = {"embeddings": emb.vectors}
    for name in ("labels", "parents", "predictions", "ids"):
        value = getattr(emb, name)
        if value is not None:
            out[name] = np.asarray(value).astype(str)
    for name, values in emb.extra_columns.items():  # read back as columns by `embscope analyze arrays.npz`
        out[f"{COLUMNS_PREFIX}{name}"] = np.asarray(values).astype(str)
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
    return {
        "summary": atomic_write_text(out / "summary.json", summary_json(result.summary)),
        "report": atomic_write_text(out / "report.md", report_markdown(result.summary, weights_lines)),
        "arrays": write_arrays(out / "arrays.npz", arrays_payload(result)),
    }


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez_compressed`` streamed into the file (atomically): no in-memory copy of the archive.

    At 10⁶ × 128 the archive is ~0.5 GB; building it in a buffer and copying
    the buffer out held it twice beside the embeddings.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    return path
