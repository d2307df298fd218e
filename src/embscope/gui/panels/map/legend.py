"""The map's legend: every category, scrollable, click hides/shows, double-click isolates.

It lives in the side panel (a list widget), so it can neither cover the points
nor be dragged out of view.  Names are plain text (``QListWidgetItem.setText``
never reads HTML): labels like ``<unk>`` or ``a<b`` show as written.
"""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QApplication, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget


def _swatch(colour: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


class LegendList(QWidget):
    """Legend entries (colour, name, count); emits which colour codes are shown.

    Signals
    -------
    shown_changed(object)
        Boolean array, one per colour code: True = drawn.  Emitted on every click.
    """

    shown_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Legend")
        self.title.setWordWrap(True)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setToolTip("Click a category to hide or show it; double-click to show it alone")
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.list, stretch=1)
        layout.addWidget(self.show_all_button)
        self.shown = np.ones(0, dtype=bool)
        self.interactive = False
        self._last_double = 0.0
        self.list.itemClicked.connect(self._on_view_item_clicked)
        self.list.itemDoubleClicked.connect(self._on_view_item_double_clicked)
        self.show_all_button.clicked.connect(self.show_all)

    # ------------------------------------------------------------------ public

    def set_entries(self, names: list[str], colours: list[str], counts, *, interactive: bool, title: str = "") -> None:
        """Replace the entries; every category starts shown.  ``interactive=False`` for a colour ramp."""
        self.list.clear()
        self.interactive = interactive
        self.shown = np.ones(len(colours), dtype=bool)
        self.title.setText(title or "Legend")
        for code, (name, colour) in enumerate(zip(names, colours, strict=False)):
            count = int(counts[code]) if counts is not None and code < len(counts) else None
            text = str(name) if count is None else f"{name}  ({count:,})"
            item = QListWidgetItem(_swatch(colour), text)
            item.setData(Qt.ItemDataRole.UserRole, code)
            item.setToolTip(text)
            self.list.addItem(item)
        self._refresh()

    def entry_texts(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def toggle(self, code: int) -> None:
        """Hide a shown category or show a hidden one."""
        if 0 <= code < len(self.shown) and self.interactive:
            self.shown[code] = not self.shown[code]
            self._changed()

    def isolate(self, code: int) -> None:
        """Show only ``code``; isolating the only shown category shows all again."""
        if not (0 <= code < len(self.shown)) or not self.interactive:
            return
        if self.shown[code] and self.shown.sum() == 1:
            self.shown[:] = True
        else:
            self.shown[:] = False
            self.shown[code] = True
        self._changed()

    def show_all(self) -> None:
        if len(self.shown) and not self.shown.all():
            self.shown[:] = True
            self._changed()

    # ------------------------------------------------------------------ view side

    def _on_view_item_clicked(self, item: QListWidgetItem) -> None:
        # The second click of a double-click arrives as a click too: the double-click decides.
        if time.monotonic() - self._last_double < QApplication.doubleClickInterval() / 1000:
            return
        self.toggle(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_view_item_double_clicked(self, item: QListWidgetItem) -> None:
        self._last_double = time.monotonic()
        code = int(item.data(Qt.ItemDataRole.UserRole))
        # Its first click toggled it: isolate from the state before that click.
        self.shown[code] = not self.shown[code]
        self.isolate(code)

    def _changed(self) -> None:
        self._refresh()
        self.shown_changed.emit(self.shown.copy())

    def _refresh(self) -> None:
        grey = self.palette().color(self.palette().ColorRole.PlaceholderText)
        normal = self.palette().color(self.palette().ColorRole.Text)
        for i in range(self.list.count()):
            item = self.list.item(i)
            code = int(item.data(Qt.ItemDataRole.UserRole))
            visible = bool(self.shown[code]) if code < len(self.shown) else True
            item.setForeground(normal if visible else grey)
            font = item.font()
            font.setStrikeOut(not visible)
            item.setFont(font)
        hidden = int((~self.shown).sum())
        self.show_all_button.setEnabled(hidden > 0)
        self.show_all_button.setText(f"Show all ({hidden} hidden)" if hidden else "Show all")
