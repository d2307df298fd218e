"""The map's tools: more "Colour by" sources, search, selection summary and export.

:func:`install_map_tools` adds them to a :class:`~embscope.gui.panels.map.MapPanel`
through the panel's hooks only:

* ``add_colour_source(name, make)`` — prediction ≠ label, local density, kNN
  agreement, id, text and every other column of the shown input (``column:
  split``; kept in step with the result by :class:`ColumnSources`)
  (:mod:`embscope.tasks.colouring`; the panel runs
  ``make`` on its worker, so at 10⁶ samples no code is computed on the GUI thread);
* ``add_side_widget(tools)`` — :class:`MapTools`: the search box, the selection
  summary and the export buttons;
* ``set_highlight(rows)`` — the search matches.

:class:`MapTools` knows the :class:`~embscope.gui.model.ViewModel` and nothing of
the map's drawing.  Work on more than :data:`INLINE_LIMIT` samples (the search,
the purity baseline, writing a file) runs on its own workers; below that it
runs inline, where a worker's round trip would cost more than the work.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from embscope.errors import BadInputError, Cancelled
from embscope.gui.model import ViewModel
from embscope.gui.render.colour_map import code_colours, ramp_legend
from embscope.gui.render.palette import MAX_CATEGORIES
from embscope.gui.workers import JobRunner, error_text
from embscope.tasks.colouring import COLOURINGS, column_keys, compute_colouring, unavailable_reason
from embscope.tasks.progress import CancelToken, run_job
from embscope.tasks.search import SearchIndex, search_job
from embscope.tasks.selection import cluster_rows, export_columns, export_rows_job, summary_job

#: Up to this many samples the tools compute on the GUI thread (≤ ~30 ms).
INLINE_LIMIT = 50_000
#: "Colour by" entries these tools add; the map computes leaf, parent, cluster, prediction and norm itself.
EXTRA_COLOURINGS = ("correct", "density", "agreement", "id", "text")
#: Typing pauses this long (ms) before a search runs.
SEARCH_DELAY_MS = 250
ANY_FIELD = "any field"
NO_SELECTION = "Nothing selected."


def install_map_tools(panel) -> MapTools:
    """Add the colour sources and the :class:`MapTools` widget to ``panel`` (a MapPanel) through its hooks."""
    for key in EXTRA_COLOURINGS:
        panel.add_colour_source(COLOURINGS[key], partial(map_colouring, panel.model, key))
    tools = MapTools(panel.model, panel)
    panel.add_side_widget(tools)
    tools.highlight_changed.connect(panel.set_highlight)
    ColumnSources(panel).update()
    return tools


class ColumnSources(QObject):
    """Keeps one "Colour by" entry per other column of the shown input (``column: split`` …).

    A Qt child of the map panel (Qt owns it; no Python reference cycle keeps the
    panel's widgets alive for the garbage collector to delete later).
    """

    def __init__(self, panel) -> None:
        super().__init__(panel)
        self.keys: list[str] = []
        panel.model.result_changed.connect(self.update)

    def update(self) -> None:
        panel = self.parent()
        result = panel.model.result
        keys = [] if result is None else column_keys(result)
        for key in self.keys:
            if key not in keys:
                panel.remove_colour_source(key)
        for key in keys:
            panel.add_colour_source(key, partial(map_colouring, panel.model, key))
        self.keys = keys


def map_colouring(model: ViewModel, key: str, result, cluster_ids):
    """The map's colouring for ``key`` (runs on the map's worker): codes from
    :func:`~embscope.tasks.colouring.compute_colouring`, colours from
    :func:`~embscope.gui.render.colour_map.code_colours`; one grey with the reason when unavailable."""
    from embscope.gui.panels.map import colouring_from_codes
    from embscope.gui.render.palette import OTHER_COLOUR

    n = result.embeddings.n_samples
    reason = unavailable_reason(result, key, cluster_ids)
    if reason:
        codes = np.zeros(n, np.int32)
        title = COLOURINGS.get(key, key)
        return colouring_from_codes(codes, [OTHER_COLOUR], [f"not available: {reason}"], title=title)
    colouring = compute_colouring(result, key, cluster_ids, model.inflation, MAX_CATEGORIES)
    colours = code_colours(colouring)
    if colouring.kind == "continuous":
        return colouring_from_codes(
            colouring.codes,
            colours,
            [],
            continuous=True,
            title=colouring.title,
            ramp=ramp_legend(colouring, colours),
        )
    return colouring_from_codes(colouring.codes, colours, list(colouring.names), title=colouring.title)


class MapTools(QWidget):
    """Search, selection summary and export for the map (placed in its side panel)."""

    highlight_changed = Signal(object)  # int64 rows matching the search

    def __init__(self, model: ViewModel, parent: QWidget | None = None, *, synchronous: bool = False) -> None:
        super().__init__(parent)
        self.model = model
        self.synchronous = synchronous
        self.search_result = None
        self.summary = None
        self.last_export: Path | None = None
        self._export_samples = None  # the embeddings whose rows the export line is about
        self._index: SearchIndex | None = None
        self._label_tables: dict = {}  # label field → (codes, names) of the shown result, for summaries
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search label, id or text")
        self.search_edit.setClearButtonEnabled(True)
        self.field_combo = QComboBox()
        self.field_combo.setToolTip("Search in this column")
        self.regex_box = QCheckBox("regex")
        self.regex_box.setToolTip("Treat the search as a regular expression (case-insensitive)")
        self.search_status = QLabel("")
        self.search_status.setWordWrap(True)
        self.select_hits_button = QPushButton("Select matches")
        self.select_hits_button.setToolTip("Make the search matches the selection (for its summary and export)")
        self.select_hits_button.setEnabled(False)
        self.summary_field = QComboBox()
        self.summary_field.addItems(["label", "parent"])
        self.summary_field.setToolTip("Count the selection by this label")
        self.summary_label = QLabel(NO_SELECTION)
        # Fixed width digits: the histogram's counts line up in a column.
        self.summary_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.export_selection_button = QPushButton("Export selection…")
        self.export_selection_button.setToolTip(
            "Save the selected samples (ids, labels, clusters, text) as CSV or parquet"
        )
        self.export_cluster_button = QPushButton("Export cluster…")
        self.export_cluster_button.setToolTip("Save every sample of the selection's main MCL cluster as CSV or parquet")
        self.export_status = QLabel("")
        self.export_status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_edit, 1)
        search_row.addWidget(self.field_combo)
        search_row.addWidget(self.regex_box)
        layout.addLayout(search_row)
        hits_row = QHBoxLayout()
        hits_row.addWidget(self.search_status, 1)
        hits_row.addWidget(self.select_hits_button)
        layout.addLayout(hits_row)
        summary_head = QHBoxLayout()
        summary_head.addWidget(QLabel("<b>Selection</b> by"))
        summary_head.addWidget(self.summary_field)
        summary_head.addStretch(1)
        layout.addLayout(summary_head)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.export_selection_button)  # one per row: the side panel is narrow
        layout.addWidget(self.export_cluster_button)
        layout.addWidget(self.export_status)

        self.runners = {name: JobRunner(f"map-{name}", self) for name in ("search", "summary", "export")}
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.run_search)
        self.search_edit.textChanged.connect(self._on_view_search_edited)
        self.search_edit.returnPressed.connect(self.run_search)
        self.field_combo.currentIndexChanged.connect(self._on_view_search_edited)
        self.regex_box.toggled.connect(self._on_view_search_edited)
        self.select_hits_button.clicked.connect(self.select_hits)
        self.summary_field.currentIndexChanged.connect(self._on_model_selection_changed)
        self.export_selection_button.clicked.connect(lambda: self.ask_export("selection"))
        self.export_cluster_button.clicked.connect(lambda: self.ask_export("cluster"))
        model.result_changed.connect(self._on_model_result_changed)
        model.clusters_changed.connect(self._on_model_clusters_changed)
        model.selection_changed.connect(self._on_model_selection_changed)
        self._on_model_result_changed()

    # ------------------------------------------------------------------ public

    @property
    def highlight_rows(self) -> np.ndarray:
        return np.empty(0, np.int64) if self.search_result is None else self.search_result.rows

    def cancel(self) -> None:
        """Stop every running job (their results are dropped)."""
        for runner in self.runners.values():
            runner.cancel()

    def wait(self, timeout: float = 5.0) -> bool:
        """Join the workers (tests, screenshots); True when all ended."""
        return all(runner.wait(timeout) for runner in self.runners.values())

    @property
    def busy(self) -> bool:
        return any(runner.running for runner in self.runners.values())

    def run_search(self) -> None:
        """Search now for the text in the box (Enter, or a pause in typing)."""
        self._search_timer.stop()
        emb = None if self.model.result is None else self.model.result.embeddings
        query = self.search_edit.text()
        if emb is None or not query:
            self.runners["search"].cancel()
            self._show_search(None)
            return
        field = self.field_combo.currentText()
        fields = None if field in ("", ANY_FIELD) else (field,)
        make = search_job(self._index, emb, query, fields, regex=self.regex_box.isChecked())
        self._run("search", make, self._on_worker_search_done, self._on_worker_search_failed)

    def select_hits(self) -> None:
        """Make the search matches the selection."""
        if self.search_result is not None and self.search_result.n_hits:
            self.model.set_selection(self.search_result.rows, origin="search")

    def export_rows(self, what: str) -> np.ndarray:
        """Rows an export of ``what`` (``"selection"`` / ``"cluster"``) writes; one-line error when none."""
        rows = self.model.selection
        if not len(rows):
            raise BadInputError("select some samples first (Box, Lasso, a click, or Select matches)")
        if what == "selection":
            return rows
        cid = self.model.cluster_ids
        if cid is None:
            raise BadInputError("no MCL clusters yet: choose an inflation on the Clusters panel")
        return cluster_rows(cid, self.main_cluster())

    def main_cluster(self) -> int:
        """The MCL cluster holding most of the selection (-1 without clusters or selection)."""
        cid, rows = self.model.cluster_ids, self.model.selection
        if cid is None or not len(rows):
            return -1
        picked = np.asarray(cid)[rows]
        picked = picked[picked >= 0]  # rows outside the MCL sample have no cluster
        if not picked.size:
            return -1
        ids, counts = np.unique(picked, return_counts=True)
        return int(ids[np.argmax(counts)])

    def export_to(self, path: str | Path, what: str = "selection") -> None:
        """Write the selection (or its main cluster) to ``path`` (.csv / .parquet); the outcome shows below."""
        result = self.model.result
        try:
            if result is None:
                raise BadInputError("nothing to export: no result is shown")
            rows = self.export_rows(what)
        except BadInputError as exc:
            self.export_status.setText(f"<span style='color:#b00020'>{exc}</span>")
            return
        columns = export_columns(
            result.embeddings,
            rows,
            self.model.cluster_ids,
            self.model.inflation,
            self.model.coords,
            self.model.layout_method,
        )
        self._export_samples = result.embeddings
        self.export_status.setText(f"writing {len(rows):,} rows to {Path(path).name}…")
        self._run(
            "export",
            export_rows_job(path, columns),
            self._on_worker_export_done,
            lambda message: self.export_status.setText(f"<span style='color:#b00020'>{message}</span>"),
            inline=len(rows) <= INLINE_LIMIT,
        )

    def ask_export(self, what: str) -> None:
        """Ask for a file name, then :meth:`export_to`."""
        name = "selection.csv" if what == "selection" else f"cluster-{self.main_cluster()}.csv"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", name, "CSV (*.csv);;Parquet (*.parquet)")
        if path:
            self.export_to(path, what)

    # ------------------------------------------------------------------ model side

    def _on_model_result_changed(self) -> None:
        exporting = self.runners["export"].running
        self.cancel()
        result = self.model.result
        if result is None or result.embeddings is not self._export_samples:
            # "saved selection.csv" was about the samples shown before (another source): not these.
            self._export_samples = None
            self.export_status.setText("")
        elif exporting:
            self.export_status.setText("export cancelled: nothing written")
        self._index = None
        self._label_tables = {}
        fields = [] if result is None else SearchIndex.available_fields(result.embeddings)
        self.field_combo.blockSignals(True)
        self.field_combo.clear()
        self.field_combo.addItems([ANY_FIELD, *fields])
        self.field_combo.blockSignals(False)
        self.search_edit.setEnabled(bool(fields))
        self._show_search(None)
        if self.search_edit.text():
            self.run_search()
        self._on_model_selection_changed()

    def _on_model_clusters_changed(self) -> None:
        self._update_export_buttons()

    def _on_model_selection_changed(self, *_args) -> None:
        self._update_export_buttons()
        result, rows = self.model.result, self.model.selection
        self.runners["summary"].cancel()
        if result is None or not len(rows):
            self.summary = None
            self.summary_label.setText(NO_SELECTION)
            return
        self.summary_label.setText(f"{len(rows):,} selected — summarising…")
        make = summary_job(
            result.embeddings, rows, self.model.cluster_ids, self._label_tables, self.summary_field.currentText()
        )
        self._run("summary", make, self._on_worker_summary_done, self._on_worker_summary_failed)

    # ------------------------------------------------------------------ view side

    def _on_view_search_edited(self, *_args) -> None:
        self._search_timer.start()

    # ------------------------------------------------------------------ worker side

    def _on_worker_search_done(self, value) -> None:
        self._index, found = value
        self._show_search(found)

    def _on_worker_search_failed(self, message: str) -> None:
        self._show_search(None, error=message)

    def _on_worker_summary_done(self, summary) -> None:
        self.summary = summary
        self.summary_label.setText("\n".join(summary.lines()))

    def _on_worker_summary_failed(self, message: str) -> None:
        self.summary = None
        self.summary_label.setText(message)

    def _on_worker_export_done(self, path) -> None:
        self.last_export = Path(path)
        self.export_status.setText(f"saved {Path(path).name}")

    # ------------------------------------------------------------------ helpers

    def _show_search(self, found, error: str = "") -> None:
        self.search_result = found
        if error:
            self.search_status.setText(f"<span style='color:#b00020'>{error}</span>")
        else:
            self.search_status.setText("" if found is None else found.describe())
        self.select_hits_button.setEnabled(found is not None and found.n_hits > 0)
        self.highlight_changed.emit(self.highlight_rows)

    def _update_export_buttons(self) -> None:
        has_rows = len(self.model.selection) > 0
        self.export_selection_button.setEnabled(has_rows)
        cluster = self.main_cluster()
        self.export_cluster_button.setEnabled(cluster >= 0)
        if cluster >= 0:
            size = int(np.count_nonzero(np.asarray(self.model.cluster_ids) == cluster))
            self.export_cluster_button.setText(f"Export cluster {cluster} ({size:,})…")
        else:
            self.export_cluster_button.setText("Export cluster…")

    def _run(self, name: str, make, on_finished, on_failed, inline: bool | None = None) -> None:
        """Run ``make(cancel)`` inline (small inputs, or ``synchronous``) or on the named worker."""
        if inline is None:
            inline = self.model.n_samples <= INLINE_LIMIT
        if self.synchronous or inline:
            self.runners[name].cancel()
            try:
                value = run_job(make(CancelToken()))
            except Cancelled:
                return
            except Exception as exc:  # noqa: BLE001 - shown in the widget, like a worker's failure
                on_failed(error_text(exc))
                return
            on_finished(value)
            return
        self.runners[name].start(make, on_finished=on_finished, on_failed=on_failed)

    def cancel_by_user(self) -> None:
        """Cancel (the window's button or Escape): stop the running jobs and say so where their results would show.

        Not :meth:`cancel`'s silence: that one also runs when a newer request replaces a job.
        """
        messages = {
            "export": (self.export_status, "export cancelled: nothing written"),
            "search": (self.search_status, "search cancelled"),
            "summary": (self.summary_label, "summary cancelled"),
        }
        for name, runner in self.runners.items():
            if runner.running:
                runner.cancel()
                label, text = messages[name]
                label.setText(text)
