"""Light and dark: the application palette, the plots' colours, and text colours that stay readable in both.

The app follows the system palette ("system") or forces one ("light",
"dark"; View ▸ Theme, remembered in the settings).  Widgets follow the
QApplication palette by themselves; pyqtgraph does not: its background and
foreground are global config options read when an item is made, so a theme
change re-styles every live plot (:func:`restyle_plots`), and a PNG export is
always drawn light (:func:`light_scene`), whatever the window shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class PlotColours:
    """A plot's background and foreground (axes, ticks, titles, legend text)."""

    background: str
    foreground: str


LIGHT_PLOTS = PlotColours("#ffffff", "#000000")
DARK_PLOTS = PlotColours("#1e1e1e", "#dcdcdc")

#: Dark palette (the usual Fusion dark): role name → colour; disabled text greyed.
DARK_COLOURS = {
    "Window": "#353535",
    "WindowText": "#e0e0e0",
    "Base": "#252525",
    "AlternateBase": "#2f2f2f",
    "ToolTipBase": "#353535",
    "ToolTipText": "#e0e0e0",
    "PlaceholderText": "#9a9a9a",
    "Text": "#e0e0e0",
    "Button": "#353535",
    "ButtonText": "#e0e0e0",
    "BrightText": "#ff5252",
    "Light": "#505050",
    "Midlight": "#404040",
    "Mid": "#5a5a5a",
    "Dark": "#232323",
    "Shadow": "#141414",
    "Highlight": "#2a82da",
    "HighlightedText": "#ffffff",
    "Link": "#6cb4ff",
    "LinkVisited": "#c58aff",
}
DISABLED_DARK = "#7f7f7f"

_system_palette = None  # the palette the platform gave before any theme was applied
_forced = False  # a light or dark palette was set over the platform's


def dark_palette():
    """The dark QPalette."""
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    for role, colour in DARK_COLOURS.items():
        palette.setColor(getattr(QPalette.ColorRole, role), QColor(colour))
    for role in ("WindowText", "Text", "ButtonText"):
        palette.setColor(QPalette.ColorGroup.Disabled, getattr(QPalette.ColorRole, role), QColor(DISABLED_DARK))
    return palette


def apply_theme(mode: str) -> None:
    """Set the application palette for ``mode`` (one of :data:`THEMES`) and re-style every plot."""
    from PySide6.QtWidgets import QApplication

    global _system_palette, _forced
    if mode not in THEMES:
        raise ValueError(f"unknown theme {mode!r}")
    app = QApplication.instance()
    if not _forced:
        _system_palette = app.palette()  # what the platform gives now (it follows the desktop's scheme)
    if mode == "dark":
        app.setPalette(dark_palette())
    elif mode == "light":
        app.setPalette(app.style().standardPalette())
    elif _forced:
        app.setPalette(_system_palette)
    _forced = mode != "system"
    restyle_plots()


def is_dark() -> bool:
    """Whether the application palette is dark (its window colour is)."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return False
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def plot_colours() -> PlotColours:
    """The plot colours of the current palette."""
    return DARK_PLOTS if is_dark() else LIGHT_PLOTS


def set_plot_config(colours: PlotColours) -> None:
    """pyqtgraph's defaults for items made from now on."""
    import pyqtgraph as pg

    pg.setConfigOptions(background=colours.background, foreground=colours.foreground)


def restyle_plots() -> None:
    """Give every live plot (and every plot made later) the current palette's colours."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    set_plot_config(plot_colours())
    for widget in QApplication.allWidgets():
        if isinstance(widget, pg.GraphicsView):
            widget.setBackground("default")
            restyle_scene(widget.scene())


def restyle_scene(scene) -> None:
    """Re-read pyqtgraph's foreground for the axes, titles and legend text of ``scene``.

    Only text that took the default colour changes: a label drawn in a
    colour of its own (a marker's name in the marker's colour) keeps it.  A
    legend drawn on a box takes the background's colour for it (keeping its
    translucency): its text takes the foreground, so a white box would hide
    light text on a dark palette.
    """
    import pyqtgraph as pg

    for item in scene.items():
        if isinstance(item, pg.AxisItem):
            item.setPen()
            item.setTextPen()
        elif isinstance(item, pg.LabelItem) and item.opts.get("color") is None and item.text:
            item.setText(item.text)
        elif isinstance(item, pg.LegendItem) and item.brush() is not None and item.brush().style():
            colour = pg.mkColor(pg.getConfigOption("background"))
            colour.setAlpha(item.brush().color().alpha())
            item.setBrush(colour)


@contextmanager
def light_scene(plot) -> Iterator[None]:
    """Draw ``plot``'s scene in light colours for the duration (PNG exports are light in any theme)."""
    import pyqtgraph as pg

    before = PlotColours(pg.getConfigOption("background"), pg.getConfigOption("foreground"))
    scene = plot.scene()
    set_plot_config(LIGHT_PLOTS)
    try:
        if scene is not None:
            restyle_scene(scene)
        yield
    finally:
        set_plot_config(before)
        if scene is not None:
            restyle_scene(scene)


def text_colour(colour: str) -> str:
    """``colour`` (a grade or verdict colour) as text on the current palette: lightened on dark.

    The grade colours are dark enough for white paper; on a dark window the
    same red or green has a contrast near 2:1, so it is mixed halfway to white.
    """
    if not is_dark():
        return colour
    from PySide6.QtGui import QColor

    c = QColor(colour)
    mix = 0.45
    return QColor(
        int(c.red() + (255 - c.red()) * mix),
        int(c.green() + (255 - c.green()) * mix),
        int(c.blue() + (255 - c.blue()) * mix),
    ).name()


def muted(label) -> None:
    """Show ``label``'s text in the palette's secondary grey (follows theme changes, unlike a style sheet)."""
    from PySide6.QtGui import QPalette

    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
