"""Small widgets shared by the panels."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QButtonGroup, QFileDialog, QHBoxLayout, QPushButton, QWidget


def export_panel_pngs(panel, folder: str | Path) -> list[Path]:
    """Write each plot of ``panel`` (its ``plot_items()``) as ``<name>.png`` into ``folder``."""
    from embscope.gui.render.plots import export_plot

    return [export_plot(item, Path(folder) / f"{name}.png") for name, item in panel.plot_items().items()]


def export_row(panel, *extra: QWidget) -> QHBoxLayout:
    """A row with ``extra`` widgets on the left and an "Export PNG…" button on the right."""
    row = QHBoxLayout()
    for widget in extra:
        row.addWidget(widget)
    row.addStretch(1)
    button = QPushButton("Export PNG…")
    button.setToolTip("Save this panel's plots as PNG files")

    def ask() -> None:
        folder = QFileDialog.getExistingDirectory(panel, "Export plots to folder")
        if folder:
            export_panel_pngs(panel, folder)

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
