"""The one-page report PNG: verdict, evidence, graded table and the main plots on one image."""

from __future__ import annotations

from pathlib import Path

from embscope.formatting import format_number
from embscope.gui.render.plots import GRADE_COLOURS
from embscope.storage import atomic_path

PAGE_WIDTH = 1800
MARGIN = 40


def verdict_colour(verdict) -> str:
    return GRADE_COLOURS["GOOD"] if verdict.healthy else GRADE_COLOURS["POOR"]


def format_value(value) -> str:
    """Compact number formatting shared by the table widgets and the report page."""
    return format_number(value, missing="–", thousands=True)


def ordered_grades(grades: dict) -> list:
    """Grades in the report's order (seed 002's table), any others after."""
    from embscope.tasks.report import METRIC_LABELS

    order = {name: i for i, name in enumerate(METRIC_LABELS)}
    return sorted(grades.items(), key=lambda item: order.get(item[0], len(order)))


def render_report_png(result, path: str | Path, plot_pngs: list[Path]) -> Path:
    """Draw the report page for ``result`` and write it to ``path`` atomically.

    ``plot_pngs`` are the plot images to tile two per row, in order (the panels'
    ``report_plots``, see :func:`embscope.gui.export.render_pngs`); each keeps
    its aspect ratio inside its tile.
    """
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter

    tiles = [QImage(str(png)) for png in plot_pngs]
    tile_w = (PAGE_WIDTH - 3 * MARGIN) // 2
    tile_h = int(tile_w * 2 / 3)
    from embscope.tasks.report import METRIC_LABELS

    grades = ordered_grades(result.grades)
    evidence = list(result.verdict.evidence)
    line_h = 30
    text_h = 180 + line_h * (len(evidence) + len(grades) + 3)
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
    font.setPixelSize(20)
    font.setBold(False)
    painter.setFont(font)
    painter.setPen(QColor("#555555"))
    painter.drawText(MARGIN, y + 20, f"{emb.n_samples:,} samples × {emb.dim} dims ({emb.kind})")
    y += 40
    font.setPixelSize(28)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor(verdict_colour(result.verdict)))
    painter.drawText(QRect(MARGIN, y, PAGE_WIDTH - 2 * MARGIN, 40), Qt.AlignmentFlag.AlignLeft, result.verdict.headline)
    y += 50
    font.setPixelSize(20)
    font.setBold(False)
    painter.setFont(font)
    painter.setPen(QColor("#222222"))
    for line in evidence:
        painter.drawText(
            QRect(MARGIN + 20, y, PAGE_WIDTH - 2 * MARGIN - 20, line_h),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            f"• {line}",
        )
        y += line_h
    y += line_h
    columns = (MARGIN, MARGIN + 520, MARGIN + 760, MARGIN + 1060)
    font.setBold(True)
    painter.setFont(font)
    for x, title in zip(columns, ("Metric", "Value", "Target", "Grade"), strict=False):
        painter.drawText(x, y + 22, title)
    y += line_h
    font.setBold(False)
    painter.setFont(font)
    for name, grade in grades:
        painter.setPen(QColor("#222222"))
        painter.drawText(columns[0], y + 22, METRIC_LABELS.get(name, name))
        painter.drawText(columns[1], y + 22, format_value(grade.value))
        painter.drawText(columns[2], y + 22, str(grade.target))
        painter.fillRect(columns[3] - 6, y + 3, 90, line_h - 6, QColor(GRADE_COLOURS.get(grade.grade, "#777777")))
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
