"""Phase 1 — what the classifier actually predicts (seed 000).

Flags: one class ≥ 50 % of predictions → mode collapse; accuracy within
sampling noise of the modal base rate → "the score is the base rate, not
learning".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Share of predictions in one class at or above which predictions are mode-collapsed.
MODE_COLLAPSE_SHARE = 0.5
#: Standard errors within which accuracy counts as "the base rate".
BASE_RATE_SIGMAS = 2.0


@dataclass(frozen=True, eq=False)
class PredictionReport:
    """Prediction distribution, accuracy and the two seed-000 flags."""

    top: list[tuple[str, int, float]]  # (class, count, share), most predicted first
    classes: list[str]  # confusion-matrix row/column order
    confusion: np.ndarray  # rows = true label, columns = prediction
    accuracy: float | None
    macro_f1: float | None
    modal_class: str
    modal_share: float
    modal_base_rate: float | None  # share of the most frequent *label*
    modal_class_label_share: float | None  # share of the predicted modal class among labels
    mode_collapse: bool
    base_rate_flag: bool
    n_samples: int

    def to_summary(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "modal_class": self.modal_class,
            "modal_share": self.modal_share,
            "modal_base_rate": self.modal_base_rate,
            "modal_class_label_share": self.modal_class_label_share,
            "mode_collapse": self.mode_collapse,
            "accuracy_is_base_rate": self.base_rate_flag,
            "top": [{"class": c, "count": k, "share": s} for c, k, s in self.top],
        }


def macro_f1_score(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> float:
    """Unweighted mean F1 over ``classes`` (those present in labels or predictions)."""
    scores = []
    for c in classes:
        tp = float(np.sum((labels == c) & (predictions == c)))
        fp = float(np.sum((labels != c) & (predictions == c)))
        fn = float(np.sum((labels == c) & (predictions != c)))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom > 0 else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def prediction_report(predictions: np.ndarray, labels: np.ndarray | None = None, top_k: int = 10) -> PredictionReport:
    """Phase 1 on predicted classes, against labels when they exist."""
    predictions = np.asarray(predictions).astype(str)
    n = predictions.size
    names, counts = np.unique(predictions, return_counts=True)
    order = np.lexsort((names, -counts))
    top = [(str(names[i]), int(counts[i]), float(counts[i] / n)) for i in order[:top_k]]
    modal_class, _, modal_share = top[0]
    if labels is None:
        classes = [str(c) for c in names]
        confusion = np.zeros((0, 0), dtype=np.int64)
        return PredictionReport(
            top,
            classes,
            confusion,
            None,
            None,
            modal_class,
            modal_share,
            None,
            None,
            modal_share >= MODE_COLLAPSE_SHARE,
            False,
            n,
        )
    labels = np.asarray(labels).astype(str)
    classes = sorted(set(labels.tolist()) | set(predictions.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (np.vectorize(index.get)(labels), np.vectorize(index.get)(predictions)), 1)
    accuracy = float(np.mean(labels == predictions))
    _, label_counts = np.unique(labels, return_counts=True)
    base = float(label_counts.max() / n)
    # Accuracy of a constant guess has binomial noise sqrt(p(1−p)/N).
    noise = BASE_RATE_SIGMAS * np.sqrt(base * (1 - base) / n)
    return PredictionReport(
        top=top,
        classes=classes,
        confusion=confusion,
        accuracy=accuracy,
        macro_f1=macro_f1_score(labels, predictions, classes),
        modal_class=modal_class,
        modal_share=modal_share,
        modal_base_rate=base,
        modal_class_label_share=float(np.mean(labels == modal_class)),
        mode_collapse=modal_share >= MODE_COLLAPSE_SHARE,
        base_rate_flag=accuracy <= base + noise,
        n_samples=n,
    )
