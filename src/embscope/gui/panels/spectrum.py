"""Spectrum panel: log singular values, cumulative variance, rank markers, hover readout.

A concept set (N×C×d) adds a third plot, each sample's spectrum over its C
concepts: its collapse is in the concept dimension, which the global spectrum
of all N·C vectors does not show (seed 002).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from embscope.gui.model import ViewModel
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.plots import (
    cumulative_variance,
    draw_concept_spectrum,
    draw_cumulative,
    draw_spectrum,
    floored_concept_spectrum,
    spectrum_curves,
)
from embscope.gui.settings import Settings

NO_RESULT = "Open a checkpoint or an embeddings file to see its singular spectrum."


class SpectrumPanel(QWidget):
    """Singular spectrum (raw or σ/σ₁) and cumulative variance of the current result."""

    title = "Spectrum"
    report_plots = ("spectrum", "cumulative_variance", "concept_spectrum")
    #: Each plot about 900 pixels wide: two plots, three for a concept set.
    PLOT_WIDTH = 900

    def __init__(self, model: ViewModel, settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.normalised_box = QCheckBox("normalised (σ / σ₁)")
        self.normalised_box.setChecked(settings is not None and settings.spectrum_normalised)
        self.readout = QLabel("")
        self.readout.setStyleSheet("font-family: monospace;")
        self.readout.setWordWrap(True)  # one long line made the window wider than a 900 px screen
        self.graphics = pg.GraphicsLayoutWidget()
        self.spectrum_plot = self.graphics.addPlot(row=0, col=0)
        self.cumulative_plot = self.graphics.addPlot(row=0, col=1)
        self.cumulative_plot.setXLink(self.spectrum_plot)
        self.concept_plot = pg.PlotItem()  # in the layout only while a concept set is shown
        layout = QVBoxLayout(self)
        layout.addLayout(export_row(self, self.normalised_box))
        layout.addWidget(self.graphics, stretch=1)
        layout.addWidget(self.readout)
        self.normalised_box.toggled.connect(self._on_view_normalised_toggled)
        self._hover = pg.SignalProxy(self.graphics.scene().sigMouseMoved, rateLimit=30, slot=self._on_view_mouse_moved)
        model.result_changed.connect(self._on_model_result_changed)
        self._on_model_result_changed()

    @property
    def normalised(self) -> bool:
        return self.normalised_box.isChecked()

    @property
    def concepts(self):
        """The shown result's per-sample concept geometry, or None (no result, or a pooled set)."""
        return None if self.model.result is None else self.model.result.concepts

    @property
    def export_size(self) -> tuple[int, int]:
        return ((3 if self.concepts is not None else 2) * self.PLOT_WIDTH, 690)

    def plot_items(self) -> dict:
        if self.model.result is None:
            return {}
        items = {"spectrum": self.spectrum_plot, "cumulative_variance": self.cumulative_plot}
        if self.concepts is not None:
            items["concept_spectrum"] = self.concept_plot
        return items

    def remember(self, settings: Settings) -> None:
        settings.spectrum_normalised = self.normalised

    def _on_model_result_changed(self) -> None:
        result = self.model.result
        self.graphics.setVisible(result is not None)  # no result: the read-out says why, no empty axes
        if result is None:
            self.spectrum_plot.clear()
            self.cumulative_plot.clear()
            self.readout.setText(NO_RESULT)
            return
        draw_spectrum(self.spectrum_plot, result.geometry, self.normalised)
        draw_cumulative(self.cumulative_plot, result.geometry)
        self._show_concepts()
        self.readout.setText(self.readout_at(1))

    def _show_concepts(self) -> None:
        shown = self.concept_plot.scene() is not None
        if self.concepts is None:
            if shown:
                self.graphics.removeItem(self.concept_plot)
            return
        if not shown:
            self.graphics.addItem(self.concept_plot, row=0, col=2)
        rule = self.model.result.thresholds.get("per_sample_effective_rank_normalized")
        draw_concept_spectrum(self.concept_plot, self.concepts, None if rule is None else rule.good)

    def _on_view_normalised_toggled(self, _checked: bool) -> None:
        if self.model.result is not None:
            draw_spectrum(self.spectrum_plot, self.model.result.geometry, self.normalised)

    def _on_view_mouse_moved(self, event) -> None:
        pos = event[0]
        if self.concepts is not None and self.concept_plot.sceneBoundingRect().contains(pos):
            x = self.concept_plot.vb.mapSceneToView(pos).x()
            self.readout.setText(self.concept_readout_at(int(round(x))))
            return
        for plot in (self.spectrum_plot, self.cumulative_plot):
            if plot.sceneBoundingRect().contains(pos):
                x = plot.vb.mapSceneToView(pos).x()
                self.readout.setText(self.readout_at(int(round(x))))
                return

    def concept_readout_at(self, k: int) -> str:
        """Text for a concept set's per-sample component ``k`` (1-based): σₖ/σ₁ over samples."""
        concepts = self.concepts
        if concepts is None or not concepts.spectrum_quantiles.shape[1]:
            return ""
        bands = floored_concept_spectrum(concepts.spectrum_quantiles)
        k = int(np.clip(k, 1, bands.shape[1]))
        m = concepts.metrics
        return (
            f"concept component {k}:  σₖ/σ₁ median {bands[1, k - 1]:.3g}   10–90 % of samples "
            f"{bands[0, k - 1]:.3g}–{bands[2, k - 1]:.3g}   |   mean effective rank "
            f"{m['per_sample_effective_rank_mean']:.2f} of {bands.shape[1]} per sample"
        )

    def readout_at(self, k: int) -> str:
        """Text for component ``k`` (1-based): σ, centred σ and the cumulative variance."""
        result = self.model.result
        if result is None:
            return ""
        curves = list(spectrum_curves(result.geometry, self.normalised).values())
        n = len(curves[0])
        if n == 0:
            return ""
        k = int(np.clip(k, 1, n))
        cum = cumulative_variance(result.geometry)
        cum_text = f"{cum[k - 1]:.1%}" if k - 1 < len(cum) else "–"
        m = result.geometry.metrics
        return (
            f"k = {k}:  σ = {curves[0][k - 1]:.4g}   centred σ = {curves[1][k - 1]:.4g}   "
            f"cumulative variance = {cum_text}   |   effective rank {m.get('effective_rank', 0):.2f}, "
            f"participation ratio {m.get('participation_ratio', 0):.2f}, "
            f"95 % at {m.get('dims_for_95_variance', 0)}"
        )
