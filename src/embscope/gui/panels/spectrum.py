"""Spectrum panel: log singular values, cumulative variance, rank markers, hover readout."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from embscope.gui.model import ViewModel
from embscope.gui.panels.widgets import export_row
from embscope.gui.render.plots import cumulative_variance, draw_cumulative, draw_spectrum, spectrum_curves
from embscope.gui.settings import Settings

NO_RESULT = "Open a checkpoint or an embeddings file to see its singular spectrum."


class SpectrumPanel(QWidget):
    """Singular spectrum (raw or σ/σ₁) and cumulative variance of the current result."""

    title = "Spectrum"
    report_plots = ("spectrum", "cumulative_variance")
    export_size = (1800, 690)

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

    def plot_items(self) -> dict:
        if self.model.result is None:
            return {}
        return {"spectrum": self.spectrum_plot, "cumulative_variance": self.cumulative_plot}

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
        self.readout.setText(self.readout_at(1))

    def _on_view_normalised_toggled(self, _checked: bool) -> None:
        if self.model.result is not None:
            draw_spectrum(self.spectrum_plot, self.model.result.geometry, self.normalised)

    def _on_view_mouse_moved(self, event) -> None:
        pos = event[0]
        for plot in (self.spectrum_plot, self.cumulative_plot):
            if plot.sceneBoundingRect().contains(pos):
                x = plot.vb.mapSceneToView(pos).x()
                self.readout.setText(self.readout_at(int(round(x))))
                return

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
