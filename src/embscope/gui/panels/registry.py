"""The panels shown for one source, in tab order; the window and ``--png`` export iterate this list."""

from __future__ import annotations

from embscope.gui.panels.clusters import ClustersPanel
from embscope.gui.panels.map import MapPanel
from embscope.gui.panels.overview import OverviewPanel
from embscope.gui.panels.predictions import PredictionsPanel
from embscope.gui.panels.spectrum import SpectrumPanel
from embscope.gui.panels.weights import WeightsPanel

#: Per-source panels (each a :class:`embscope.gui.panels.Panel`), in tab order.
SOURCE_PANELS = (OverviewPanel, SpectrumPanel, MapPanel, ClustersPanel, PredictionsPanel, WeightsPanel)
