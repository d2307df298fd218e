"""Category colours that scale to hundreds of classes, none of them the "other" grey.

The first 18 are Tableau 20 without its two greys (so "other" is the only grey
on a map); after them come golden-angle hues at three lightness levels and two
saturations, deterministic, all saturated enough (≥ 0.45) to never read as grey.
"""

from __future__ import annotations

import colorsys

#: The grey of the "other (N)" category: no palette colour equals it or any grey.
OTHER_COLOUR = "#b0b0b0"
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


def category_colours(n: int) -> list[str]:
    """``n`` distinct hex colours (Tableau first, then generated hues); never grey."""
    if n <= len(_TABLEAU):
        return list(_TABLEAU[:n])
    return list(_TABLEAU) + _generated(n - len(_TABLEAU))
