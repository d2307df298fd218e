"""The triage verdict: the three phases read together (seed 000's reading rules).

Rules, first match wins, because each failure makes the later readings
meaningless (a point has no clusters; a collapsed representation explains a
collapsed head):

1. ``collapsed_to_point`` — max pairwise L2 / mean norm below the collapse
   threshold (zero spread included).
2. ``dimensional_collapse`` — the effective rank (normalised) or the share of
   collapsed dimensions grades POOR: the vectors live in a few directions.  For
   a concept set also each sample's concept rank: concepts that mix a few
   directions per sample are collapsed even when all N·C of them together span
   many (seed 002: "the collapse is in the concept dimension").
3. ``duplicated_concepts`` — a concept set whose samples carry identical
   concepts (cosine ≥ 0.999) in a large share of samples.
4. ``mode_collapse_head`` — the representation passes, but predictions are
   mode-collapsed or score the base rate: the classifier head is the bottleneck.
5. ``semantically_empty`` — geometry passes but no label score is
   significantly above its chance baseline: neither the leave-one-out kNN
   label accuracy on the graph nor, at any informative inflation, leaf AMI or
   parent purity (one-sided permutation tests, Bonferroni over that family
   at family-wise α = 0.01; p-values as :mod:`embscope.analysis.chance` reads
   them, not normal tails: the nulls are skewed).  Raw values never decide: raw purity rises with
   fragmentation and falls with the number of labels, and a score several
   times chance is structure however low it looks.  Diversity is not meaning
   (seed 004).
6. ``healthy`` — naming its weakest evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embscope.analysis.chance import SIGNIFICANCE_ALPHA, family_statement
from embscope.analysis.grading import Grade
from embscope.formatting import counted, format_number

LABELS = (
    "collapsed_to_point",
    "dimensional_collapse",
    "duplicated_concepts",
    "mode_collapse_head",
    "semantically_empty",
    "too_few_samples",
    "healthy",
)

#: Share of samples with a duplicated concept pair that makes it the verdict.
DUPLICATED_CONCEPT_SHARE = 0.10
#: Below this many samples neither health nor semantic emptiness can be told: a collapse to r
#: directions shows in the spectrum only when N is well above r (5 samples of a rank-3 collapse
#: have effective rank 3 of 5), and label tests have little power.  Positive evidence of a
#: collapse (a point, a POOR spectrum, duplicated concepts, collapsed predictions) still counts.
MIN_VERDICT_SAMPLES = 50

HEADLINES = {
    "collapsed_to_point": "Collapsed to a point: every sample has (nearly) the same embedding.",
    "dimensional_collapse": "Dimensional collapse: the embeddings use only a few directions.",
    "duplicated_concepts": "Duplicated concepts: samples carry identical concept vectors.",
    "mode_collapse_head": "Head bottleneck: the representation is usable but the predictions collapsed.",
    "semantically_empty": (
        "Semantically empty: the geometry is spread out but no label score is above its chance baseline."
    ),
    "too_few_samples": "Too few samples to judge: no collapse shows, but this many samples could not show one.",
    "healthy": "Healthy: no collapse found.",
}
#: The dimensional-collapse headline when the spectrum is fine and only some dimensions died
#: (digits' constant border pixels; a LayerNorm gain of 0): "only a few directions" would mislead.
DEAD_DIMENSIONS_HEADLINE = (
    "Dimensional collapse: some dimensions are dead (the same value, or nearly, in every sample)."
)
#: The headline when only a concept set's per-sample concept rank is POOR.
CONCEPT_RANK_HEADLINE = (
    "Dimensional collapse in the concept dimension: each sample's concepts span only a few directions."
)


@dataclass(frozen=True)
class Verdict:
    label: str
    evidence: list[str] = field(default_factory=list)
    #: A headline more precise than the label's (None: :data:`HEADLINES`).
    specific_headline: str | None = None

    @property
    def headline(self) -> str:
        return self.specific_headline or HEADLINES[self.label]

    @property
    def healthy(self) -> bool:
        return self.label == "healthy"

    def to_summary(self) -> dict:
        return {"label": self.label, "headline": self.headline, "evidence": list(self.evidence)}


def _fmt(value: float) -> str:
    # Evidence lines are short: three significant digits, plain below 10⁴.
    return format_number(float(value), digits=3, fixed_below=1e4)


def decide_verdict(
    geometry: dict,
    grades: dict[str, Grade],
    *,
    concepts: dict | None = None,
    predictions: dict | None = None,
    clusters: dict | None = None,
    cluster_evidence: list[str] | None = None,
    collapse_threshold: float = 1e-2,
    dimension_evidence: str | None = None,
    duplicate_evidence: str | None = None,
    n_samples: int | None = None,
) -> Verdict:
    """One triage label plus the evidence lines that led to it.

    Parameters are the JSON-ready sections of the summary: ``geometry`` (the
    ``geometry`` metrics), ``grades``, and optionally the concept metrics, the
    ``predictions`` section and the ``clusters`` section with its read-out.
    ``dimension_evidence`` says which dimensions are collapsed, and why when
    the weights know (:func:`embscope.analysis.weights.dead_channel_evidence`,
    else :meth:`embscope.analysis.geometry.Geometry.collapsed_dimensions_text`);
    it follows the collapsed-dimension count when the verdict names one, and
    otherwise closes the evidence (after a healthy verdict's weakest evidence,
    which grades those dimensions).  ``duplicate_evidence`` (samples sharing a
    vector, :meth:`embscope.analysis.geometry.Geometry.duplicates_text`) comes
    last.  A collapse to a point needs neither line.  ``n_samples`` is the number of samples when the
    geometry counts more vectors (a concept set's N·C): the too-few-samples rule counts samples.
    """
    evidence: list[str] = []
    ratio = float(geometry["collapse_ratio"])
    method = geometry.get("collapse_ratio_method", "")
    grade = {name: g.grade for name, g in grades.items()}

    def finish(label: str, headline: str | None = None) -> Verdict:
        # The dimension line closes the evidence unless it already follows the count it explains.
        if dimension_evidence and dimension_evidence not in evidence:
            evidence.append(dimension_evidence)
        if duplicate_evidence:
            evidence.append(duplicate_evidence)
        return Verdict(label, evidence, headline)

    def poor(name: str) -> bool:
        return grade.get(name) == "POOR"

    if ratio < collapse_threshold:
        evidence.append(f"max pairwise L2 / mean norm = {_fmt(ratio)} < {collapse_threshold:g} ({method})")
        evidence.append(
            f"per-dimension variance max {_fmt(geometry['dimension_variance_max'])}, "
            f"median {_fmt(geometry['dimension_variance_median'])}"
        )
        if clusters and clusters.get("readout", {}).get("label") == "collapse":
            evidence.append("MCL finds one cluster at every inflation; purity is just the modal share")
        # The centred spectrum, the dimension stds and isotropy then measure the rounding noise
        # around the point, and may well grade GOOD (isotropy of one repeated vector v is e^−|v|).
        evidence.append(
            "the spread metrics (centred spectrum, dimension std, isotropy) describe the noise around that "
            "point: their grades do not count"
        )
        _add_prediction_evidence(evidence, predictions)
        return Verdict("collapsed_to_point", evidence)

    rank_poor = poor("effective_rank_normalized")
    dims_poor = poor("collapsed_dimensions_ratio")
    concept_rank_poor = bool(concepts) and poor("per_sample_effective_rank_normalized")
    if rank_poor or dims_poor or concept_rank_poor:
        global_rank = (
            f"effective rank {_fmt(geometry['effective_rank'])} of {min(geometry['n_samples'], geometry['dim'])}"
            f" (normalised {_fmt(geometry['effective_rank_normalized'])}"
        )
        if concept_rank_poor:
            evidence.append(_concept_rank_line(concepts, int(geometry["dim"]), grades))
        if rank_poor:
            evidence.append(f"{global_rank}, target {grades['effective_rank_normalized'].target})")
        elif concept_rank_poor:
            evidence.append(
                f"the collapse is in the concept dimension: all {int(geometry['n_samples']):,} concept vectors "
                f"together have {global_rank}), so samples differ in which few directions they use"
            )
        if dims_poor:
            evidence.append(
                f"{geometry['collapsed_dimensions']} of {geometry['dim']} dimensions collapsed"
                " (std below 1% of the mean std)"
            )
            if dimension_evidence:
                evidence.append(dimension_evidence)
        if rank_poor or dims_poor:  # (the global spectrum; a concept-rank collapse has its line above)
            evidence.append(
                f"top-5 directions hold {_fmt(100 * geometry['top5_variance_ratio'])}% of the variance; "
                f"95% needs {counted(int(geometry['dims_for_95_variance']), 'dimension')}"
            )
        if concepts and concepts.get("samples_with_duplicate_concepts", 0.0) >= DUPLICATED_CONCEPT_SHARE:
            evidence.extend(_duplicate_concept_lines(concepts))
        _add_prediction_evidence(evidence, predictions)
        if rank_poor:
            return finish("dimensional_collapse")
        return finish("dimensional_collapse", CONCEPT_RANK_HEADLINE if concept_rank_poor else DEAD_DIMENSIONS_HEADLINE)

    if concepts and concepts.get("samples_with_duplicate_concepts", 0.0) >= DUPLICATED_CONCEPT_SHARE:
        evidence.extend(_duplicate_concept_lines(concepts))
        return finish("duplicated_concepts")

    if predictions and (predictions.get("mode_collapse") or predictions.get("accuracy_is_base_rate")):
        _add_prediction_evidence(evidence, predictions)
        evidence.append(
            f"representation passes: effective rank normalised {_fmt(geometry['effective_rank_normalized'])}, "
            f"collapse ratio {_fmt(ratio)}"
        )
        evidence.extend(cluster_evidence or [])
        return finish("mode_collapse_head")

    vectors = int(geometry["n_samples"])
    n = vectors if n_samples is None else int(n_samples)
    if n < MIN_VERDICT_SAMPLES:
        needs = f"a verdict of health needs {MIN_VERDICT_SAMPLES}"
        if vectors != n:
            needs = f"{vectors} concept vectors; {needs} samples"
        evidence.append(
            f"only {counted(n, 'sample')} ({needs}): "
            f"effective rank normalised {_fmt(geometry['effective_rank_normalized'])} of at most "
            f"{min(vectors, int(geometry['dim']))} directions, and label tests have little power this small"
        )
        _add_prediction_evidence(evidence, predictions)
        return finish("too_few_samples")

    tests = label_tests(geometry, clusters)
    if tests:
        p_crit = SIGNIFICANCE_ALPHA / len(tests)
        statement = family_statement(len(tests))
        if not any(t["p"] <= p_crit for t in tests):
            evidence.append(f"no label score is significantly above chance ({statement})")
            evidence.extend(_test_line(t) for t in tests)
            evidence.extend(cluster_evidence or [])
            return finish("semantically_empty")

    evidence.append(
        f"collapse ratio {_fmt(ratio)}, effective rank normalised {_fmt(geometry['effective_rank_normalized'])}"
    )
    if tests:
        strongest = min(tests, key=_strength)
        evidence.append(f"label scores above chance ({statement}); strongest: {_test_line(strongest)}")
    else:
        # Random vectors are "healthy" by every label-free measure (the GUI trial's Gaussian noise).
        evidence.append(
            "no labels to test: only collapse is ruled out; whether the geometry carries meaning "
            "(semantically empty, seed 004) needs labels"
        )
    _add_prediction_evidence(evidence, predictions)
    evidence.extend(cluster_evidence or [])
    evidence.append("weakest evidence: " + weakest_evidence(geometry, grades, tests))
    return finish("healthy")


def _concept_rank_line(concepts: dict, dim: int, grades: dict[str, Grade]) -> str:
    c = int(concepts["n_concepts"])
    return (
        f"each sample's {c} concepts span an effective rank of {_fmt(concepts['per_sample_effective_rank_mean'])} "
        f"of {min(c, dim)} on average (normalised {_fmt(concepts['per_sample_effective_rank_normalized'])}, "
        f"target {grades['per_sample_effective_rank_normalized'].target})"
    )


def _duplicate_concept_lines(concepts: dict) -> list[str]:
    lines = [f"{_fmt(100 * concepts['samples_with_duplicate_concepts'])}% of samples have concepts with cosine ≥ 0.999"]
    if pairs := concepts.get("duplicate_concept_pairs"):
        top = pairs[0]
        lines.append(
            f"most duplicated: concepts {top['concepts'][0]} and {top['concepts'][1]} "
            f"in {_fmt(100 * top['share_of_samples'])}% of samples"
        )
    return lines


def label_tests(geometry: dict, clusters: dict | None) -> list[dict]:
    """The family of "above chance" tests: kNN label accuracy and, at every
    informative inflation (split, not fragmented), leaf AMI and parent purity.

    Each entry: ``name``, ``value``, ``chance``, ``chance_std``, ``z``, ``p`` (the p-value the
    test reads), ``lift``.
    """
    tests = []
    if geometry.get("knn_label_accuracy") is not None and geometry.get("knn_label_z") is not None:
        tests.append(
            {
                "name": "kNN label accuracy",
                "value": geometry["knn_label_accuracy"],
                "chance": geometry["knn_label_chance"],
                "chance_std": geometry["knn_label_chance_std"],
                "z": geometry["knn_label_z"],
                "p": geometry["knn_label_p"],
                "p_method": geometry.get("knn_label_p_method"),
                "lift": geometry.get("knn_label_times_chance"),
            }
        )
    for row in (clusters or {}).get("inflations", []):
        if row.get("fragmented") or row.get("n_clusters", 0) <= 1:
            continue
        chance = row.get("chance") or {}
        for level, metric, name in (("leaf", "ami", "AMI (leaf)"), ("parent", "purity", "parent purity")):
            score = (chance.get(level) or {}).get(metric)
            if score and score.get("z") is not None:
                tests.append(
                    {
                        "name": f"{name} at I={row['inflation']:g}",
                        "value": score["value"],
                        "chance": score["chance"],
                        "chance_std": score["chance_std"],
                        "z": score["z"],
                        "p": score["p_value"],
                        "p_method": score.get("p_method"),
                        "lift": score.get("lift"),
                    }
                )
    return tests


def _strength(t: dict) -> tuple[float, float]:
    """Sort key, strongest first: the smaller p, then (p at its floor) the larger z."""
    return (t["p"], -t["z"])


def _p_text(t: dict) -> str:
    """``p 5.00e-04``, or ``p ≤ 1.9e-05 (Cantelli)`` when the p-value is the distribution-free bound."""
    if t.get("p_method") == "Cantelli bound":
        return f"p ≤ {_fmt(t['p'])} (Cantelli)"
    return f"p {_fmt(t['p'])}"


def _test_line(t: dict) -> str:
    times = f", {_fmt(t['lift'])}× chance" if t.get("lift") is not None else ""
    return (
        f"{t['name']} {_fmt(t['value'])} vs chance {_fmt(t['chance'])} ± {_fmt(t['chance_std'])}"
        f" (z {_fmt(t['z'])}, {_p_text(t)}{times})"
    )


def weakest_evidence(geometry: dict, grades: dict[str, Grade], tests: list[dict]) -> str:
    """The reading the healthy verdict leans on least: the worst grade, else the
    least significant label test, with how it was measured."""
    order = {"POOR": 0, "OK": 1, "GOOD": 2}
    parts = []
    if grades:
        name, g = min(grades.items(), key=lambda kv: order[kv[1].grade])
        if g.grade != "GOOD":
            parts.append(f"{name} {_fmt(g.value)} grades {g.grade} (target {g.target})")
    if tests:
        parts.append(_test_line(max(tests, key=_strength)))
    method = geometry.get("collapse_ratio_method", "")
    if method.startswith("sampled"):
        parts.append(f"collapse ratio is estimated ({method})")
    if geometry.get("knn_graph_exact") is False:
        recall = geometry.get("knn_graph_recall")
        parts.append(
            "the k-NN graph is approximate" + (f" (measured recall {_fmt(recall)})" if recall is not None else "")
        )
    if geometry.get("knn_label_ci_low") is not None:
        parts.append(
            f"kNN accuracy 95% interval [{_fmt(geometry['knn_label_ci_low'])}, {_fmt(geometry['knn_label_ci_high'])}]"
        )
    return "; ".join(parts) if parts else "none: every graded metric is GOOD"


def _add_prediction_evidence(evidence: list[str], predictions: dict | None) -> None:
    if not predictions:
        return
    share = predictions["modal_share"]
    line = f"{_fmt(100 * share)}% of predictions are '{predictions['modal_class']}'"
    if predictions.get("mode_collapse"):
        line += " (mode collapse: ≥ 50%)"
    evidence.append(line)
    if predictions.get("unmatched"):
        evidence.append(predictions["unmatched"])
    if predictions.get("accuracy") is not None:
        acc_line = (
            f"accuracy {_fmt(predictions['accuracy'])}, macro-F1 {_fmt(predictions['macro_f1'])}, "
            f"modal base rate {_fmt(predictions['modal_base_rate'])}"
        )
        if predictions.get("accuracy_is_base_rate"):
            acc_line += ": the score is the base rate, not learning"
        evidence.append(acc_line)
