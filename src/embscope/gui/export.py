"""PNG export of one source's panels, offscreen: ``embscope analyze --png`` and File ▸ Export.

The panels of :data:`~embscope.gui.panels.registry.SOURCE_PANELS` are built on a
fresh :class:`~embscope.gui.model.ViewModel`, bound to the result, laid out at
their ``export_size`` without being shown, and each plot they offer
(``plot_items()``) is written with pyqtgraph's ImageExporter; ``report.png``
tiles the plots the panels name in ``report_plots``.  So the files are the
window's own plots, and a new panel is exported with no change here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

#: Exported plots are 900 pixels wide and about two thirds as high (as the report page's tiles).
PLOT_ASPECT = 2 / 3


def render_pngs(
    result,
    folder: str | Path,
    *,
    coords=None,
    method: str = "",
    colour_by: str | None = None,
    cluster_ids=None,
    inflation: float | None = None,
    settings=None,
) -> list[Path]:
    """Render every panel plot of ``result`` plus the one-page ``report.png`` into ``out_dir``.

    Works offscreen: creates a QApplication (``QT_QPA_PLATFORM=offscreen`` when
    there is no display) if none runs.  Must run on the GUI thread.

    Parameters
    ----------
    result
        An :class:`~embscope.tasks.analyze.AnalysisResult`.
    folder
        Folder for the PNGs: ``spectrum``, ``cumulative_variance``, ``map``,
        ``mcl_clusters``, ``mcl_purity``, ``predictions``, ``confusion``,
        ``weight_spectra`` (those that apply) and ``report``.
    coords, method
        The map (N×2) and how it was made; default a PCA of the samples.
    colour_by
        The map's colouring (default: ``settings.colour_by``).
    cluster_ids, inflation
        MCL clusters to colour by (default: the Clusters panel's first choice, I = 2 or nearest).
    settings
        The app's :class:`~embscope.gui.settings.Settings` (view choices such as the
        normalised spectrum); default settings when None.

    Returns
    -------
    list of Path
        The files written.
    """
    from embscope.gui.model import ViewModel
    from embscope.gui.panels.registry import SOURCE_PANELS
    from embscope.gui.render.plots import ensure_qapp, export_plot, lay_out_offscreen
    from embscope.gui.render.report_png import render_report_png
    from embscope.gui.settings import Settings

    ensure_qapp()
    settings = replace(settings) if settings is not None else Settings()
    if colour_by is not None:
        settings.colour_by = colour_by
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model = ViewModel()
    panels = [panel_class(model, settings) for panel_class in SOURCE_PANELS]
    try:
        model.set_result(result)
        if coords is None:
            coords, method = pca_coords(result), "pca"
        model.set_layout(coords, method or "pca")
        if cluster_ids is not None:
            model.set_clusters(np.nan if inflation is None else inflation, cluster_ids)
        written: dict[str, Path] = {}
        for panel in panels:
            panel.resize(*panel.export_size)
            lay_out_offscreen(panel)  # after drawing: axis widths follow the tick labels
            fit_plots_to_aspect(panel)
            for name, item in panel.plot_items().items():
                written[name] = export_plot(item, out / f"{name}.png")
        tiles = [written[name] for panel in panels for name in panel.report_plots if name in written]
        report = render_report_png(result, out / "report.png", tiles)
    finally:
        for panel in panels:
            panel.deleteLater()
        model.deleteLater()
    return [*written.values(), report]


def fit_plots_to_aspect(panel, aspect: float = PLOT_ASPECT, rounds: int = 3) -> None:
    """Resize an offscreen panel's height until its plots are about ``aspect`` (height / width).

    Each panel lays its plots out with other widgets around them (tables,
    labels, splitters), so the height that gives 3:2 plots is found by
    measuring rather than by a constant per panel.
    """
    from embscope.gui.render.plots import lay_out_offscreen

    for _ in range(rounds):
        items = list(panel.plot_items().values())
        if not items:
            return
        missing = float(np.mean([item.size().width() * aspect - item.size().height() for item in items]))
        if abs(missing) < 4:
            return
        panel.resize(panel.width(), max(200, int(round(panel.height() + missing))))
        lay_out_offscreen(panel)


def pca_coords(result) -> np.ndarray:
    """2-D PCA of the per-sample vectors (the layout module's, so GUI and CLI agree)."""
    from embscope.tasks.layout import pca_layout_cached

    return np.asarray(pca_layout_cached(result.sample_vectors, result.graph), dtype=np.float32)
