"""Map panel: the samples' 2-D layout (PCA first, UMAP when ready), fluid at 10⁶ points.

Modules
-------
- :mod:`.engine` (Qt-free): :class:`MapIndex` (bucket grid, y order, KD-tree),
  :class:`Colouring`, the colour-mixing density image, the lasso, and the
  worker jobs that build them.
- :mod:`.items`: :class:`PointCloudItem` (fast point painter), :class:`SelectViewBox`.
- :mod:`.legend`: :class:`LegendList`, the side panel's full, clickable legend.
- :mod:`.panel`: :class:`MapPanel`.

Level of detail
---------------
When the layout or colouring changes, one worker job builds the index, the
colour codes and a full-extent density image (up to ``SYNC_LIMIT`` samples
this runs inline: it takes milliseconds).  Each pan/zoom is coalesced to one
:meth:`MapPanel.update_view` per event-loop turn: an O(1) count of the points
in view decides between drawing them (at most ``POINT_LIMIT``, gathered from
the grid) and showing the density image; a sharper image of the view is
computed on a worker once the view rests.  Hover and click are KD-tree
queries; a lasso on a big map runs on a worker.  Nothing per event is O(N).

Above 10⁶ there is no cap: the one-off preparation grows linearly (≈ 1–3 s
per 10⁶ samples on a shared 2-core machine, on a worker; the map shows
"preparing the map of N points…" meanwhile) and takes ≈ 60 bytes per sample;
every event still costs O(visible ≤ POINT_LIMIT) or a fixed-size image.

Hooks for map tools (colour-by sources, search, selection summary, export)
-------------------------------------------------------------------------
- ``MapPanel.add_colour_source(name, make_colouring)`` adds a "Colour by"
  entry; ``make_colouring(result, cluster_ids) -> Colouring`` runs on a worker
  (build it with :func:`engine.colouring_from_codes`, :func:`engine.category_colouring`
  for labels — same colours as the built-in modes — or :func:`engine.continuous_colouring`).
- ``MapPanel.set_colouring(colouring)`` shows a ready :class:`Colouring` (codes,
  colours, legend names) until the "Colour by" choice changes.
- ``MapPanel.colouring`` is the colouring on screen (codes per sample, names, counts).
- ``MapPanel.set_highlight(rows_or_mask_or_None)`` marks samples (search hits).
- ``MapPanel.selection_changed(object)`` emits the selected rows (sorted int64);
  ``model.set_selection(rows)`` selects.
- ``MapPanel.legend.shown_changed(object)``: boolean per colour code after a legend click.
- ``MapPanel.add_toolbar_widget(widget)`` / ``add_side_widget(widget, stretch)`` place widgets.
"""

from embscope.gui.panels.map.engine import (
    Colouring,
    MapIndex,
    category_colouring,
    colouring_from_codes,
    continuous_colouring,
    points_in_polygon,
)
from embscope.gui.panels.map.items import PointCloudItem, SelectViewBox
from embscope.gui.panels.map.legend import LegendList
from embscope.gui.panels.map.panel import HOVER_PIXELS, POINT_LIMIT, SYNC_LIMIT, MapPanel

__all__ = [
    "HOVER_PIXELS",
    "POINT_LIMIT",
    "SYNC_LIMIT",
    "Colouring",
    "LegendList",
    "MapIndex",
    "MapPanel",
    "PointCloudItem",
    "SelectViewBox",
    "category_colouring",
    "colouring_from_codes",
    "continuous_colouring",
    "points_in_polygon",
]
