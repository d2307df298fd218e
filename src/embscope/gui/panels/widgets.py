"""Small widgets shared by the panels."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QButtonGroup, QFileDialog, QLabel, QLayout, QPushButton, QToolTip, QWidget

#: Characters of a one-line status label that stay visible however narrow the window.
STATUS_MIN_CHARS = 12


class FlowLayout(QLayout):
    """Widgets left to right that wrap onto the next line when the row is too narrow (Qt's flow example).

    A toolbar row in a box layout makes its panel at least as wide as all its
    widgets side by side; wrapping keeps the window's minimum width at that of
    the widest single widget, so it fits a 900 px screen.
    """

    def __init__(self, parent: QWidget | None = None, spacing: int = 6) -> None:
        super().__init__(parent)
        self._items = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item) -> None:  # noqa: N802 - Qt override
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):  # noqa: N802 - Qt override
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):  # noqa: N802 - Qt override
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802 - Qt override
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802 - Qt override
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        """All items on one line."""
        width = sum(item.sizeHint().width() for item in self._items) + self.spacing() * max(len(self._items) - 1, 0)
        height = max((item.sizeHint().height() for item in self._items), default=0)
        margins = self.contentsMargins()
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:  # noqa: N802 - Qt override
        """As wide as the widest item (the rest wraps)."""
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _arrange(self, rect: QRect, move: bool) -> int:
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        x, y, line_height = area.x(), area.y(), 0
        for item in self._items:
            if item.isEmpty():
                continue
            hint = item.sizeHint()
            width = min(hint.width(), area.width()) if area.width() > 0 else hint.width()
            width = max(width, item.minimumSize().width())
            if x > area.x() and x + width > area.right() + 1:
                x, y, line_height = area.x(), y + line_height + self.spacing(), 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), QSize(width, hint.height())))
            x += width + self.spacing()
            line_height = max(line_height, hint.height())
        return y + line_height - rect.y() + margins.bottom()


class StatusLabel(QLabel):
    """A one-line message that is cut with "…" to the room it has, the whole line in its tooltip.

    A plain QLabel asks for the width of its whole text: one long failure
    ("step-000100.safetensors is a checkpoint: …") in a status bar or a
    button row made the window wider than the screen, for good.  ``text()``
    keeps the whole message; only the painting is cut.  Plain text only:
    messages hold file names, never HTML.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().minimumSizeHint()
        room = self.fontMetrics().averageCharWidth() * STATUS_MIN_CHARS
        margins = self.contentsMargins()
        return QSize(min(hint.width(), room + margins.left() + margins.right()), hint.height())

    def shown_text(self) -> str:
        """What is painted: the text, or as much of it as fits followed by "…"."""
        return self.fontMetrics().elidedText(
            " ".join(self.text().split()), Qt.TextElideMode.ElideRight, self.contentsRect().width()
        )

    def is_elided(self) -> bool:
        return self.shown_text() != " ".join(self.text().split())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self.is_elided():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        self.style().drawItemText(
            painter,
            self.contentsRect(),
            int(self.alignment()),
            self.palette(),
            self.isEnabled(),
            self.shown_text(),
            self.foregroundRole(),
        )

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip and not self.toolTip() and self.is_elided():
            QToolTip.showText(event.globalPos(), self.text(), self)
            return True
        return super().event(event)


def export_panel_pngs(panel, folder: str | Path) -> list[Path]:
    """Write each plot of ``panel`` (its ``plot_items()``) as ``<name>.png`` into ``folder``."""
    from embscope.gui.render.plots import export_plot

    return [export_plot(item, Path(folder) / f"{name}.png") for name, item in panel.plot_items().items()]


def export_panel_to(panel, folder: str | Path) -> list[Path]:
    """The Export PNG button's work: write ``panel``'s plots into ``folder`` and say how it went.

    What was written goes to the status bar (as File ▸ Export says it); a
    folder that cannot be written is one dialog line naming it, and the files
    already there stay as they were (each PNG is written atomically).
    """
    from embscope.errors import BadInputError
    from embscope.formatting import counted
    from embscope.gui.workers import write_failure

    try:
        written = export_panel_pngs(panel, folder)
    except (OSError, BadInputError) as exc:
        tell(panel, f"Export failed: {write_failure(folder, exc)}", error=True)
        return []
    # A panel of the shown source (it views the window's model) exported that source's plots.
    about = getattr(getattr(panel, "model", None), "source", None)
    tell(panel, f"Exported {counted(len(written), 'PNG file')} to {folder}", about=about)
    return written


def tell(widget: QWidget, message: str, error: bool = False, about=None) -> None:
    """``message`` in the window's status bar, and as a dialog when it is an ``error``.

    Through the main window's ``show_status``/``show_error`` when the widget
    sits in it, so a panel's message reads like every other; a panel on its own
    (tests, a detached view) gets a plain dialog for an error.  ``about``: the
    session source the message is about (the window drops the line when another is selected).
    """
    window = widget.window()
    if error:
        show_error = getattr(window, "show_error", None)
        if show_error is not None:
            show_error(message)
        else:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.warning(widget, "EmbScope", message)
    else:
        show_status = getattr(window, "show_status", None)
        if show_status is not None:
            show_status(message, about=about)


def export_row(panel, *extra: QWidget) -> FlowLayout:
    """A row of ``extra`` widgets then an "Export PNG…" button, wrapping onto more lines when narrow."""
    row = FlowLayout()
    for widget in extra:
        row.addWidget(widget)
    button = QPushButton("Export PNG…")
    button.setToolTip("Save this panel's plots as PNG files")

    def ask() -> None:
        if not panel.plot_items():  # say so before asking for a folder that would get nothing
            title = getattr(panel, "title", "this")
            tell(panel, f"Nothing to export: the {title} panel shows no plot for this source.", error=True)
            return
        folder = QFileDialog.getExistingDirectory(panel, "Export plots to folder")
        if folder:
            export_panel_to(panel, folder)

    button.clicked.connect(ask)
    panel.export_button = button
    row.addWidget(button)
    return row


def selection_mode_buttons(parent: QWidget) -> tuple[QButtonGroup, list[QPushButton]]:
    """Exclusive Pan / Box select / Lasso buttons (each carries its mode in the ``mode`` property)."""
    group = QButtonGroup(parent)
    buttons = []
    for mode, text in (("pan", "Pan"), ("box", "Box select"), ("lasso", "Lasso")):
        button = QPushButton(text)
        button.setCheckable(True)
        button.setProperty("mode", mode)
        button.setChecked(mode == "pan")
        group.addButton(button)
        buttons.append(button)
    return group, buttons
