"""Checkpoint series: steps from names, ordering, scalar metrics, first POOR crossings.

Training frameworks name checkpoints ``step-000500``, ``checkpoint-1000``,
``epoch_3``, ``global_step1200``, ``model_iter_800.pt`` …; the step is parsed
from the name (or from a user regex whose first group is the step) so the
metrics can be plotted against it and the first step where a metric turns
POOR can be marked (seeds 001 and 003: where did the rank start to fall).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from embscope.analysis.grading import Threshold
from embscope.analysis.sweep import graded_parent_row, parent_purity_lift
from embscope.errors import BadInputError

#: A keyword, an optional separator, then the number.  The longest keyword first
#: so ``global_step`` wins over ``step``.
_STEP_RE = re.compile(
    r"(?<![a-z])(global[_-]?step|step|steps|checkpoint|ckpt|epoch|iteration|iter|it)[_\-=.]?(\d+)",
    re.IGNORECASE,
)
_ONLY_DIGITS_RE = re.compile(r"^(\d+)$")


def compile_step_pattern(pattern: str) -> re.Pattern:
    """``pattern`` compiled, or one line saying why it is not a regular expression."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadInputError(f"--pattern {pattern!r} is not a regular expression: {exc}") from None


_KIND = {
    "global_step": "step",
    "globalstep": "step",
    "global-step": "step",
    "steps": "step",
    "checkpoint": "step",
    "ckpt": "step",
    "iteration": "step",
    "iter": "step",
    "it": "step",
}

#: File suffixes that hold a state dict or a whole model; folders (Hugging Face
#: checkpoints such as ``checkpoint-1000/``) are taken as they are.
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".pt2")


def _stem(name: str) -> str:
    base = Path(name).name
    for suffix in CHECKPOINT_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def parse_step(name: str, pattern: str | re.Pattern | None = None) -> int | None:
    """The training step encoded in a checkpoint's file or folder name.

    Parameters
    ----------
    name
        A file or folder name (a full path is fine: only its last part is read).
    pattern
        Optional regular expression searched in the name; its first group is the step.

    Returns
    -------
    int or None
        The step, or ``None`` when the name carries none (``model.safetensors``).
        Without a pattern: the number after the last keyword among ``global_step``,
        ``step``, ``checkpoint``, ``ckpt``, ``epoch``, ``iter``/``iteration``/``it``;
        or the whole name when it is only digits (``1000/``, ``500.pt``).
    """
    stem = _stem(name)
    if pattern is not None:
        regex = compile_step_pattern(pattern) if isinstance(pattern, str) else pattern
        if regex.groups < 1:
            raise BadInputError(f"step pattern {regex.pattern!r} needs a group around the step, e.g. 'ep(\\d+)'")
        match = regex.search(Path(name).name)
        if match is None or match.group(1) is None:
            return None
        try:
            return int(match.group(1))
        except ValueError:
            raise BadInputError(
                f"step pattern matched {match.group(1)!r} in {name!r}, which is not a whole number"
            ) from None
    matches = list(_STEP_RE.finditer(stem))
    if matches:
        return int(matches[-1].group(2))
    only = _ONLY_DIGITS_RE.match(stem)
    return int(only.group(1)) if only else None


def step_unit(name: str) -> str:
    """``"epoch"`` when the name counts epochs, else ``"step"`` (for axis titles)."""
    matches = list(_STEP_RE.finditer(_stem(name)))
    if not matches:
        return "step"
    keyword = matches[-1].group(1).lower()
    return "epoch" if keyword == "epoch" else _KIND.get(keyword, keyword)


@dataclass(frozen=True)
class SeriesEntry:
    """One checkpoint of a series."""

    step: int
    path: Path


def is_checkpoint_entry(path: Path) -> bool:
    """A file with a checkpoint suffix, or a folder (model folder / sharded checkpoint)."""
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return True
    return path.suffix.lower() in CHECKPOINT_SUFFIXES


def order_checkpoints(paths: Iterable[str | Path], pattern: str | None = None) -> tuple[list[SeriesEntry], list[str]]:
    """Checkpoints sorted by step, plus notes on the names that were skipped.

    Raises
    ------
    BadInputError
        When no name carries a step, or two checkpoints have the same step.
    """
    entries: list[SeriesEntry] = []
    skipped: list[str] = []
    for path in map(Path, paths):
        step = parse_step(path.name, pattern)
        if step is None:
            skipped.append(path.name)
        else:
            entries.append(SeriesEntry(step, path))
    if not entries:
        hint = f"pattern {pattern!r} matched none" if pattern else "no name carries a step (e.g. step-000500)"
        raise BadInputError(f"no checkpoints with a step found: {hint}; give --pattern with a group around the step")
    entries.sort(key=lambda e: (e.step, e.path.name))
    for a, b in itertools.pairwise(entries):
        if a.step == b.step:
            raise BadInputError(f"two checkpoints have step {a.step}: {a.path.name} and {b.path.name}")
    notes = [f"skipped {name}: no step in its name" for name in skipped]
    return entries, notes


def find_checkpoints(folder: str | Path, pattern: str | None = None) -> tuple[list[SeriesEntry], list[str]]:
    """The checkpoints directly inside ``folder``, ordered by step (see :func:`order_checkpoints`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"not a folder of checkpoints: {folder}")
    candidates = sorted(p for p in folder.iterdir() if is_checkpoint_entry(p))
    if not candidates:
        raise BadInputError(f"{folder} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)}) or folders")
    return order_checkpoints(candidates, pattern)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def scalar_metrics(summary: Mapping, purity_inflation: float | None = None) -> dict[str, float]:
    """The scalar metrics of one ``summary.json`` dictionary, flat, for plotting against the step.

    Geometry scalars keep their names (``effective_rank``, ``collapse_ratio`` …), as do a
    concept set's (``per_sample_effective_rank_normalized`` …);
    predictions are prefixed ``predictions.``; the MCL row closest to
    ``purity_inflation`` (default: the row parent purity is graded on,
    :func:`~embscope.analysis.sweep.graded_parent_row`) gives ``purity_leaf``,
    ``purity_parent_raw``, ``n_clusters`` … and, where the row has its chance
    baselines, ``purity_leaf_chance`` / ``_corrected`` / ``_z``,
    ``purity_parent_chance`` / ``_z`` and ``purity_parent``: the parent
    purity's lift over chance, the quantity its grade judges; ``within_parent`` (the share of
    leaf mixing that stays within parents) with ``_chance`` and ``_z``; each weight matrix gives
    ``weights.<name>.effective_rank`` and ``.stable_rank``, and a checkpoint
    ``weights.total_norm``, ``weights.dead_heads`` and ``weights.dead_norm_channels``.
    """
    out: dict[str, float] = {}
    for key, value in (summary.get("geometry") or {}).items():
        if _is_number(value):
            out[key] = float(value)
    for key, value in (summary.get("concepts") or {}).items():  # concept sets: per-sample concept geometry
        if _is_number(value):
            out[key] = float(value)
    for key, value in (summary.get("predictions") or {}).items():
        if _is_number(value):
            out[f"predictions.{key}"] = float(value)
    rows = (summary.get("clusters") or {}).get("inflations") or []
    rows = [r for r in rows if _is_number(r.get("inflation"))]
    if rows:
        if purity_inflation is None:  # the row the analysis grades parent purity on
            row = graded_parent_row(rows) or min(rows, key=lambda r: r["inflation"])
        else:
            row = min(rows, key=lambda r: abs(r["inflation"] - purity_inflation))
        for key, value in row.items():
            if key != "inflation" and _is_number(value):
                out[key] = float(value)
        # A purity beside its chance baseline for the same partition: raw purity rises with
        # fragmentation, so a series or a comparison of it alone can mislead.
        for level, chance in (row.get("chance") or {}).items():
            purity = (chance or {}).get("purity") or {}
            for field in ("chance", "corrected", "z"):
                if _is_number(purity.get(field)):
                    out[f"purity_{level}_{field}"] = float(purity[field])
        within = ((row.get("chance") or {}).get("hierarchy") or {}).get("within_parent") or {}
        for field in ("chance", "z"):
            if _is_number(within.get(field)):
                out[f"within_parent_{field}"] = float(within[field])
        # ``purity_parent`` is also a graded metric, and what is graded is its lift over chance
        # (the thresholds file's rule, the summary's grade): under that name the flat view holds
        # the lift, so a comparison's grade and a series' POOR line judge the value shown.
        # The raw purity keeps its own name.
        if "purity_parent" in out:
            out["purity_parent_raw"] = out.pop("purity_parent")
        if (lift := parent_purity_lift(row)) is not None:
            out["purity_parent"] = lift
        out["mcl_inflation"] = float(row["inflation"])
    weights = summary.get("weights") or {}
    for matrix in weights.get("matrices") or []:
        for key in ("effective_rank", "stable_rank"):
            if _is_number(matrix.get(key)):
                out[f"weights.{matrix['name']}.{key}"] = float(matrix[key])
    if weights:
        # Counts over the whole checkpoint, so every step has a value (0 included): a
        # layer's gains dying during training shows as the step where this leaves 0.
        if _is_number(weights.get("total_norm")):
            out["weights.total_norm"] = float(weights["total_norm"])
        out["weights.dead_heads"] = float(weights.get("dead_heads") or 0)
        out["weights.dead_norm_channels"] = float(
            sum(int(layer.get("count") or 0) for layer in weights.get("dead_norm_channels") or [])
        )
    return out


@dataclass(frozen=True)
class Crossing:
    """Where a metric first grades POOR along the series."""

    metric: str
    step: int | None
    value: float | None
    poor_from_start: bool
    threshold: float
    # Where it is POOR no more: the first step of the closing run of not-POOR
    # values after a POOR one (None while the last value is POOR).  A layer sweep
    # often turns anisotropic in the middle and recovers at the output; "POOR from
    # layer 1" alone would read as "and ever after".
    recovered_step: int | None = None
    recovered_value: float | None = None

    def to_summary(self) -> dict:
        return {
            "first_poor_step": self.step,
            "value": self.value,
            "poor_from_start": self.poor_from_start,
            "poor_beyond": self.threshold,
            "recovered_step": self.recovered_step,
            "recovered_value": self.recovered_value,
        }


def first_poor_crossings(
    steps: Sequence[int],
    metrics: Sequence[Mapping[str, float | None]],
    thresholds: Mapping[str, Threshold],
) -> dict[str, Crossing]:
    """For every graded metric, the first step whose value lies beyond its POOR boundary.

    A value is POOR when it is on the wrong side of the threshold's ``ok``
    boundary (below it when higher is better, above otherwise); a missing or
    NaN value is skipped rather than counted (a checkpoint that lacks the metric
    says nothing about it).  Metrics never POOR map to a :class:`Crossing` with
    ``step=None``; metrics without a threshold or without values are left out.
    A metric whose last values are no longer POOR names where that last run
    starts (``recovered_step``).
    """
    if len(steps) != len(metrics):
        raise BadInputError(f"{len(steps)} steps but {len(metrics)} metric rows")
    order = sorted(range(len(steps)), key=lambda i: steps[i])
    out: dict[str, Crossing] = {}
    for name, rule in thresholds.items():
        seen = [(steps[i], metrics[i].get(name)) for i in order]
        seen = [(s, float(v)) for s, v in seen if _is_number(v)]
        if not seen:
            continue
        poor = [rule.grade(v) == "POOR" for _, v in seen]
        first = next((sv for sv, p in zip(seen, poor, strict=True) if p), None)
        recovered = None
        if first is not None and not poor[-1]:
            last_poor = max(i for i, p in enumerate(poor) if p)
            recovered = seen[last_poor + 1]
        out[name] = Crossing(
            metric=name,
            step=None if first is None else first[0],
            value=None if first is None else first[1],
            poor_from_start=first is not None and first[0] == seen[0][0],
            threshold=rule.ok,
            recovered_step=None if recovered is None else recovered[0],
            recovered_value=None if recovered is None else recovered[1],
        )
    return out
