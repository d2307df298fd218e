"""Long jobs as generators that yield progress, plus caches.

Imported by the CLI and by the GUI's workers; never imports Qt.
"""
