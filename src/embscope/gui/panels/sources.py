"""Sources list and settings form: a view of the :class:`~embscope.tasks.session.Session`.

The list shows every session source with its state; the form below it is
generated from the settings model (:func:`embscope.options.form_fields`: every
load setting, then the analysis settings ``embscope analyze`` offers, e.g. the
MCL sweep switch), one row per field, so a new option appears here with no
change to this file.  The form edits a copy:
Analyze writes it into the session (``Session.update_settings``) and asks for
the analysis.

The form never silently disagrees with the result on screen: a cancelled
re-run puts the settings of the shown result back, and while the form holds
settings that have not produced the shown result (edited, or a re-run that
failed) a line under it says which values differ, with a Revert button.
"Auto" pooling says what it resolves to for the selected model.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication, QPainter, QPalette
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
    QStyle,
    QStyleOptionFrame,
    QVBoxLayout,
    QWidget,
)

from embscope.errors import BadInputError
from embscope.options import (
    AUTO_POOLING,
    AnalysisSettings,
    FormField,
    LoadSettings,
    display_text,
    form_fields,
    get_value,
    parse_text,
    with_value,
)
from embscope.sources.st_pipeline import describe_auto
from embscope.tasks.session import SOURCE_FIELDS, Aspect, Session, Source, SourceState

#: List marks per state (a finished source shows ✓ when healthy, else ⚠ and its verdict).
STATE_MARKS = {
    SourceState.NEW: "○",
    SourceState.NEEDS_DATA: "⚠",
    SourceState.QUEUED: "…",
    SourceState.RUNNING: "⟳",
    SourceState.FAILED: "✗",
    SourceState.CANCELLED: "⊘",
}
#: The tooltip of a failed source, under its error.
FAILED_HINT = "Select it to change its settings and Analyze again, or remove it (Del, or right-click ▸ Remove source)."
#: The form's field for the captured module gets a "Module tree" button next to it.
MODULE_FIELD = "module"
#: Fields naming a column of the input: their combo offers the shown result's other columns.
COLUMN_FIELDS = ("label_column", "parent_column")
#: Form labels wrap beyond this width (pixels), so the sources column keeps its width.
LABEL_WIDTH = 100
#: Largest value an int spin box offers (Qt's spin boxes are 32-bit).
INT_MAX = 2**31 - 1
#: Characters an editable combo asks room for; longer names are elided in the middle, not widening the column.
COMBO_CHARS = 12
#: Rows the sources list asks for (it grows into any height the window has to spare).
LIST_ROWS = 4


class ElidedLineEdit(QLineEdit):
    """A line edit that shows a long value elided in the middle while it is not being edited.

    Module names keep their informative ends (``encoder.layer.11…output.dense``); the full text is
    the tooltip and comes back as soon as the field has the focus.  ``text()`` is always the full value.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.help = ""
        self.textChanged.connect(self._update_tooltip)

    def _available(self) -> int:
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        rect = self.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, self)
        return max(rect.width() - 4, 0)

    def displayed_text(self) -> str:
        """What the field shows now: the whole text, or (not focused, too long) the middle-elided text."""
        text = self.text()
        if self.hasFocus() or self.fontMetrics().horizontalAdvance(text) <= self._available():
            return text
        return self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, self._available())

    def is_elided(self) -> bool:
        return self.displayed_text() != self.text()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        shown = self.displayed_text()
        if shown == self.text():
            super().paintEvent(event)
            return
        option = QStyleOptionFrame()
        self.initStyleOption(option)
        painter = QPainter(self)
        try:
            self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelLineEdit, option, painter, self)
            rect = self.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, self)
            painter.setPen(self.palette().color(QPalette.ColorRole.Text))
            painter.drawText(rect.adjusted(2, 0, -2, 0), int(Qt.AlignmentFlag.AlignVCenter), shown)
        finally:
            painter.end()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._update_tooltip()

    def _update_tooltip(self) -> None:
        text = self.text()
        self.setToolTip(f"{text}\n\n{self.help}" if text and self.is_elided() else self.help)


def fit_popup(combo: QComboBox) -> int:
    """Make ``combo``'s popup wide enough for its longest entry (within the screen); the width set."""
    metrics = combo.view().fontMetrics()
    longest = max((metrics.horizontalAdvance(combo.itemText(i)) for i in range(combo.count())), default=0)
    scrollbar = combo.view().style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
    width = longest + scrollbar + 32  # item margins and the frame
    screen = combo.screen() or QGuiApplication.primaryScreen()
    if screen is not None:
        width = min(width, screen.availableGeometry().width())
    width = max(width, combo.width())
    combo.view().setMinimumWidth(width)
    return width


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
            # "auto → mean + normalize (from …)" must not widen the column: elided, whole in the popup.
            self.editor.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            self.editor.setMinimumContentsLength(COMBO_CHARS)
        elif kind == "int" and not spec.optional:
            self.editor = QSpinBox()
            self.editor.setRange(int(spec.minimum or 0), int(spec.maximum) if spec.maximum is not None else INT_MAX)
        elif kind == "text" and (spec.suggestions or self.name in (MODULE_FIELD, *COLUMN_FIELDS)):
            self.editor = QComboBox()
            line = ElidedLineEdit()
            line.help = spec.help
            line.setPlaceholderText(spec.none_text if spec.optional else "")  # e.g. "label": what empty means
            self.editor.setLineEdit(line)
            # Long entries neither widen the sources column nor get cut: the field elides them in the
            # middle (full name in the tooltip) and the popup is as wide as its longest entry.
            self.editor.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            self.editor.setMinimumContentsLength(COMBO_CHARS)
            self.editor.view().setTextElideMode(Qt.TextElideMode.ElideMiddle)
            self.editor.addItems(list(spec.suggestions))
            fit_popup(self.editor)
            # A picked tree entry ("    name  (Type, 1,234)") leaves just its name in the field.
            self.editor.activated.connect(self._show_picked_name)
            self.editor.currentIndexChanged.connect(self._show_picked_name)
        else:  # path, text, optional numbers, floats: typed, then parsed by the settings model
            self.editor = QLineEdit()
            self.editor.setPlaceholderText(spec.none_text if spec.optional else "")
        self.editor.setToolTip(spec.help)
        self.row.addWidget(self.editor, stretch=1)
        self.changed = self._changed_signal()
        self.widgets.append(self.editor)
        if kind == "path":
            button = QPushButton("…")
            button.setFixedWidth(30)
            button.clicked.connect(lambda: self._browse(parent))
            self.row.addWidget(button)
            self.widgets.append(button)

    def _show_picked_name(self, index: int) -> None:
        name = self.editor.itemData(index) if index >= 0 else None
        if isinstance(name, str) and name and self.editor.currentText() != name:
            self.editor.setEditText(name)

    def _changed_signal(self):
        editor = self.editor
        if isinstance(editor, QCheckBox):
            return editor.toggled
        if isinstance(editor, QSpinBox):
            return editor.valueChanged
        if isinstance(editor, QComboBox):
            return editor.editTextChanged if editor.isEditable() else editor.currentIndexChanged
        return editor.textChanged

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


class SourceList(QListWidget):
    """The sources list: asks for :data:`LIST_ROWS` rows and takes whatever height the form leaves.

    Why not QListWidget's own size hint (192 px): the form's wrapped labels give the
    panel a height-for-width, and the scroll area it sits in then lays it out at
    its size hints, so a 192-px list pushed the Analyze button below a 1 000-px window.
    """

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        hint = super().sizeHint()
        row = max(self.sizeHintForRow(0), self.fontMetrics().height() + 4)
        return QSize(hint.width(), LIST_ROWS * row + 2 * self.frameWidth())


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
        self.list = SourceList()
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
        # Says when the form holds settings that did not make the result on screen (edited, or a failed re-run).
        self.stale_label = QLabel("")
        self.stale_label.setWordWrap(True)
        self.stale_label.setTextFormat(Qt.TextFormat.PlainText)  # values are file names: never read as HTML
        self.stale_label.setStyleSheet("color: #8a5a00;")
        self.revert_button = QPushButton("Revert to the shown result's settings")
        self.revert_button.setToolTip("Put back the settings that made the result on screen")
        self.analyze_button = QPushButton("Analyze")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Sources</b>"))
        layout.addWidget(self.list, stretch=1)
        layout.addLayout(self.form)
        layout.addWidget(self.error_label)
        layout.addWidget(self.stale_label)
        layout.addWidget(self.revert_button)
        layout.addWidget(self.analyze_button)
        self._pipelines: dict[str, str | None] = {}
        # Sources whose settings changed since they were last queued: a cancel now is the restart of
        # their analysis with those settings (the window cancels the old run first), not the user's Cancel.
        self._changed_since_queued: set[Source] = set()
        self._showing = False
        self.list.currentRowChanged.connect(self._on_view_row_changed)
        self.analyze_button.clicked.connect(self._on_view_analyze_clicked)
        self.modules_button.clicked.connect(self._on_view_modules_clicked)
        self.revert_button.clicked.connect(self.revert_to_shown)
        for editor in self.editors.values():
            editor.changed.connect(self._on_view_field_changed)
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
                bad.append(exc)
        # The form names a field by its label ("Neighbours (k)"), never by the CLI's flag.
        self.error_label.setText(bad[0].app_message if bad else "")
        if bad:
            raise bad[0]
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

    @staticmethod
    def _offer_columns(editor: FieldEditor, source: Source) -> None:
        """Fill a column field's list with the other columns of ``source``'s result (its text is kept)."""
        combo = editor.editor
        text = combo.currentText()
        columns = [] if source.result is None else list(source.result.embeddings.extra_columns)
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(columns)
        combo.setEditText(text)
        combo.blockSignals(False)
        fit_popup(combo)

    def set_module_tree(self, source: Source, rows, default_pooling: str | None = None) -> None:
        """Offer the module names of ``source``'s model (a list of ModuleInfo) in the module field.

        The popup is as wide as the longest entry; each entry's tooltip is its full name and type.
        """
        if source is not self.session.current:
            return
        combo = self.editors[MODULE_FIELD].editor
        keep = self.editors[MODULE_FIELD].text()
        combo.clear()
        for row in rows:
            if row.name:
                text = f"{'  ' * (row.depth - 1)}{row.name}  ({row.type_name}, {row.n_params:,})"
                combo.addItem(text, row.name)
                combo.setItemData(combo.count() - 1, text.strip(), Qt.ItemDataRole.ToolTipRole)
        fit_popup(combo)
        combo.setEditText(source.load.module or keep)
        pooling = self.editors["pooling"].editor
        if default_pooling and pooling.currentData() is None:
            pooling.setToolTip(f"{self.editors['pooling'].spec.help}; model default here: {default_pooling}")

    def shown_settings(self, source: Source | None = None) -> AnalysisSettings | None:
        """The settings (load and analysis) of the result on screen for ``source`` (default: current), if any."""
        source = self.session.current if source is None else source
        if source is None or source.result is None:
            return None
        return source.result.request.settings

    def _applies(self, source: Source, name: str) -> bool:
        """Whether the form field ``name`` belongs to ``source`` (load fields other than SOURCE_FIELDS: models only)."""
        spec_name = self.editors[name].spec.name
        return source.is_checkpoint or not spec_name.startswith("load.") or name in SOURCE_FIELDS

    def unrun_changes(self) -> list[str]:
        """``"Label: value"`` for each form value that differs from the shown result's settings (none: [])."""
        source = self.session.current
        shown = self.shown_settings(source)
        if source is None or shown is None:
            return []
        changes = []
        for name, editor in self.editors.items():
            if not editor.editor.isEnabled() or not self._applies(source, name):
                continue
            try:
                differs = editor.value() != get_value(shown, editor.spec.name)
            except BadInputError:
                differs = True
            if differs:
                value = get_value(shown, editor.spec.name)
                text = editor.spec.none_text if value is None else display_text(editor.spec.name, value)
                changes.append(f"{editor.spec.label}: {text}")
        return changes

    def revert_to_shown(self) -> None:
        """Put the settings of the result on screen back into the form and the session."""
        source = self.session.current
        if source is not None and source.result is not None:
            self._revert(source)

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
            if aspect is Aspect.STATE and source.state in (SourceState.QUEUED, SourceState.RUNNING):
                self._changed_since_queued.discard(source)
            if (
                aspect is Aspect.STATE
                and source.state is SourceState.CANCELLED
                and source.result is not None
                and source not in self.session.queued
                and source not in self._changed_since_queued  # a restart with new settings cancels the old run
            ):
                # A cancelled re-run: the old result stays on screen, so do its settings.
                self._revert(source)
            elif source is self.session.current:
                self._update_stale()
                self._update_auto_pooling()
                if aspect is Aspect.RESULT:  # its columns are known now: offer them (the typed text stays)
                    for name in COLUMN_FIELDS:
                        self._offer_columns(self.editors[name], source)
        elif aspect is Aspect.SETTINGS:
            self._changed_since_queued.add(source)
            if source is self.session.current:
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
        if source.state is SourceState.FAILED and source.error:
            item.setToolTip(f"{source.error}\n\n{FAILED_HINT}")
        else:
            item.setToolTip(source.error or source.path)

    def _revert(self, source: Source) -> None:
        shown = self.shown_settings(source)
        settings = source.settings
        for name, editor in self.editors.items():
            if self._applies(source, name):
                settings = with_value(settings, editor.spec.name, get_value(shown, editor.spec.name))
        self.session.update_settings(source, settings)
        if source is self.session.current:
            self._show_form(source)  # also when only the (uncommitted) form differed

    def _show_form(self, source: Source | None) -> None:
        self._showing = True
        try:
            self.path_label.setText(source.path if source else "")
            self.error_label.setText("")
            for name, editor in self.editors.items():
                group = editor.spec.group
                editor.set_enabled(source is not None and (group != "checkpoint" or source.is_checkpoint))
                editor.mark_invalid(False)
                if source is not None:
                    if name == MODULE_FIELD:
                        editor.editor.clear()
                    if name in COLUMN_FIELDS:
                        self._offer_columns(editor, source)
                    editor.show_value(get_value(source.settings, editor.spec.name))
        finally:
            self._showing = False
        self.analyze_button.setEnabled(source is not None)
        self._update_auto_pooling()
        self._update_stale()

    def _on_view_field_changed(self, *_args) -> None:
        if not self._showing:
            self._update_auto_pooling()
            self._update_stale()

    def _update_stale(self) -> None:
        source = self.session.current
        changes = self.unrun_changes()
        if changes:
            failed = source is not None and source.state is SourceState.FAILED
            lead = "The re-run with these settings failed" if failed else "Not run yet"
            text = f"{lead}; the result on screen was made with {'; '.join(changes)}."
        else:
            text = ""
        self.stale_label.setText(text)
        self.stale_label.setVisible(bool(text))
        self.revert_button.setVisible(bool(text))

    def auto_pooling_text(self) -> str:
        """What the form's "auto" pooling entry says for the current source and form values."""
        source = self.session.current
        if source is None or not source.is_checkpoint or self.editors[MODULE_FIELD].text().strip():
            return AUTO_POOLING  # a captured module is pooled plainly (mean), not by the model's pipeline
        normalize = self.editors["model_normalize"].editor.isChecked() and not self.editors["layer"].text().strip()
        key = f"{source.path}\0{normalize}"
        if key not in self._pipelines:
            self._pipelines[key] = describe_auto(source.path, normalize=normalize)
        described = self._pipelines[key]
        if described is None and source.result is not None:
            extraction = source.result.embeddings.extraction or {}
            if source.result.request.settings.load.pooling is None:
                described = extraction.get("described")
        return f"{AUTO_POOLING} → {described}" if described else AUTO_POOLING

    def _update_auto_pooling(self) -> None:
        combo = self.editors["pooling"].editor
        text = self.auto_pooling_text()
        if combo.itemText(0) != text:
            combo.setItemText(0, text)
            combo.setItemData(0, text, Qt.ItemDataRole.ToolTipRole)
            fit_popup(combo)
        help_text = self.editors["pooling"].spec.help
        combo.setToolTip(f"{combo.currentText()}\n\n{help_text}" if combo.currentIndex() == 0 else help_text)

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
    suffix = f" — {source.state.value}" if source.state in (SourceState.NEEDS_DATA, SourceState.FAILED) else ""
    return f"{mark} {source.name}{suffix}"
