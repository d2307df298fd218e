"""The state every panel shows: one analysis result, its 2-D layout, MCL clusters, a selection.

Widgets take a :class:`ViewModel` in their constructor and subscribe to its
signals (napari style); the model never knows the widgets.  Setting a value
emits the matching ``*_changed`` signal, so linking panels is just "all panels
listen to the same model".
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from embscope.data import label_present
from embscope.tasks.colouring import MISSING_NAMES

#: The hover line shows this many of the input's other columns (the map's "Colour by" has them all).
HOVER_COLUMNS = 4


class ViewModel(QObject):
    """Current result, layout, cluster colouring and selected samples.

    Attributes
    ----------
    source
        The :class:`~embscope.tasks.session.Source` shown (None for a bare result, e.g. the PNG export).
    result
        The :class:`~embscope.tasks.analyze.AnalysisResult` shown, or ``None``.
    coords
        ``N×2`` float32 layout of the samples (``None`` until one is known).
    layout_method
        ``"pca"`` or ``"umap"``.
    inflation, cluster_ids
        The MCL inflation chosen on the Clusters panel and its cluster id per sample.
    selection
        Sorted int64 indices of the selected samples (empty = nothing selected).
    selection_origin
        Which panel made the selection (e.g. ``"map"``), so it can skip redrawing itself.
    notice
        One line about the shown source when it has nothing (or not everything) to show yet:
        "Analysing …", or why its analysis failed ("" when there is nothing to say).
    activity
        While the shown source is analysed and has no result yet: the stages done and running
        (:class:`~embscope.tasks.stages.StageLine`) and the titles of the planned steps to come.
    """

    result_changed = Signal()
    layout_changed = Signal()
    clusters_changed = Signal()
    selection_changed = Signal()
    notice_changed = Signal()
    weights_changed = Signal()  # the shown source's weights, read before any data, arrived

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source = None
        self.result = None
        self._own_cluster_cache = None
        self.coords: np.ndarray | None = None
        self.layout_method = ""
        self.inflation: float | None = None
        self.cluster_ids: np.ndarray | None = None
        self.selection = np.empty(0, np.int64)
        self.selection_origin = ""
        self.notice = ""
        self.activity: tuple[tuple, tuple[str, ...]] = ((), ())

    @property
    def weights(self):
        """The shown checkpoint's weight inspection: its result's, else the one read without data."""
        if self.source is not None:
            return self.source.shown_weights
        return None if self.result is None else self.result.weights

    @property
    def n_samples(self) -> int:
        return 0 if self.result is None else self.result.embeddings.n_samples

    def set_source(self, source) -> None:
        """Show a session source: its result, and its map when one is known."""
        self.source = source
        self._set_result(source.result)
        if source.layout is not None:
            self.set_layout(source.layout.coords, source.layout.method)

    def update_result(self, result) -> None:
        """A newer result of the same samples (the next stage of a progressive analysis): the map stays.

        The layout, selection and cluster colouring are of the same samples,
        so they are kept; every signal is emitted so each panel redraws what
        the new result adds.  A result of other samples is shown as new.
        """
        if self.result is None or result is None or result.embeddings is not self.result.embeddings:
            self._set_result(result)
            return
        if result.graph is not self.result.graph:
            self._own_cluster_cache = None
        self.result = result
        self.result_changed.emit()
        if self.coords is not None:
            self.layout_changed.emit()
        self.clusters_changed.emit()
        self.selection_changed.emit()

    def set_notice(self, text: str) -> None:
        if text != self.notice:
            self.notice = text
            self.notice_changed.emit()

    def set_activity(self, lines=(), upcoming=()) -> None:
        """The running analysis' stages (see ``activity``); ``()`` when the shown source is not running."""
        activity = (tuple(lines), tuple(upcoming))
        if activity != self.activity:
            self.activity = activity
            self.notice_changed.emit()

    def set_result(self, result) -> None:
        """Show ``result`` (not tied to a session source); layout, clusters and selection are cleared."""
        self.source = None
        self._set_result(result)

    def cluster_cache(self):
        """The MCL cache on the shown result's graph: the source's own, else one made here; None without a graph."""
        if self.source is not None:
            return self.source.cluster_cache()
        if self.result is None or self.result.graph is None:
            return None
        if self._own_cluster_cache is None:
            from embscope.tasks.mcl_sample import result_cluster_cache

            self._own_cluster_cache = result_cluster_cache(self.result)
        return self._own_cluster_cache

    def _set_result(self, result) -> None:
        self._own_cluster_cache = None
        self.result = result
        self.coords = None
        self.layout_method = ""
        self.inflation = None
        self.cluster_ids = None
        self.selection = np.empty(0, np.int64)
        self.result_changed.emit()
        self.layout_changed.emit()
        self.clusters_changed.emit()
        self.selection_changed.emit()

    def set_layout(self, coords: np.ndarray, method: str) -> None:
        coords = np.asarray(coords, dtype=np.float32)
        if coords.shape != (self.n_samples, 2):
            raise ValueError(f"layout has shape {coords.shape}, expected ({self.n_samples}, 2)")
        self.coords = coords
        self.layout_method = method
        self.layout_changed.emit()

    def set_clusters(self, inflation: float, cluster_ids: np.ndarray) -> None:
        self.inflation = float(inflation)
        self.cluster_ids = np.asarray(cluster_ids)
        self.clusters_changed.emit()

    def set_selection(self, indices, origin: str = "") -> None:
        """Select samples by index (any iterable of ints); duplicates and order are dropped."""
        rows = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices, dtype=np.int64)
        # np.unique hashes (≈ 1.3 s for 500 000 rows); sort + drop repeats is ≈ 30 ms, and a no-op if already sorted.
        if len(rows) > 1 and not (rows[1:] > rows[:-1]).all():
            rows = np.sort(rows)
            rows = rows[np.r_[True, rows[1:] != rows[:-1]]]
        rows = rows[(rows >= 0) & (rows < self.n_samples)]
        self.selection = rows
        self.selection_origin = origin
        self.selection_changed.emit()

    def clear_selection(self) -> None:
        self.set_selection(np.empty(0, np.int64))

    def sample_description(self, row: int) -> str:
        """One line describing sample ``row``: id, leaf/parent labels, prediction, other columns, text."""
        if self.result is None:
            return ""
        emb = self.result.embeddings
        parts = [str(emb.ids[row]) if emb.ids is not None else f"#{row}"]
        for values, prefix, key in (
            (emb.labels, "label", "leaf"),
            (emb.parents, "parent", "parent"),
            (emb.predictions, "predicted", "prediction"),
        ):
            if values is not None:
                # A missing label ("", embscope.data.MISSING_LABEL) says so rather than showing nothing.
                parts.append(f"{prefix} {values[row]}" if label_present([values[row]])[0] else MISSING_NAMES[key])
        if self.cluster_ids is not None:
            parts.append(f"cluster {int(self.cluster_ids[row])}")
        shown = list(emb.extra_columns.items())
        parts.extend(f"{name} {values[row]}" for name, values in shown[:HOVER_COLUMNS] if str(values[row]))
        if emb.texts is not None and str(emb.texts[row]):
            parts.append(f"“{emb.texts[row]}”")
        return " · ".join(parts)
