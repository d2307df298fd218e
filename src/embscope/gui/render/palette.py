"""Category colours that scale to hundreds of classes, none of them grey.

The first 18 are Tableau 20 without its two greys (so the only greys on a map
are "other" and missing data); after them come golden-angle hues at three
lightness levels and two saturations, deterministic, all saturated enough
(≥ 0.45) to never read as grey.
"""

from __future__ import annotations

import colorsys

#: The grey of the "other (N)" category: no palette colour equals it or any grey.
OTHER_COLOUR = "#b0b0b0"
#: Samples without a value (a missing label, an empty cell): a mid grey, as most tools draw missing data, so
#: they recede behind the classes on a white or a dark plot alike; darker than "other", which is a category.
NO_VALUE_COLOUR = "#8c8c8c"
#: At most this many categories get their own colour; the rest share "other (N)".
MAX_CATEGORIES = 256

#: Tableau 20 in its own order (distinct colours first, paler second): line plots use it whole.
TABLEAU20 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
)
#: Map categories: Tableau 20 without its two greys, so "other" is the only grey on a map.
_TABLEAU = tuple(c for c in TABLEAU20 if c not in ("#7f7f7f", "#c7c7c7"))


def _generated(n: int) -> list[str]:
    out = []
    golden = 0.618033988749895
    for i in range(n):
        hue = (0.11 + i * golden) % 1.0
        lightness = (0.42, 0.62, 0.32)[i % 3]
        saturation = (0.80, 0.55)[(i // 3) % 2]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


def category_code_colours(n_kept: int, other: bool, blank: bool) -> list[str]:
    """Colour per code of a categorical colouring: a palette colour per kept category, then
    :data:`OTHER_COLOUR` for "other" (when ``other``), then :data:`NO_VALUE_COLOUR` for the blank value."""
    return category_colours(n_kept) + ([OTHER_COLOUR] if other else []) + ([NO_VALUE_COLOUR] if blank else [])


def ordered_colours(order) -> list[str]:
    """:func:`category_code_colours` of a :class:`~embscope.tasks.colouring.CategoryOrder`."""
    return category_code_colours(len(order.kept), order.n_other > 0, order.blank)


def capped_legend(entries: list, limit: int) -> tuple[list, int, list]:
    """A legend of at most ``limit`` (name, colour) ``entries``: those shown, how many more there are,
    and the entry of missing data (:data:`NO_VALUE_COLOUR`), shown after the "… N more" line.

    Missing data comes last in a legend, but grey points must always be explained.
    """
    missing = [entry for entry in entries if entry[1] == NO_VALUE_COLOUR]
    rest = [entry for entry in entries if entry[1] != NO_VALUE_COLOUR]
    if len(entries) <= limit:
        return rest, 0, missing
    shown = rest[: max(limit - len(missing), 0)]
    return shown, len(rest) - len(shown), missing


def category_colours(n: int) -> list[str]:
    """``n`` distinct hex colours (Tableau first, then generated hues); never grey."""
    if n <= len(_TABLEAU):
        return list(_TABLEAU[:n])
    return list(_TABLEAU) + _generated(n - len(_TABLEAU))
