"""The window's fit on the screen and its theme: default size, View ▸ Theme.

Kept apart from the main window so the window only adds the menu and calls
:func:`fit_to_screen` once; the palette and plot colours themselves live in
:mod:`embscope.gui.render.theme`.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication

from embscope.gui.render.theme import THEMES, apply_theme

#: The preferred window size; smaller screens get a share of what they offer.
PREFERRED_SIZE = QSize(1400, 900)
#: Share of the available screen a default-sized window takes at most.
SCREEN_SHARE = 0.92


def default_size(available: QRect) -> QSize:
    """The preferred size, shrunk to :data:`SCREEN_SHARE` of ``available`` (logical pixels) where needed."""
    return QSize(
        min(PREFERRED_SIZE.width(), int(available.width() * SCREEN_SHARE)),
        min(PREFERRED_SIZE.height(), int(available.height() * SCREEN_SHARE)),
    )


def fit_to_screen(window, restored: bool = False) -> None:
    """Size ``window`` for its screen: the default size, or a restored geometry kept inside the screen.

    A geometry saved on a bigger screen or at another scale factor (150 %
    halves what 1 680 pixels hold) could leave the window larger than the
    screen or off it; it is shrunk and moved back.  ``restored``: the window
    already has a saved geometry.
    """
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    available = screen.availableGeometry()
    if not restored:
        window.resize(default_size(available))
        frame = window.frameGeometry()
        frame.moveCenter(available.center())
        window.move(frame.topLeft())
        return
    width = min(window.width(), available.width())
    height = min(window.height(), available.height())
    if (width, height) != (window.width(), window.height()):
        window.resize(width, height)
    frame = window.frameGeometry()
    x = min(max(frame.left(), available.left()), available.right() - frame.width() + 1)
    y = min(max(frame.top(), available.top()), available.bottom() - frame.height() + 1)
    if (x, y) != (frame.left(), frame.top()):
        window.move(max(x, available.left()), max(y, available.top()))


def scrolling(widget):
    """``widget`` in a vertical scroll area: a tall form scrolls on a short screen instead of raising the window's
    minimum height (the sources form is taller than what 1 050 pixels at 150 % leave)."""
    from PySide6.QtWidgets import QFrame, QScrollArea

    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width())
    return area


def add_theme_menu(window, menu) -> QActionGroup:
    """View ▸ Theme ▸ System / Light / Dark: applied at once and remembered in ``window.settings.theme``."""
    submenu = menu.addMenu("&Theme")
    group = QActionGroup(window)
    group.setExclusive(True)
    for mode in THEMES:
        action = QAction(mode.capitalize(), window, checkable=True)
        action.setData(mode)
        action.setChecked(mode == window.settings.theme)
        group.addAction(action)
        submenu.addAction(action)
    group.triggered.connect(lambda action: set_theme(window, action.data()))
    window.theme_actions = group
    return group


def set_theme(window, mode: str) -> None:
    """Apply ``mode`` to the whole application and remember it."""
    window.settings.theme = mode
    for action in getattr(window, "theme_actions", QActionGroup(window)).actions():
        action.setChecked(action.data() == mode)
    apply_theme(mode)


def follow_system_scheme(window) -> None:
    """In "system" mode, re-style the plots when the desktop switches between light and dark."""
    hints = QGuiApplication.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(
            lambda _scheme: apply_theme("system") if window.settings.theme == "system" else None
        )
