"""Phase 1 — what the classifier actually predicts (seed 000).

Flags: one class ≥ 50 % of predictions → mode collapse; accuracy within
sampling noise of the modal base rate → "the score is the base rate, not
learning".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embscope.data import label_present

#: Share of predictions in one class at or above which predictions are mode-collapsed.
MODE_COLLAPSE_SHARE = 0.5
#: Standard errors within which accuracy counts as "the base rate".
BASE_RATE_SIGMAS = 2.0
#: The confusion matrix shows at most this many classes (the most frequent true labels): dense C×C counts.
CONFUSION_MAX_CLASSES = 1000


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
    #: Classes in labels or predictions (the confusion matrix shows at most CONFUSION_MAX_CLASSES of them).
    n_classes: int = 0
    #: Why predictions cannot be scored against the labels (no predicted class is ever a label), else None.
    unmatched: str | None = None

    def to_summary(self) -> dict:
        return {
            "n_classes": self.n_classes,
            "confusion_classes": len(self.classes) if self.confusion.size else 0,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "modal_class": self.modal_class,
            "modal_share": self.modal_share,
            "modal_base_rate": self.modal_base_rate,
            "modal_class_label_share": self.modal_class_label_share,
            "mode_collapse": self.mode_collapse,
            "accuracy_is_base_rate": self.base_rate_flag,
            "top": [{"class": c, "count": k, "share": s} for c, k, s in self.top],
        } | ({"unmatched": self.unmatched} if self.unmatched else {})


def macro_f1_score(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> float:
    """Unweighted mean F1 over ``classes`` (those present in labels or predictions).

    Counted from integer codes in O(N log N): per class, true positives, label
    and prediction counts (never one N-long comparison per class).
    """
    names = np.unique(np.asarray(list(classes), dtype=str))
    if not names.size:
        return 0.0
    lab, pred = (np.searchsorted(names, np.asarray(v).astype(str)) for v in (labels, predictions))
    return _macro_f1(lab, pred, names.size)


def _macro_f1(lab: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    tp = np.bincount(lab[lab == pred], minlength=n_classes).astype(np.float64)
    label_count = np.bincount(lab, minlength=n_classes)
    pred_count = np.bincount(pred, minlength=n_classes)
    denom = 2 * tp + (pred_count - tp) + (label_count - tp)  # 2·TP + FP + FN
    return float(np.mean(np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)))


def confusion_matrix(
    lab: np.ndarray, pred: np.ndarray, n_classes: int, max_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dense confusion counts over at most ``max_classes`` classes: ``(matrix, class codes shown)``.

    Up to ``max_classes`` classes every class is shown; above, the
    ``max_classes`` most frequent true labels (a dense C×C matrix of 20 000
    classes would be 3.2 GB).  Counted from the pairs that occur.
    """
    if n_classes <= max_classes:
        shown = np.arange(n_classes)
    else:
        counts = np.bincount(lab, minlength=n_classes)
        shown = np.sort(np.lexsort((np.arange(n_classes), -counts))[:max_classes])
    position = np.full(n_classes, -1, dtype=np.int64)
    position[shown] = np.arange(shown.size)
    rows, cols = position[lab], position[pred]
    keep = (rows >= 0) & (cols >= 0)
    flat = np.bincount(rows[keep] * shown.size + cols[keep], minlength=shown.size * shown.size)
    return flat.reshape(shown.size, shown.size).astype(np.int64), shown


def _distribution_only(top, names, n_samples: int, n_classes: int = 0, unmatched: str | None = None):
    """A :class:`PredictionReport` of the prediction distribution alone (no labels to score it against)."""
    modal_class, _, modal_share = top[0]
    return PredictionReport(
        top,
        [str(c) for c in names],
        np.zeros((0, 0), dtype=np.int64),
        None,
        None,
        modal_class,
        modal_share,
        None,
        None,
        modal_share >= MODE_COLLAPSE_SHARE,
        False,
        n_samples,
        n_classes=n_classes,
        unmatched=unmatched,
    )


def _examples(values, shown: int = 3) -> str:
    """``'0', '1', '2' … (10)``: a few class names of a set, and how many there are."""
    head = ", ".join(repr(str(v)) for v in values[:shown])
    return head + (f" … ({len(values)})" if len(values) > shown else "")


def prediction_report(predictions: np.ndarray, labels: np.ndarray | None = None, top_k: int = 10) -> PredictionReport:
    """Phase 1 on predicted classes, against labels when they exist.

    The prediction distribution counts every sample; accuracy, macro-F1, the
    confusion matrix and the base rates count only the samples that have a
    label (:func:`embscope.data.label_present`).
    """
    predictions = np.asarray(predictions).astype(str)
    n = n_all = predictions.size
    names, counts = np.unique(predictions, return_counts=True)
    order = np.lexsort((names, -counts))
    top = [(str(names[i]), int(counts[i]), float(counts[i] / n)) for i in order[:top_k]]
    modal_class, _, modal_share = top[0]
    if labels is not None:
        present = label_present(labels)
        if not present.any():
            labels = None
        elif not present.all():
            labels, predictions = np.asarray(labels)[present], predictions[present]
            n = predictions.size
    if labels is None:
        return _distribution_only(top, names, n)
    labels = np.asarray(labels).astype(str)
    label_names = np.unique(labels)
    if not np.isin(names, label_names).any():
        # Class indices against class names (a model without its class names, an exported
        # program): accuracy would be 0 and read as a collapsed head.  Nothing to score.
        unmatched = (
            f"no predicted class is ever a label (predicted {_examples(names)}; labels {_examples(label_names)}): "
            "accuracy cannot be judged; give the predictions in the labels' names (the model's class names, "
            "or a predictions column)"
        )
        return _distribution_only(top, names, n_all, int(np.union1d(names, label_names).size), unmatched)
    names_all, codes = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    codes = codes.reshape(-1)
    lab, pred = codes[:n], codes[n:]
    del codes
    all_classes = [str(c) for c in names_all]
    confusion, shown = confusion_matrix(lab, pred, len(all_classes), CONFUSION_MAX_CLASSES)
    classes = [all_classes[i] for i in shown]
    accuracy = float(np.mean(lab == pred))
    label_counts = np.bincount(lab, minlength=len(all_classes))
    base = float(label_counts.max() / n)
    # Accuracy of a constant guess has binomial noise sqrt(p(1−p)/N).
    noise = BASE_RATE_SIGMAS * np.sqrt(base * (1 - base) / n)
    return PredictionReport(
        top=top,
        classes=classes,
        confusion=confusion,
        accuracy=accuracy,
        macro_f1=_macro_f1(lab, pred, len(all_classes)),
        modal_class=modal_class,
        modal_share=modal_share,
        modal_base_rate=base,
        modal_class_label_share=float(label_counts[all_classes.index(modal_class)] / n),
        mode_collapse=modal_share >= MODE_COLLAPSE_SHARE,
        base_rate_flag=accuracy <= base + noise,
        n_samples=n_all,
        n_classes=len(all_classes),
    )
