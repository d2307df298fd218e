"""Colours for a :class:`~embscope.tasks.colouring.Colouring`: one hex colour per code.

The codes come from the Qt-free :mod:`embscope.tasks.colouring`; this decides
what they look like: categories take the map palette in frequency order with
grey for "other" and a darker grey for a blank value, a missing label
(:mod:`embscope.gui.render.palette`), prediction ≠ label is
red against a pale blue, continuous bins are steps along the map's ramp.  Whatever
has no value (a missing label, a row outside the MCL sample, a sample kNN agreement
cannot score, a non-finite number) is the same grey, which neither the palette nor
the ramp takes.
"""

from __future__ import annotations

import numpy as np

from embscope.gui.render.palette import NO_VALUE_COLOUR, OTHER_COLOUR, category_code_colours
from embscope.gui.render.plots import ramp_colours

#: prediction ≠ label, prediction = label, unknown.
CORRECT_COLOURS = ("#d62728", "#9ecae1", OTHER_COLOUR)
MISSING_COLOUR = NO_VALUE_COLOUR


def code_colours(colouring) -> list[str]:
    """Hex colour of each code of ``colouring``."""
    n = colouring.n_codes
    if colouring.kind == "continuous":
        bins = n - 1  # the last code is "missing"
        rgba = ramp_colours((np.arange(bins) + 0.5) / bins)
        return [f"#{int(r):02x}{int(g):02x}{int(b):02x}" for r, g, b in rgba[:, :3]] + [MISSING_COLOUR]
    if colouring.key == "correct":
        return list(CORRECT_COLOURS[:n])
    n_kept = n - colouring.has_other - colouring.has_blank
    return category_code_colours(n_kept, colouring.has_other, colouring.has_blank)


def ramp_legend(colouring, colours: list[str]) -> list[tuple[str, str]]:
    """(text, colour) of a continuous colouring's legend: its two ends, and "missing" when some are."""
    return [(name, colours[code]) for code, name, _count in colouring.legend()]
