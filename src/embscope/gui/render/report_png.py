"""The one-page report PNG: verdict, evidence, graded table and the main plots on one image."""

from __future__ import annotations

from pathlib import Path

from embscope.formatting import format_number
from embscope.gui.render.plots import GRADE_COLOURS
from embscope.storage import atomic_path

PAGE_WIDTH = 1800
MARGIN = 40


def verdict_colour(verdict) -> str:
    if verdict.label == "too_few_samples":  # not a failure, not a pass
        return GRADE_COLOURS["OK"]
    return GRADE_COLOURS["GOOD"] if verdict.healthy else GRADE_COLOURS["POOR"]


def format_value(value) -> str:
    """Compact number formatting shared by the table widgets and the report page."""
    return format_number(value, missing="–", thousands=True)


def ordered_grades(grades: dict) -> list:
    """Grades in the report's order (seed 002's table), any others after."""
    from embscope.tasks.report import METRIC_LABELS

    order = {name: i for i, name in enumerate(METRIC_LABELS)}
    return sorted(grades.items(), key=lambda item: order.get(item[0], len(order)))


GRADE_BOX = 90  # width of the coloured grade cell
COLUMN_GAP = 28


def wrapped_height(metrics, text: str, width: int) -> int:
    """Pixel height of ``text`` word-wrapped to ``width`` in the font of the QFontMetrics ``metrics``."""
    from PySide6.QtCore import QRect, Qt

    return metrics.boundingRect(QRect(0, 0, width, 1 << 20), Qt.TextFlag.TextWordWrap, text).height()


def table_columns(rows, metrics, bold_metrics, left: int = MARGIN) -> tuple[int, int, int, int]:
    """x of the Metric, Value, Target and Grade columns, each as wide as its longest cell.

    ``rows`` are (metric, value, target) texts; fixed offsets let "kNN label accuracy, lift over
    chance (chance-corrected)" run into its value and long targets into the grade cell.
    """
    xs = [left]
    for i, title in enumerate(("Metric", "Value", "Target")):
        widest = max([bold_metrics.horizontalAdvance(title)] + [metrics.horizontalAdvance(row[i]) for row in rows])
        xs.append(xs[-1] + widest + COLUMN_GAP)
    return tuple(xs)


def render_report_png(result, path: str | Path, plot_pngs: list[Path]) -> Path:
    """Draw the report page for ``result`` and write it to ``path`` atomically.

    ``plot_pngs`` are the plot images to tile two per row, in order (the panels'
    ``report_plots``, see :func:`embscope.gui.export.render_pngs`); each keeps
    its aspect ratio inside its tile.  Evidence lines wrap at the page's
    margin and the table's columns are as wide as their contents, so nothing
    is cut off or drawn over.
    """
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter

    from embscope.tasks.report import METRIC_LABELS

    tiles = [QImage(str(png)) for png in plot_pngs]
    tile_w = (PAGE_WIDTH - 3 * MARGIN) // 2
    tile_h = int(tile_w * 2 / 3)
    body, bold = QFont(), QFont()
    body.setPixelSize(20)
    bold.setPixelSize(20)
    bold.setBold(True)
    body_metrics, bold_metrics = QFontMetrics(body), QFontMetrics(bold)
    evidence = [f"• {line}" for line in result.verdict.evidence]
    text_w = PAGE_WIDTH - 2 * MARGIN - 20
    evidence_h = [wrapped_height(body_metrics, line, text_w) + 6 for line in evidence]
    rows = [
        (METRIC_LABELS.get(name, name), format_value(grade.value), str(grade.target), grade)
        for name, grade in ordered_grades(result.grades)
    ]
    columns = table_columns(rows, body_metrics, bold_metrics)
    line_h = 30
    text_h = MARGIN + 140 + sum(evidence_h) + line_h * (len(rows) + 2) + MARGIN
    height = text_h + ((len(tiles) + 1) // 2) * (tile_h + MARGIN) + MARGIN
    image = QImage(PAGE_WIDTH, height, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    y = MARGIN
    font = QFont()
    font.setPixelSize(34)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    emb = result.embeddings
    painter.drawText(MARGIN, y + 34, f"EmbScope report — {Path(str(emb.source)).name or 'embeddings'}")
    y += 50
    painter.setFont(body)
    painter.setPen(QColor("#555555"))
    painter.drawText(MARGIN, y + 20, emb.shape_text)
    y += 40
    font.setPixelSize(28)
    painter.setFont(font)
    painter.setPen(QColor(verdict_colour(result.verdict)))
    painter.drawText(QRect(MARGIN, y, PAGE_WIDTH - 2 * MARGIN, 40), Qt.AlignmentFlag.AlignLeft, result.verdict.headline)
    y += 50
    painter.setFont(body)
    painter.setPen(QColor("#222222"))
    for line, line_height in zip(evidence, evidence_h, strict=True):
        painter.drawText(
            QRect(MARGIN + 20, y, text_w, line_height), Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap, line
        )
        y += line_height
    y += line_h
    painter.setFont(bold)
    for x, title in zip(columns, ("Metric", "Value", "Target", "Grade"), strict=False):
        painter.drawText(x, y + 22, title)
    y += line_h
    painter.setFont(body)
    for label, value, target, grade in rows:
        painter.setPen(QColor("#222222"))
        painter.drawText(columns[0], y + 22, label)
        painter.drawText(columns[1], y + 22, value)
        painter.drawText(columns[2], y + 22, target)
        painter.fillRect(
            columns[3] - 6, y + 3, GRADE_BOX, line_h - 6, QColor(GRADE_COLOURS.get(grade.grade, "#777777"))
        )
        painter.setPen(QColor("white"))
        painter.drawText(columns[3], y + 22, grade.grade)
        y += line_h
    y = text_h
    for i, tile in enumerate(tiles):
        x = MARGIN + (i % 2) * (tile_w + MARGIN)
        row_y = y + (i // 2) * (tile_h + MARGIN)
        painter.drawImage(fit_rect(tile.width(), tile.height(), QRect(x, row_y, tile_w, tile_h)), tile)
    painter.end()
    path = Path(path)
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise OSError(f"could not write {path}")
    return path


def fit_rect(width: int, height: int, box):
    """The largest rectangle of ``width``:``height`` centred in the QRect ``box`` (no stretched plots)."""
    from PySide6.QtCore import QRect

    if width <= 0 or height <= 0:
        return box
    scale = min(box.width() / width, box.height() / height)
    w, h = int(width * scale), int(height * scale)
    return QRect(box.x() + (box.width() - w) // 2, box.y() + (box.height() - h) // 2, w, h)
