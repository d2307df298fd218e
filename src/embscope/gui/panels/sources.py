"""Sources list and settings form: a view of the :class:`~embscope.tasks.session.Session`.

The list shows every session source with its state; the form below it is
generated from the settings model (:func:`embscope.options.form_fields`: every
load setting, then the analysis settings ``embscope analyze`` offers, e.g. the
MCL sweep switch), one row per field, so a new option appears here with no
change to this file.  The form edits a copy:
Analyze writes it into the session (``Session.update_settings``) and asks for
the analysis.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from embscope.errors import BadInputError
from embscope.options import (
    AnalysisSettings,
    FormField,
    LoadSettings,
    display_text,
    form_fields,
    get_value,
    parse_text,
    with_value,
)
from embscope.tasks.session import Aspect, Session, Source, SourceState

#: List marks per state (a finished source shows ✓ when healthy, else ⚠ and its verdict).
STATE_MARKS = {
    SourceState.NEW: "○",
    SourceState.NEEDS_DATA: "⚠",
    SourceState.QUEUED: "…",
    SourceState.RUNNING: "⟳",
    SourceState.FAILED: "✗",
    SourceState.CANCELLED: "⊘",
}
#: The form's field for the captured module gets a "Module tree" button next to it.
MODULE_FIELD = "module"
#: Form labels wrap beyond this width (pixels), so the sources column keeps its width.
LABEL_WIDTH = 100
#: Largest value an int spin box offers (Qt's spin boxes are 32-bit).
INT_MAX = 2**31 - 1


class FieldEditor:
    """The widget of one :class:`~embscope.options.FormField` and its text ↔ value conversion."""

    def __init__(self, spec: FormField, parent: QWidget) -> None:
        self.spec = spec
        self.name = spec.name.rsplit(".", 1)[-1]
        self.row = QHBoxLayout()
        self.widgets: list[QWidget] = []
        kind = spec.kind
        if kind == "bool":
            self.editor = QCheckBox(spec.label)
        elif kind == "choice":
            self.editor = QComboBox()
            if spec.optional:
                self.editor.addItem(spec.none_text, None)
            for choice in spec.choices:
                self.editor.addItem(choice, choice)
        elif kind == "int" and not spec.optional:
            self.editor = QSpinBox()
            self.editor.setRange(int(spec.minimum or 0), int(spec.maximum) if spec.maximum is not None else INT_MAX)
        elif kind == "text" and (spec.suggestions or self.name == MODULE_FIELD):
            self.editor = QComboBox()
            self.editor.setEditable(True)
            self.editor.addItems(list(spec.suggestions))
        else:  # path, text, optional numbers, floats: typed, then parsed by the settings model
            self.editor = QLineEdit()
            self.editor.setPlaceholderText(spec.none_text if spec.optional else "")
        self.editor.setToolTip(spec.help)
        self.row.addWidget(self.editor, stretch=1)
        self.widgets.append(self.editor)
        if kind == "path":
            button = QPushButton("…")
            button.setFixedWidth(30)
            button.clicked.connect(lambda: self._browse(parent))
            self.row.addWidget(button)
            self.widgets.append(button)

    @property
    def label(self) -> str:
        return "" if self.spec.kind == "bool" else self.spec.label

    def add_widget(self, widget: QWidget) -> None:
        self.row.addWidget(widget)
        self.widgets.append(widget)

    def set_enabled(self, enabled: bool) -> None:
        for widget in self.widgets:
            widget.setEnabled(enabled)

    def show_value(self, value) -> None:
        editor = self.editor
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QSpinBox):
            editor.setValue(int(value))
        elif isinstance(editor, QComboBox) and not editor.isEditable():
            editor.setCurrentIndex(max(editor.findData(value), 0))
        elif isinstance(editor, QComboBox):
            editor.setEditText(display_text(self.spec.name, value))
        else:
            editor.setText(display_text(self.spec.name, value))

    def text(self) -> str:
        editor = self.editor
        if isinstance(editor, QCheckBox):
            return "on" if editor.isChecked() else "off"
        if isinstance(editor, QSpinBox):
            return str(editor.value())
        if isinstance(editor, QComboBox) and not editor.isEditable():
            data = editor.currentData()
            return "" if data is None else str(data)
        if isinstance(editor, QComboBox):
            # A module-tree entry reads "  name  (Type, 1,234)"; the setting is the name.
            return editor.currentText().split("  (")[0].strip()
        return editor.text()

    def value(self):
        """The typed value, validated by the settings model (``BadInputError`` with one line)."""
        return parse_text(self.name, self.text())

    def mark_invalid(self, invalid: bool) -> None:
        self.editor.setStyleSheet("background: #f8d7da;" if invalid else "")

    def _browse(self, parent: QWidget) -> None:
        path, _ = QFileDialog.getOpenFileName(parent, self.spec.label, "", self.spec.file_filter)
        if path:
            self.editor.setText(path)


class SourcesPanel(QWidget):
    """The session's sources and the load settings of the selected one.

    Signals: ``analyze_requested(Source)`` after the form was written into the
    session, ``modules_requested(Source, LoadSettings)`` to read a checkpoint's
    module tree with the form's current settings.  Everything else goes through
    the session.
    """

    analyze_requested = Signal(object)
    modules_requested = Signal(object, object)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QListWidget()
        self.path_label = QLabel("")
        self.path_label.setWordWrap(True)
        self.form = QFormLayout()
        self.form.addRow("Source", self.path_label)
        self.editors: dict[str, FieldEditor] = {}
        for spec in shown_fields():
            editor = FieldEditor(spec, self)
            self.editors[editor.name] = editor
            label = QLabel(editor.label)
            # Long labels ("Data to run through the model") wrap instead of widening the sources column.
            label.setWordWrap(True)
            label.setFixedWidth(LABEL_WIDTH)
            self.form.addRow(label, editor.row)
        self.modules_button = QPushButton("Module tree")
        self.editors[MODULE_FIELD].add_widget(self.modules_button)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #c62828;")
        self.analyze_button = QPushButton("Analyze")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Sources</b>"))
        layout.addWidget(self.list, stretch=1)
        layout.addLayout(self.form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.analyze_button)
        self.list.currentRowChanged.connect(self._on_view_row_changed)
        self.analyze_button.clicked.connect(self._on_view_analyze_clicked)
        self.modules_button.clicked.connect(self._on_view_modules_clicked)
        session.events.added.connect(self._on_model_source_added)
        session.events.removed.connect(self._on_model_source_removed)
        session.events.changed.connect(self._on_model_source_changed)
        session.events.current_changed.connect(self._on_model_current_changed)
        self._show_form(None)

    # ------------------------------------------------------------------ public

    def settings_from_form(self, source: Source) -> LoadSettings:
        """``source``'s load settings with the form's values (raises ``BadInputError`` on a bad one)."""
        return self.analysis_settings_from_form(source).load

    def analysis_settings_from_form(self, source: Source) -> AnalysisSettings:
        """``source``'s settings (load and analysis) with the form's values (``BadInputError`` on a bad one)."""
        settings = source.settings
        bad: list[str] = []
        for editor in self.editors.values():
            if not editor.editor.isEnabled():
                continue
            try:
                settings = with_value(settings, editor.spec.name, editor.value())
                editor.mark_invalid(False)
            except BadInputError as exc:
                editor.mark_invalid(True)
                bad.append(str(exc))
        self.error_label.setText(bad[0] if bad else "")
        if bad:
            raise BadInputError(bad[0])
        return settings

    def commit_form(self) -> bool:
        """Write the form into the current source's settings; False (message shown) when a value is bad."""
        source = self.session.current
        if source is None:
            return False
        try:
            settings = self.analysis_settings_from_form(source)
        except BadInputError:
            return False
        self.session.update_settings(source, settings)
        return True

    def set_module_tree(self, source: Source, rows, default_pooling: str | None = None) -> None:
        """Offer the module names of ``source``'s model (a list of ModuleInfo) in the module field."""
        if source is not self.session.current:
            return
        combo = self.editors[MODULE_FIELD].editor
        keep = self.editors[MODULE_FIELD].text()
        combo.clear()
        for row in rows:
            if row.name:
                combo.addItem(f"{'  ' * (row.depth - 1)}{row.name}  ({row.type_name}, {row.n_params:,})", row.name)
        combo.setEditText(source.load.module or keep)
        pooling = self.editors["pooling"].editor
        if default_pooling and pooling.currentData() is None:
            pooling.setToolTip(f"{self.editors['pooling'].spec.help}; model default here: {default_pooling}")

    # ------------------------------------------------------------------ model side

    def _on_model_source_added(self, source: Source) -> None:
        self.list.addItem("")
        self._refresh_item(source)

    def _on_model_source_removed(self, _source: Source) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for source in self.session.sources:
            self.list.addItem("")
            self._refresh_item(source)
        self.list.blockSignals(False)

    def _on_model_source_changed(self, source: Source, aspect: Aspect) -> None:
        if aspect in (Aspect.STATE, Aspect.RESULT):
            self._refresh_item(source)
        elif aspect is Aspect.SETTINGS and source is self.session.current:
            self._show_form(source)

    def _on_model_current_changed(self, source: Source | None) -> None:
        row = -1 if source is None else self.session.index(source)
        if self.list.currentRow() != row:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)
        self._show_form(source)

    # ------------------------------------------------------------------ view side

    def _refresh_item(self, source: Source) -> None:
        item = self.list.item(self.session.index(source))
        item.setText(item_text(source))
        item.setToolTip(source.error or source.path)

    def _show_form(self, source: Source | None) -> None:
        self.path_label.setText(source.path if source else "")
        self.error_label.setText("")
        for name, editor in self.editors.items():
            group = editor.spec.group
            editor.set_enabled(source is not None and (group != "checkpoint" or source.is_checkpoint))
            editor.mark_invalid(False)
            if source is not None:
                if name == MODULE_FIELD:
                    editor.editor.clear()
                editor.show_value(get_value(source.settings, editor.spec.name))
        self.analyze_button.setEnabled(source is not None)

    def _on_view_row_changed(self, row: int) -> None:
        if 0 <= row < len(self.session.sources):
            self.session.select(self.session.sources[row])

    def _on_view_analyze_clicked(self) -> None:
        source = self.session.current
        if source is not None and self.commit_form():
            self.analyze_requested.emit(source)

    def _on_view_modules_clicked(self) -> None:
        source = self.session.current
        if source is None:
            return
        try:
            load = self.settings_from_form(source)
        except BadInputError:
            return
        self.modules_requested.emit(source, load)


def shown_fields() -> tuple[FormField, ...]:
    """The form's rows: every load setting, then the analysis settings of ``embscope analyze``."""
    rows = form_fields(AnalysisSettings)
    load = [row for row in rows if row.name.startswith("load.")]
    return (*load, *(row for row in rows if not row.name.startswith("load.") and "analyze" in row.commands))


def item_text(source: Source) -> str:
    """The list line of a source: a state mark, its name, and a verdict that is not healthy."""
    if source.state is SourceState.DONE and source.result is not None:
        label = source.result.verdict.label
        return f"✓ {source.name}" if label == "healthy" else f"⚠ {source.name} — {label}"
    mark = STATE_MARKS[source.state]
    suffix = f" — {source.state.value}" if source.state is SourceState.NEEDS_DATA else ""
    return f"{mark} {source.name}{suffix}"
