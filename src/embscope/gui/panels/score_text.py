"""A sweep row's label scores as text, each beside its chance baseline (Clusters and Compare panels).

A purity or ARI means nothing without the value the same partition would get
by chance (:mod:`embscope.analysis.chance`), so no panel prints one alone.
"""

from __future__ import annotations

from embscope.gui.render.report_png import format_value

#: Which chance baseline (level, score) each read-out compares against.
CHANCE_OF = {
    "purity_leaf": ("leaf", "purity"),
    "purity_parent": ("parent", "purity"),
    "nmi_leaf": ("leaf", "nmi"),
    "ari_leaf": ("leaf", "ari"),
    "within_parent": ("hierarchy", "within_parent"),
}

#: A chance spread below this is zero printed as float noise (one cluster: every permutation gives the same purity).
_NO_SPREAD = 1e-12


def score_with_chance(row: dict, key: str, *, compact: bool = False, notes: bool = True) -> str:
    """``0.93  (chance 0.12 ± 0.01, z 41, p 0.0005)`` for ``row[key]``; ``compact``: ``0.93 (chance 0.12, z 41)``.

    p is the one-sided p-value significance is read from (the null is often far
    from normal, so z alone would overstate a score; :mod:`embscope.analysis.chance`).

    Adds why a score is no evidence where that holds: a fragmented inflation
    (purity ~1 by construction) or a single cluster (purity is the modal share).
    Keys without a baseline (counts) are formatted alone; ``notes=False`` leaves
    the why-not-evidence notes to the caller (one per row instead of one per score).
    """
    value = row.get(key)
    text = format_value(value)
    level, score = CHANCE_OF.get(key, (None, None))
    base = ((row.get("chance") or {}).get(level) or {}).get(score) if level else None
    if not base or base.get("chance") is None or value is None:
        return text
    z = base.get("z")
    z_text = "" if z is None else f", z {z:.0f}" if abs(z) >= 10 else f", z {z:.1f}"
    p = base.get("p_value")
    if p is not None and not compact:
        # Far beyond every permutation, p is Cantelli's bound: an upper limit, said as one.
        z_text += f", p {'≤ ' if base.get('p_method') == 'Cantelli bound' else ''}{p:.1g}"
    spread = base.get("chance_std") or 0.0
    spread_text = "" if compact else f" ± {format_value(spread if spread > _NO_SPREAD else 0.0)}"
    text += f"{' ' if compact else '  '}(chance {format_value(base['chance'])}{spread_text}{z_text})"
    if not notes:
        return text
    if row.get("n_clusters") == 1:
        text += " — one cluster: purity is the modal share" if score == "purity" else " — one cluster"
    elif row.get("fragmented"):
        text += " — fragmented, not evidence"
    return text
