"""Layers panel: where in the network does the representation collapse?

"Sweep layers" runs the current checkpoint's data through the model once with
a hook on every block (:func:`embscope.tasks.layers.layers_job`, on a worker);
a metric picker chooses what is drawn against depth, with the POOR boundary
and the first POOR layer starred.  Every source swept in this session is drawn
on the same plot, the current one first, so two checkpoints compare layer by
layer.  Clicking a layer asks for that layer to be analysed in every other
panel (:attr:`LayersPanel.settings_requested`: the source's ``module`` becomes
that layer and the source is analysed again).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from embscope.formatting import counted
from embscope.gui.model import ViewModel
from embscope.gui.panels import PanelJob
from embscope.gui.panels.overview import metric_label
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.layers_png import draw_layer_curves
from embscope.tasks.report import is_plotted_metric

#: The metric shown first when a sweep arrives (the first present).
DEFAULT_METRICS = ("effective_rank_normalized", "effective_rank", "collapse_ratio")


class LayersPanel(QWidget):
    """Rule, Sweep button, metric picker and the metric-against-depth plot of every swept source."""

    title = "Layers"
    report_plots = ()
    export_size = (900, 700)
    job_requested = Signal(object)  # a PanelJob
    #: (source, {load field: value}): analyse this source again with these load settings.
    settings_requested = Signal(object, dict)

    def __init__(self, model: ViewModel, settings=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.sweeps: dict[int, tuple[object, object]] = {}  # id(source) → (source, LayersResult)
        self.rule_edit = QLineEdit()
        self.rule_edit.setPlaceholderText("all blocks (or e.g. encoder.layer.*)")
        self.rule_edit.setMinimumWidth(240)
        self.rule_edit.setToolTip(
            "Modules to sweep: comma-separated patterns over module names, * = one name part, ** = any"
        )
        self.sweep_button = QPushButton("Sweep layers")
        self.sweep_button.setToolTip("Run the data through the checkpoint once and measure every layer")
        self.metric_combo = QComboBox()
        self.metric_combo.setMinimumContentsLength(28)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        layout = QVBoxLayout(self)
        layout.addLayout(export_row(self, self.rule_edit, self.sweep_button, QLabel("Metric:"), self.metric_combo))
        layout.addWidget(self.status_label)
        layout.addWidget(self.plot_widget, stretch=1)
        self.sweep_button.clicked.connect(self._on_view_sweep_clicked)
        self.metric_combo.currentIndexChanged.connect(lambda _i: self._draw())
        model.result_changed.connect(self._on_model_result_changed)
        self._on_model_result_changed()

    # ------------------------------------------------------------------ protocol

    def plot_items(self) -> dict:
        return {"layers": self.plot} if self._shown() else {}

    def remember(self, settings) -> None:
        """Nothing to remember: the metric follows each sweep."""

    # ------------------------------------------------------------------ public

    @property
    def metric(self) -> str:
        return self.metric_combo.currentData() or ""

    def add_sweep(self, source, result) -> None:
        """Show ``result`` (a :class:`~embscope.tasks.layers.LayersResult`) as ``source``'s sweep."""
        self.sweeps[id(source)] = (source, result)
        self._fill_metrics()
        self._draw()

    # ------------------------------------------------------------------ model → view

    def _on_model_result_changed(self) -> None:
        source = self.model.source
        usable = source is not None and source.is_checkpoint and bool(source.load.data)
        self.sweep_button.setEnabled(usable)
        if source is None:
            self.status_label.setText("Open a checkpoint and its data to see every layer.")
        elif not usable:
            self.status_label.setText(
                "Layers need a checkpoint and the data to run through it: this source is an embeddings file."
                if not source.is_checkpoint
                else "Choose the data to run through this checkpoint, then sweep its layers."
            )
        elif id(source) not in self.sweeps:
            self.status_label.setText(
                "Sweep layers: one forward pass hooks every block and measures each one "
                "(effective rank, mean cosine, collapse ratio, kNN label accuracy …)."
            )
        self._fill_metrics()
        self._draw()

    def _on_view_sweep_clicked(self) -> None:
        from dataclasses import replace

        from embscope.tasks.extract import ExtractRequest
        from embscope.tasks.jobs import layers_sweep_job
        from embscope.tasks.layers import LayersRequest

        source = self.model.source
        if source is None:
            return
        load = replace(source.load, module=None, layer=None)
        request = LayersRequest(
            extract=ExtractRequest(checkpoint=source.path, load=load),
            rule=self.rule_edit.text().strip() or None,
            thresholds=source.settings.thresholds,
        )
        self.status_label.setText(f"Sweeping every layer of {source.base_name}…")

        def on_finished(result, source=source) -> None:
            self.add_sweep(source, result)
            metric = next((m for m in DEFAULT_METRICS if result.first_poor(m)), None)
            where = "no headline metric turns POOR"
            if metric is not None:
                where = f"first POOR layer: {result.first_poor(metric)} ({metric_label(metric)})"
                if result.recovered_at(metric) is not None:
                    where += f", recovered at {result.recovered_at(metric)}"
            self.status_label.setText(
                f"{source.base_name}: {counted(len(result.names), 'layer')}, {counted(result.n_samples, 'sample')} "
                f"— {where}. "
                "Click a layer to analyse it in every panel."
                + "".join(f"\n{line}" for line in result.dead_channels)  # where dimensions die, and why
            )

        self.job_requested.emit(PanelJob(layers_sweep_job(request), on_finished, "layer sweep"))

    def _on_view_point_clicked(self, _item, points, *_args) -> None:
        source = self.model.source
        if not points or source is None or id(source) not in self.sweeps:
            return
        result = self.sweeps[id(source)][1]
        name = result.names[int(points[0].data())]
        self.status_label.setText(f"Analysing layer {name} of {source.base_name} in every panel…")
        self.settings_requested.emit(source, {"module": name, "layer": None})

    # ------------------------------------------------------------------ drawing

    def _shown(self) -> list[tuple[str, object]]:
        """(label, result) of every swept source, the current one first."""
        current = self.model.source
        ordered = sorted(self.sweeps.values(), key=lambda pair: pair[0] is not current)
        return [(src.base_name, result) for src, result in ordered]

    def _fill_metrics(self) -> None:
        shown = self._shown()
        names: list[str] = []
        for _label, result in shown:
            names += [m for m in result.metric_names if m not in names and is_plotted_metric(m)]
        previous = self.metric
        self.metric_combo.blockSignals(True)
        self.metric_combo.clear()
        for name in names:
            self.metric_combo.addItem(metric_label(name), name)
        choice = previous if previous in names else next((m for m in DEFAULT_METRICS if m in names), None)
        if choice is not None:
            self.metric_combo.setCurrentIndex(names.index(choice))
        self.metric_combo.blockSignals(False)

    def _draw(self) -> None:
        shown = self._shown()
        self.plot_widget.setVisible(bool(shown and self.metric))  # nothing swept: the status line says why
        if not shown or not self.metric:
            self.plot.clear()
            self.plot.setTitle("")
            return
        items = draw_layer_curves(self.plot, shown, self.metric)
        if items:
            items[0].sigClicked.connect(self._on_view_point_clicked)
