"""Guard against Qt bindings that miscount Python references in painting calls.

PySide6-Essentials 6.12.0 on Python 3.11 drops one reference to ``None`` on
every call of a void ``QPainter`` method (``scale``, ``translate``, …).
pyqtgraph makes such calls on every paint, so after some thousands of paints
the interpreter aborts with "Fatal Python error: none_dealloc" — the app died
after ~30 s of hovering the map.  On Python ≥ 3.12 ``None`` is immortal and
the bug is harmless.  :func:`painter_reference_drift` measures the drift over
the painting calls the app uses; the app refuses to start on a binding that
drifts, with one line naming the fix, instead of crashing later and losing work.
"""

from __future__ import annotations

import functools
import gc
import sys

#: Calls per method; a binding that miscounts shows a drift of this size.
PROBE_CALLS = 64


def painter_reference_drift(calls: int = PROBE_CALLS) -> dict[str, int]:
    """Reference-count drift of ``None`` and of the arguments per ``QPainter`` method.

    Each method used (directly or through pyqtgraph) on every paint is called
    ``calls`` times on a small image; the result maps ``method`` to the change
    in ``sys.getrefcount`` of ``None`` plus that of the arguments passed.  A
    correct binding gives 0 for every method.  Needs a ``QGuiApplication``.
    """
    from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
    from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QTransform

    image = QImage(16, 16, QImage.Format.Format_ARGB32_Premultiplied)
    pen, brush, transform = QPen(QColor(10, 20, 30)), QBrush(QColor(200, 0, 0)), QTransform()
    line, rect, point = QLineF(0, 0, 5, 5), QRectF(1, 1, 4, 4), QPointF(2, 2)
    path = QPainterPath()
    path.addEllipse(rect)
    probes = {
        "scale": (1.0, 1.0),
        "translate": (0.0, 0.0),
        "rotate": (0.0,),
        "save": (),
        "restore": (),
        "setPen": (pen,),
        "setBrush": (brush,),
        "setTransform": (transform,),
        "setWorldTransform": (transform,),
        "resetTransform": (),
        "setRenderHint": (QPainter.RenderHint.Antialiasing, True),
        "setOpacity": (1.0,),
        "setClipRect": (rect,),
        "drawLine": (line,),
        "drawRect": (rect,),
        "drawEllipse": (rect,),
        "drawPath": (path,),
        "drawPoint": (point,),
        "fillRect": (rect, brush),
        "drawImage": (point, image.copy(0, 0, 2, 2)),
        "drawText": (point, "x"),
    }
    painter = QPainter(image)
    drift: dict[str, int] = {}
    # No collection in between: freeing garbage that held one of the watched
    # objects would read as a drift.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name, args in probes.items():
            method = getattr(painter, name)
            if name == "restore":
                for _ in range(calls):
                    painter.save()
            method(*args)  # first call: the binding may keep one reference (e.g. to the last pen)
            if name == "save":
                painter.restore()
            elif name == "restore":
                painter.save()
            watched = (None, *(a for a in args if not isinstance(a, (int, float, str, Qt.GlobalColor))))
            before = [sys.getrefcount(obj) for obj in watched]
            for _ in range(calls):
                method(*args)
            after = [sys.getrefcount(obj) for obj in watched]
            if name == "save":
                for _ in range(calls):
                    painter.restore()
            drift[name] = sum(a - b for a, b in zip(after, before, strict=True))
    finally:
        painter.end()
        if collecting:
            gc.enable()
    return drift


def binding_problem() -> str | None:
    """One line describing a reference-counting defect of the Qt binding, or None when it is sound.

    A method counts only when it drifts in two probes: a binding's miscount
    repeats with every call, while a one-off change of a count (seen once in
    CI: ``setRenderHint`` -1 in 64 calls, on a binding that probes clean
    hundreds of times in a row) does not, and must not stop the app.
    """
    drift = {name: d for name, d in painter_reference_drift().items() if d != 0}
    if drift:
        again = {name for name, d in painter_reference_drift().items() if d != 0}
        drift = {name: d for name, d in drift.items() if name in again}
    if not drift:
        return None
    import PySide6

    worst = ", ".join(f"QPainter.{name} {d:+d}" for name, d in list(drift.items())[:3])
    return (
        f"PySide6 {PySide6.__version__} on Python {sys.version_info.major}.{sys.version_info.minor} "
        f"miscounts references in painting calls ({worst} per {PROBE_CALLS} calls) and would crash the app; "
        "install a sound binding: pip install 'PySide6-Essentials>=6.6,<6.12'"
    )


@functools.cache
def _checked_problem() -> str | None:
    return binding_problem()


def require_sound_binding() -> None:
    """Raise :class:`~embscope.errors.BadInputError` when the binding would crash while painting.

    Probed once per process (about a millisecond), right after the
    QApplication exists and before anything is painted.
    """
    from embscope.errors import BadInputError

    problem = _checked_problem()
    if problem is not None:
        raise BadInputError(problem)
