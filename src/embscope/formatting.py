"""The one number formatter of reports, verdicts and tables.

Plain ``.{digits}g`` between 0.001 and ``fixed_below``, scientific outside,
so a table never mixes ``0.0000123`` and ``1.23e-05``.  Bottom-level module:
no numpy needed, no Qt.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

MISSING = "—"


def format_number(
    value: object,
    *,
    digits: int = 4,
    fixed_below: float = 1e5,
    missing: str = MISSING,
    thousands: bool = False,
) -> str:
    """A number as report text.

    Parameters
    ----------
    value
        A number (Python or numpy), a bool, ``None`` or anything else (shown with ``str``).
    digits
        Significant digits.
    fixed_below
        Magnitudes from 0.001 up to this are written plainly; others in scientific notation.
    missing
        Text for ``None`` and NaN.
    thousands
        Group the digits of whole numbers (``12,345``).

    Examples
    --------
    >>> format_number(0.123456), format_number(123456.0), format_number(None), format_number(True)
    ('0.1235', '1.235e+05', '—', 'yes')
    """
    if value is None:
        return missing
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,}" if thousands else str(int(value))
    if not isinstance(value, Real):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return missing
    if number == 0 or 1e-3 <= abs(number) < fixed_below:
        return f"{number:.{digits}g}"
    return f"{number:.{digits - 1}e}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 dead channel"``, ``"3 dead channels"``: a count with its noun in the right number."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def listed(values, limit: int) -> str:
    """``"127, 223, 319"``, or the first ``limit`` then ``", … 12 more"``: indices or names in a sentence."""
    values = list(values)
    shown = ", ".join(v if isinstance(v, str) else str(int(v)) for v in values[:limit])
    return shown + (f", … {len(values) - limit} more" if len(values) > limit else "")


def format_seconds(seconds: float) -> str:
    """``0.4 s`` / ``12 s`` / ``3 min 05 s``: a stage's duration."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"
