"""Sources list: each opened checkpoint or embeddings file with its extraction settings."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
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

from embscope.options import DEVICES, DTYPES
from embscope.options import POOLINGS as _POOLINGS

POOLINGS = ("auto", *_POOLINGS)


@dataclass(frozen=True)
class SourceSpec:
    """One source and how to read it; immutable, so a worker can own the request built from it.

    ``is_checkpoint`` sources need ``data`` (what to run through the model);
    embeddings files ignore the extraction fields.
    """

    path: str
    is_checkpoint: bool = False
    data: str | None = None
    meta: str | None = None
    factory: str | None = None
    module: str | None = None
    pooling: str | None = None
    layer: int | None = None
    device: str = "auto"
    dtype: str = "float32"
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or Path(self.path).name or self.path

    def request(self, clusters: bool = True, knn: int | None = None):
        """The :class:`~embscope.tasks.analyze.AnalyzeRequest` for this source."""
        from embscope.options import DEFAULT_KNN
        from embscope.tasks.analyze import AnalyzeRequest

        common = dict(meta=self.meta, clusters=clusters, knn=DEFAULT_KNN if knn is None else knn)
        if not self.is_checkpoint:
            return AnalyzeRequest.of(self.path, **common)
        return AnalyzeRequest.of(
            self.path,
            data=self.data,
            factory=self.factory,
            module=self.module,
            pooling=self.pooling,
            layer=self.layer,
            device=self.device,
            dtype=self.dtype,
            **common,
        )


def spec_for_path(path: str, device: str = "auto", dtype: str = "float32") -> SourceSpec:
    """Guess how to open ``path``: a checkpoint (model folder / state dict) or an embeddings file."""
    from embscope.sources.checkpoints import is_checkpoint

    try:
        checkpoint = is_checkpoint(path)
    except Exception:  # noqa: BLE001 - unreadable files are reported when analysed, not here
        checkpoint = False
    return SourceSpec(
        path=str(path),
        is_checkpoint=checkpoint,
        device=device,
        dtype=dtype,
        meta=None if checkpoint else sidecar_metadata(path),
    )


def sidecar_metadata(path: str | Path) -> str | None:
    """A metadata CSV named like the embeddings file (``emb.npy`` → ``emb.csv`` / ``emb.meta.csv``), if any.

    The form shows it, so the user sees (and can clear) what was picked.
    """
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in (".csv", ".tsv", ".parquet"):
        return None
    for candidate in (p.with_suffix(".csv"), p.with_suffix(".meta.csv")):
        if candidate.is_file():
            return str(candidate)
    return None


class SourcesPanel(QWidget):
    """The list of sources and the settings form of the selected one.

    Signals: ``current_changed(int)`` when another source is picked,
    ``analyze_requested(int)`` when the user asks to (re)analyse one,
    ``modules_requested(int)`` to read a checkpoint's module tree.
    """

    current_changed = Signal(int)
    analyze_requested = Signal(int)
    modules_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.specs: list[SourceSpec] = []
        self.states: list[str] = []
        self.list = QListWidget()
        self.path_label = QLabel("")
        self.path_label.setWordWrap(True)
        self.data_edit, data_row = self._file_row("Data to run through the model")
        self.meta_edit, meta_row = self._file_row("Per-sample metadata CSV (label, parent, id, text)")
        self.factory_edit = QLineEdit()
        self.factory_edit.setPlaceholderText("package.module:function or file.py:function")
        self.module_combo = QComboBox()
        self.module_combo.setEditable(True)
        self.module_combo.setToolTip("Submodule whose output is captured (from the module tree)")
        self.modules_button = QPushButton("Module tree")
        module_row = QHBoxLayout()
        module_row.addWidget(self.module_combo, stretch=1)
        module_row.addWidget(self.modules_button)
        self.pooling_combo = QComboBox()
        self.pooling_combo.addItems(POOLINGS)
        self.layer_spin = QSpinBox()
        self.layer_spin.setRange(-1, 512)
        self.layer_spin.setSpecialValueText("default")
        self.layer_spin.setValue(-1)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.dtype_combo = QComboBox()
        self.dtype_combo.addItems(DTYPES)
        self.analyze_button = QPushButton("Analyze")
        self.form = QFormLayout()
        self.form.addRow("Source", self.path_label)
        self.form.addRow("Data", data_row)
        self.form.addRow("Metadata", meta_row)
        self.form.addRow("Factory", self.factory_edit)
        self.form.addRow("Module", module_row)
        self.form.addRow("Pooling", self.pooling_combo)
        self.form.addRow("Layer", self.layer_spin)
        self.form.addRow("Device", self.device_combo)
        self.form.addRow("Dtype", self.dtype_combo)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("<b>Sources</b>"))
        layout.addWidget(self.list, stretch=1)
        layout.addLayout(self.form)
        layout.addWidget(self.analyze_button)
        self.list.currentRowChanged.connect(self._on_view_row_changed)
        self.analyze_button.clicked.connect(self._on_view_analyze_clicked)
        self.modules_button.clicked.connect(lambda: self.modules_requested.emit(self.current))
        self._on_view_row_changed(-1)

    # ------------------------------------------------------------------ public

    @property
    def current(self) -> int:
        return self.list.currentRow()

    def add(self, spec: SourceSpec) -> int:
        """Append a source (or select it if the same path is already listed); returns its index."""
        for i, existing in enumerate(self.specs):
            if existing.path == spec.path and existing.label == spec.label:
                self.specs[i] = spec
                self.list.setCurrentRow(i)
                return i
        self.specs.append(spec)
        self.states.append("new")
        self.list.addItem(spec.name)
        self._refresh_item(len(self.specs) - 1)
        self.list.setCurrentRow(len(self.specs) - 1)
        return len(self.specs) - 1

    def set_state(self, index: int, state: str) -> None:
        """Show a source's state in the list: new / queued / running / a verdict label / error / cancelled."""
        if 0 <= index < len(self.states):
            self.states[index] = state
            self._refresh_item(index)

    def spec_from_form(self, index: int) -> SourceSpec:
        """The source at ``index`` with the form's current extraction settings."""
        spec = self.specs[index]
        if not spec.is_checkpoint:
            return replace(spec, meta=self.meta_edit.text().strip() or None)
        module = self.module_combo.currentText().split("  (")[0].strip()
        return replace(
            spec,
            data=self.data_edit.text().strip() or None,
            meta=self.meta_edit.text().strip() or None,
            factory=self.factory_edit.text().strip() or None,
            module=module or None,
            pooling=None if self.pooling_combo.currentText() == "auto" else self.pooling_combo.currentText(),
            layer=None if self.layer_spin.value() < 0 else self.layer_spin.value(),
            device=self.device_combo.currentText(),
            dtype=self.dtype_combo.currentText(),
        )

    def set_module_tree(self, index: int, rows, default_pooling: str | None = None) -> None:
        """Fill the module choices of source ``index`` from a module tree (list of ModuleInfo)."""
        if index != self.current:
            return
        keep = self.module_combo.currentText()
        self.module_combo.clear()
        for row in rows:
            if row.name:
                self.module_combo.addItem(
                    f"{'  ' * (row.depth - 1)}{row.name}  ({row.type_name}, {row.n_params:,})", row.name
                )
        chosen = self.specs[index].module or keep.split("  (")[0].strip()
        self.module_combo.setEditText(chosen)
        if default_pooling and self.pooling_combo.currentText() == "auto":
            self.pooling_combo.setToolTip(f"auto = {default_pooling} for this model")

    # ------------------------------------------------------------------ view side

    def _file_row(self, tip: str):
        edit = QLineEdit()
        edit.setToolTip(tip)
        button = QPushButton("…")
        button.setFixedWidth(30)

        def browse() -> None:
            path, _ = QFileDialog.getOpenFileName(self, tip)
            if path:
                edit.setText(path)

        button.clicked.connect(browse)
        row = QHBoxLayout()
        row.addWidget(edit, stretch=1)
        row.addWidget(button)
        return edit, row

    def _refresh_item(self, index: int) -> None:
        marks = {"new": "○", "queued": "…", "running": "⟳", "error": "✗", "cancelled": "⊘", "healthy": "✓"}
        state = self.states[index]
        mark = marks.get(state, "⚠")
        self.list.item(index).setText(f"{mark} {self.specs[index].name}" + ("" if state in marks else f" — {state}"))
        self.list.item(index).setToolTip(self.specs[index].path)

    def _on_view_row_changed(self, index: int) -> None:
        valid = 0 <= index < len(self.specs)
        spec = self.specs[index] if valid else None
        self.path_label.setText(spec.path if spec else "")
        checkpoint = bool(spec and spec.is_checkpoint)
        for widget in (
            self.data_edit,
            self.factory_edit,
            self.module_combo,
            self.modules_button,
            self.pooling_combo,
            self.layer_spin,
            self.device_combo,
            self.dtype_combo,
        ):
            widget.setEnabled(checkpoint)
        self.meta_edit.setEnabled(valid)
        self.analyze_button.setEnabled(valid)
        if spec is not None:
            self.data_edit.setText(spec.data or "")
            self.meta_edit.setText(spec.meta or "")
            self.factory_edit.setText(spec.factory or "")
            self.module_combo.clear()
            self.module_combo.setEditText(spec.module or "")
            self.pooling_combo.setCurrentText(spec.pooling or "auto")
            self.layer_spin.setValue(-1 if spec.layer is None else spec.layer)
            self.device_combo.setCurrentText(spec.device)
            self.dtype_combo.setCurrentText(spec.dtype)
        if valid:
            self.current_changed.emit(index)

    def _on_view_analyze_clicked(self) -> None:
        index = self.current
        if 0 <= index < len(self.specs):
            self.specs[index] = self.spec_from_form(index)
            self.analyze_requested.emit(index)
