"""The steps of an analysis with estimated costs, and one overall progress with an ETA over them.

``analyze_job`` yields a :class:`~embscope.tasks.progress.Plan` of
:class:`Step` s once it knows the data's size, then progress reports marked
with their step's key; the window adds its own map steps and shows one bar
(:class:`OverallProgress`) instead of a bar restarting at 0 for every stage.

The weights are seconds measured on the development machine (2 shared cores;
``benchmarks/bench_gui_progressive.py`` prints the stage timings they come
from): only their ratios matter for the bar, and the ETA rescales them by the
speed observed so far.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Seconds per unit of work, measured at 20 000 and 200 000 × 128 (see the module docstring).
LOAD_S_PER_VALUE = 5e-8  # per float read (n·d)
GEOMETRY_S_PER_VALUE = 3e-7  # spectrum, sampled pairs, isotropy (n·d)
EXACT_PAIRS_S = 1e-10  # all-pairs statistics up to the exact limit (n²·d)
EXACT_PAIR_LIMIT = 20_000
GRAPH_S = 7e-9  # k-NN graph (n^1.5·d)
SCORES_S_PER_SAMPLE = 1e-5  # kNN label accuracy and its permutation baseline
MCL_S = 2e-5  # per sample, neighbour and inflation
UMAP_S = 1e-7  # per sample, neighbour and epoch
UMAP_EPOCHS = 200
PCA_S_PER_VALUE = 2e-8

#: Step keys (progress reports carry them in ``Progress.step``).
LOAD, GEOMETRY, GRAPH, SCORES, CLUSTERS, PCA, UMAP = "load", "geometry", "graph", "scores", "clusters", "pca", "umap"
#: The steps ``analyze_job`` plans (the rest are the window's maps).
ANALYSIS_KEYS = frozenset({LOAD, GEOMETRY, GRAPH, SCORES, CLUSTERS})


@dataclass(frozen=True)
class Step:
    """One planned step: ``key`` (stable), ``title`` (for the status bar) and ``weight`` (estimated seconds)."""

    key: str
    title: str
    weight: float


def analysis_steps(
    n: int,
    dim: int,
    *,
    graph: bool,
    labels: bool | None,
    clusters: bool,
    knn: int | None,
    n_inflations: int,
    load_seconds: float = 0.0,
) -> tuple[Step, ...]:
    """The steps ``analyze_job`` runs on ``n`` × ``dim`` samples with these settings, in order.

    ``labels=None``: not known yet (the data is not read), so the scores are "graph scores".
    """
    steps = [
        Step(LOAD, "loading", max(load_seconds, LOAD_S_PER_VALUE * n * dim)),
        Step(
            GEOMETRY, "geometry", GEOMETRY_S_PER_VALUE * n * dim + EXACT_PAIRS_S * min(n, EXACT_PAIR_LIMIT) ** 2 * dim
        ),
    ]
    if graph:
        steps.append(Step(GRAPH, "k-NN graph", GRAPH_S * n**1.5 * dim))
        scores = {True: "label scores", False: "graph metrics", None: "graph scores"}[labels]
        steps.append(Step(SCORES, scores, SCORES_S_PER_SAMPLE * n))
        if clusters:
            steps.append(Step(CLUSTERS, "MCL clusters", MCL_S * n * _neighbours(knn, n) * max(n_inflations, 1)))
    return tuple(steps)


def expected_steps(*, graph: bool, clusters: bool) -> tuple[Step, ...]:
    """The analysis' steps as known before its data is read (weight 0: no cost known yet).

    What the window can list under a long extraction ("Then: geometry, k-NN
    graph, …"); the analysis' own :class:`~embscope.tasks.progress.Plan` later
    replaces them with their titles and weights (whether the scores are label
    scores depends on the data).
    """
    return analysis_steps(0, 0, graph=graph, labels=None, clusters=clusters, knn=None, n_inflations=0)


def _neighbours(knn: int | None, n: int) -> int:
    """``--knn`` as the graph resolves it: ``None`` (automatic) is min(DEFAULT_KNN, n − 1)."""
    from embscope.options import DEFAULT_KNN

    return knn if knn is not None else max(1, min(DEFAULT_KNN, n - 1))


def map_steps(n: int, dim: int, *, knn: int | None, umap: bool) -> tuple[Step, ...]:
    """The window's map steps: the PCA map, then (with a graph) UMAP."""
    steps = [Step(PCA, "PCA map", PCA_S_PER_VALUE * n * dim)]
    if umap:
        steps.append(Step(UMAP, "UMAP map", UMAP_S * n * min(_neighbours(knn, n), 15) * UMAP_EPOCHS))
    return tuple(steps)


class OverallProgress:
    """One fraction and an ETA over weighted steps that may run one after another or side by side.

    ``update(key, fraction)`` records a step's own progress (``None``: begun,
    amount unknown); ``finish(key)`` marks it done.  The overall fraction is
    the weighted mean; the ETA is the remaining weight times the seconds per
    unit of weight observed so far (the model's own seconds until there is
    enough to observe).
    """

    def __init__(self, steps: Iterable[Step] = (), clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self.steps: dict[str, Step] = {}
        self.done: dict[str, float] = {}
        self.current = ""
        self.add(steps)

    def add(self, steps: Iterable[Step]) -> None:
        """Plan more steps (an already planned key keeps its progress and takes the new weight)."""
        for step in steps:
            self.steps[step.key] = step
            self.done.setdefault(step.key, 0.0)

    def replan(self, steps: Iterable[Step]) -> None:
        """The analysis' own plan: its steps take over, and an expected analysis step it does not
        list (no graph below 3 samples) is dropped; the window's map steps stay."""
        steps = tuple(steps)
        planned = {step.key for step in steps}
        for key in [k for k in self.steps if k in ANALYSIS_KEYS and k not in planned]:
            self.drop(key)
        self.add(steps)

    def knows(self, key: str) -> bool:
        return key in self.steps

    def update(self, key: str, fraction: float | None) -> None:
        if key not in self.steps:
            return
        self.current = key
        if fraction is not None and math.isfinite(fraction):
            # Never backwards: a sub-job restarting its own count must not shrink the bar.
            self.done[key] = max(self.done[key], min(max(float(fraction), 0.0), 1.0))

    def finish(self, key: str) -> None:
        if key in self.steps:
            self.done[key] = 1.0

    def drop(self, key: str) -> None:
        """Forget a step that will not run (e.g. the UMAP map of a cancelled analysis)."""
        self.steps.pop(key, None)
        self.done.pop(key, None)

    @property
    def total(self) -> float:
        return sum(step.weight for step in self.steps.values())

    @property
    def completed(self) -> float:
        return sum(self.steps[key].weight * self.done[key] for key in self.steps)

    @property
    def fraction(self) -> float:
        total = self.total
        return min(self.completed / total, 1.0) if total > 0 else 0.0

    @property
    def finished(self) -> bool:
        return all(value >= 1.0 for value in self.done.values())

    def title(self, key: str | None = None) -> str:
        step = self.steps.get(self.current if key is None else key)
        return step.title if step is not None else ""

    def eta(self) -> float:
        """Estimated seconds left."""
        remaining = max(self.total - self.completed, 0.0)
        elapsed = self.clock() - self.started
        completed = self.completed
        if completed <= 0 or elapsed < 1.0:
            return remaining
        return remaining * elapsed / completed


class RateEta:
    """Seconds left in one long step at the rate it has kept since its first report.

    For work that runs before an analysis knows its plan (extraction: its cost
    depends on the model, the texts and the device, and the plan on the
    number of samples it yields), so the window's overall bar has no ETA yet.
    NaN until ``warmup_s`` have passed with some progress.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, warmup_s: float = 2.0) -> None:
        self.clock = clock
        self.warmup_s = warmup_s
        self._start: tuple[float, float] | None = None  # (time, fraction) of the first report

    def left(self, fraction: float) -> float:
        now = self.clock()
        if self._start is None:
            self._start = (now, fraction)
            return math.nan
        elapsed, gained = now - self._start[0], fraction - self._start[1]
        if elapsed < self.warmup_s or gained <= 0:
            return math.nan
        return max(1.0 - fraction, 0.0) * elapsed / gained


def samples_message(done: int, total: int, device: str, eta: RateEta | None = None) -> str:
    """``5,248 of 20,000 samples on cpu, about 2 min left`` (no time left until the rate is known)."""
    text = f"{done:,} of {total:,} samples on {device}"
    left = format_eta(eta.left(done / max(total, 1))) if eta is not None else ""
    return f"{text}, {left}" if left else text


def format_eta(seconds: float) -> str:
    """``about 3 min left`` / ``about 40 s left`` / ``a few seconds left``."""
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 90:
        return f"about {int(round(seconds / 10.0)) * 10} s left"
    if seconds < 90 * 60:
        return f"about {int(round(seconds / 60.0))} min left"
    return f"about {seconds / 3600.0:.1f} h left"


@dataclass
class LoggedStage:
    """One stage a job went through: its title, latest detail and when it began and ended."""

    title: str
    message: str
    started: float
    ended: float | None = None


@dataclass(frozen=True)
class StageLine:
    """A stage as a window lists it: done or running, its text and its seconds so far."""

    done: bool
    text: str
    seconds: float


class StageLog:
    """The stages a running job has reported, in order, each with its latest detail and its duration.

    For the window to list while a source has nothing to show yet (a long
    extraction before the first result): what has been done and how long it
    took, what runs now, and which planned steps follow.  A stage is the
    report's ``stage`` text; it ends when another one begins.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stages: list[LoggedStage] = []

    def record(self, stage: str, message: str = "") -> None:
        if not stage:
            return
        last = self.stages[-1] if self.stages else None
        if last is not None and last.title == stage:
            last.message = message or last.message
            return
        now = self.clock()
        if last is not None:
            last.ended = now
        self.stages.append(LoggedStage(stage, message, now))

    def lines(self) -> list[StageLine]:
        """Every stage so far with its last detail; a finished one without its time left
        ("6,000 of 6,000 samples on cpu, a few seconds left" was about a moment that has passed)."""
        now = self.clock()
        out = []
        for stage in self.stages:
            running = stage.ended is None
            message = stage.message if running else _ETA_CLAUSE.sub("", stage.message)
            text = f"{stage.title} — {message}" if message else stage.title
            out.append(StageLine(not running, text, (now if running else stage.ended) - stage.started))
        return out


#: The time-left clause :func:`format_eta` ends a detail with (see :func:`samples_message`).
_ETA_CLAUSE = re.compile(r",? ?(about [^,]+|a few seconds) left$")


def upcoming_titles(overall: OverallProgress | None) -> list[str]:
    """Titles of the planned steps not begun yet, in plan order (none before the plan is known)."""
    if overall is None:
        return []
    return [
        step.title
        for key, step in overall.steps.items()
        if overall.done.get(key, 0.0) <= 0.0 and key != overall.current and key != LOAD
    ]
