"""The Qt desktop application (PySide6 + pyqtgraph).

Layout (one way: window → panels → render; import-linter checks it):

- ``app``, ``main_window``, ``compare_wiring``, ``export``: the window (a view of the
  Qt-free :class:`embscope.tasks.session.Session`), the Compare/Series wiring, and
  the offscreen PNG export of the registered panels (``embscope analyze --png``).
- ``workers`` (jobs off the GUI thread), ``model`` (the shown result, map, clusters,
  selection), ``settings`` (persistent app settings), ``binding_check``.
- ``panels/``: one module per panel behind the :class:`embscope.gui.panels.Panel`
  protocol; ``panels/registry.py`` lists the per-source panels the window and the
  export iterate.
- ``render/``: plot drawing shared by the panels and the PNG files (no widgets).

Job factories live in :mod:`embscope.tasks.jobs`, not here.
"""
