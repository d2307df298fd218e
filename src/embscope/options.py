"""The one settings model: how a source is read (`LoadSettings`) and what is computed (`AnalysisSettings`).

Every option a user can set lives here once, as a field of a frozen
dataclass whose ``metadata["option"]`` is an :class:`Option`: CLI flag, help
text, GUI label, kind, choices, range, which CLI commands offer it and what it
affects.  Everything else is generated from these fields:

* the argparse options of every command (:func:`add_options`) and the
  settings read back from the parsed namespace (:func:`settings_from_args`);
* the GUI form (:func:`form_fields`, below);
* the cache keys (:func:`key_settings` gives the fields that matter for the
  extracted vectors or for the analysis summary; ``embscope.tasks.cache``
  hashes them with the input files' fingerprints);
* validation: :func:`check_value` is the one place that refuses a bad value,
  with a one-line :class:`~embscope.errors.BadInputError`.  The dataclasses
  call it in ``__post_init__``, the CLI through its argparse ``type``, the
  GUI through :func:`parse_text` / :func:`with_value`.

Adding an option = adding one field (with its :func:`option` metadata) to
one of the two classes, and reading it where it is used.

Building a GUI form from this module (for ``embscope.gui``)
-----------------------------------------------------------
``form_fields()`` returns one :class:`FormField` per leaf field of
:class:`AnalysisSettings` (the :class:`LoadSettings` ones first), in
declaration order.  Each has:

``name``
    Dotted path into the settings, e.g. ``"load.batch_size"`` or ``"knn"``;
    :func:`get_value` and :func:`with_value` take it.
``label``, ``help``
    Row label and tooltip (the help already ends with the default).
``kind``
    Which widget: ``"path"`` (line edit + file button; ``file_filter`` is a
    Qt name filter), ``"text"`` (line edit; ``suggestions`` may fill an
    editable combo), ``"int"`` / ``"float"`` (spin box within
    ``minimum``/``maximum``; ``None`` = unbounded), ``"bool"`` (check box),
    ``"choice"`` (combo of ``choices``), ``"floats"`` (line edit of
    comma-separated numbers).
``optional``, ``none_text``
    The field may be ``None`` (= "decide for me"); show ``none_text``
    (e.g. ``"model default"``) for it: an empty line edit, an extra first
    combo entry, a spin box's special value text.
``group``
    ``"source"`` (every source), ``"checkpoint"`` (only used when the source
    is a checkpoint: grey it out otherwise) or ``"analysis"``.

A widget turns user text into a value with ``parse_text(name, text)`` (empty
text → ``None`` for optional fields) and stores it with
``settings = with_value(settings, name, value)``; both raise
``BadInputError`` with a one-line message suitable for a status bar or a
red field.  ``display_text(name, value)`` is the inverse, for filling the
widget from a settings object.

The requests built on these settings (``embscope.tasks``):
``AnalyzeRequest(source=path, settings=AnalysisSettings(...), embeddings=None)``,
``ExtractRequest(checkpoint=path, load=LoadSettings(...))``,
``CompareRequest(sources=(AnalyzeRequest, ...), ...)``,
``SeriesRequest(settings=AnalysisSettings(...), folder=...)``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from embscope.errors import BadInputError

POOLINGS = ("cls", "mean", "max", "last", "pooler")
#: What ``pooling=None`` is called: the model's own pooling (see ``embscope.sources.st_pipeline``).
AUTO_POOLING = "auto"
DTYPES = ("float32", "bfloat16", "float16")
#: Suggestions only: ``cuda:N`` is accepted too.
DEVICES = ("auto", "cpu", "cuda", "mps")
NONFINITE_POLICIES = ("drop", "refuse")
DEFAULT_INFLATIONS = (1.4, 2.0, 3.0, 4.0)
DEFAULT_KNN = 15
DEFAULT_BATCH_SIZE = 64
#: Above this many samples the MCL sweep runs on a stratified subsample of this size unless ``mcl_full``.
MCL_NODE_LIMIT = 20_000

#: CLI commands that open sources and that analyse them.
# `gui` offers every load option (applied to the sources it opens) and no analysis option (the window has its own).
SOURCE_COMMANDS = frozenset({"analyze", "modules", "map", "compare", "series", "layers", "gui"})
ANALYSIS_COMMANDS = frozenset({"analyze", "compare", "series"})
# Each command offers only the load options its handler reads: `modules` opens the checkpoint and probes it
# with a few rows of --data on the CPU; `map` lays out vectors (labels unused); `layers` sweeps every module
# of a checkpoint itself (no --module/--layer), keeps no cache and reads no embeddings files.
LABEL_COMMANDS = SOURCE_COMMANDS - {"modules", "map"}
EXTRACT_COMMANDS = SOURCE_COMMANDS - {"modules"}
ONE_MODULE_COMMANDS = SOURCE_COMMANDS - {"modules", "layers"}

#: What a field changes, for the cache keys.  A field that changes the
#: extracted vectors changes the summary as well.
VECTORS = "vectors"
SUMMARY = "summary"

KINDS = ("path", "text", "int", "float", "bool", "choice", "floats")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Option:
    """Metadata of one settings field (stored as ``field.metadata["option"]``).

    Attributes
    ----------
    flag
        The CLI flag, e.g. ``"--batch-size"``.  For a ``bool`` field whose
        default is True the flag turns it off (``--no-cache``).
    help
        One line for ``--help`` and the GUI tooltip, without the default
        (:func:`help_text` appends it).
    label
        The GUI row label.
    kind
        One of :data:`KINDS`.
    choices
        Allowed values of a ``choice`` field.
    minimum, maximum
        Inclusive range of an ``int``/``float`` field (``None``: open).
    above
        Exclusive lower bound (``float``/``floats``: inflations must exceed 1).
    affects
        :data:`VECTORS` (enters the extraction cache key), :data:`SUMMARY`
        (enters the key of a cached analysis) or ``None`` (how or where to
        run: device, batch size, caching itself).
    commands
        CLI commands that offer the flag.
    metavar
        Placeholder in ``--help``.
    none_text
        What ``None`` means, for optional fields ("model default").
    group
        GUI group: ``"source"``, ``"checkpoint"`` or ``"analysis"``.
    suggestions
        Values to offer in an editable combo (``text`` fields).
    file_filter
        Qt file-dialog name filter for ``path`` fields.
    fingerprint
        The value names a file whose content enters the cache key.
    off_help
        Help of the CLI flag that turns a default-on ``bool`` off.
    optional
        ``None`` is allowed ("decide for me"); set from a ``None`` default.
    """

    flag: str
    help: str
    label: str
    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    affects: str | None = None
    commands: frozenset[str] = SOURCE_COMMANDS
    metavar: str | None = None
    none_text: str = "none"
    group: str = "source"
    suggestions: tuple[str, ...] = ()
    file_filter: str = ""
    fingerprint: bool = False
    off_help: str = ""
    optional: bool = False


def option(default: Any, **meta: Any) -> Any:
    """A dataclass field with ``default`` and :class:`Option` metadata (``None`` default: optional)."""
    spec = Option(**meta, optional=default is None)
    if spec.kind not in KINDS:
        raise ValueError(f"unknown option kind {spec.kind!r}")
    return field(default=default, metadata={"option": spec})


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class LoadSettings:
    """How a source is read: metadata files, and for checkpoints how vectors are extracted."""

    meta: str | None = option(
        None,
        flag="--meta",
        commands=LABEL_COMMANDS,
        metavar="CSV",
        help="per-sample metadata: label, parent, prediction, text, id",
        label="Metadata CSV",
        kind="path",
        affects=SUMMARY,
        fingerprint=True,
        file_filter="Metadata (*.csv *.tsv *.parquet);;All files (*)",
    )
    parents: str | None = option(
        None,
        flag="--parents",
        commands=LABEL_COMMANDS,
        metavar="CSV",
        help="leaf→parent mapping (columns: label, parent)",
        label="Parents CSV",
        kind="path",
        affects=SUMMARY,
        fingerprint=True,
        file_filter="Mapping (*.csv *.tsv);;All files (*)",
    )
    label_column: str | None = option(
        None,
        flag="--label-column",
        commands=LABEL_COMMANDS,
        metavar="NAME",
        help="column of the data, the embeddings file or --meta that holds the (leaf) labels, when it is not "
        "called label (e.g. a projector metadata TSV's class column)",
        label="Label column",
        kind="text",
        none_text="label",
        affects=SUMMARY,
    )
    parent_column: str | None = option(
        None,
        flag="--parent-column",
        commands=LABEL_COMMANDS,
        metavar="NAME",
        help="column that holds the parent labels, when it is not called parent",
        label="Parent column",
        kind="text",
        none_text="parent",
        affects=SUMMARY,
    )
    nonfinite: str = option(
        "drop",
        flag="--nonfinite",
        commands=ONE_MODULE_COMMANDS,
        help="rows with NaN/Inf in an embeddings file: drop them (reported) or refuse the file",
        label="Rows with NaN/Inf",
        kind="choice",
        choices=NONFINITE_POLICIES,
        affects=SUMMARY,
    )
    data: str | None = option(
        None,
        flag="--data",
        metavar="FILE",
        help="data to run through a checkpoint: .txt, .jsonl, .csv/.tsv (a text column; label, parent, id, "
        "prediction and other columns optional), .npy",
        label="Data to run through the model",
        kind="path",
        affects=VECTORS,
        fingerprint=True,
        group="checkpoint",
        file_filter="Data (*.txt *.jsonl *.csv *.tsv *.npy);;All files (*)",
    )
    factory: str | None = option(
        None,
        flag="--factory",
        metavar="SPEC",
        help="model factory: package.module:function or file.py:function",
        label="Model factory",
        kind="text",
        affects=VECTORS,
        fingerprint=True,
        group="checkpoint",
    )
    module: str | None = option(
        None,
        flag="--module",
        commands=ONE_MODULE_COMMANDS,
        metavar="NAME",
        help="submodule whose output is captured",
        label="Module",
        kind="text",
        affects=VECTORS,
        none_text="model output",
        group="checkpoint",
    )
    pooling: str | None = option(
        None,
        flag="--pooling",
        commands=EXTRACT_COMMANDS,
        help="how token outputs are reduced to one vector; auto follows the model: a sentence-transformers "
        "folder's own Pooling config (and Normalize), else mean (last for decoders)",
        label="Pooling",
        kind="choice",
        choices=POOLINGS,
        affects=VECTORS,
        none_text=AUTO_POOLING,
        group="checkpoint",
    )
    model_normalize: bool = option(
        True,
        flag="--no-model-normalize",
        commands=ONE_MODULE_COMMANDS,  # `layers` captures inner modules, which a model's Normalize never follows
        help="with auto pooling, end with the model's own Normalize module (a sentence-transformers folder's "
        "unit vectors, as the model serves them)",
        off_help="keep the raw pooled vectors: skip a sentence-transformers folder's Normalize module",
        label="Apply the model's Normalize",
        kind="bool",
        affects=VECTORS,
        group="checkpoint",
    )
    layer: int | None = option(
        None,
        flag="--layer",
        commands=ONE_MODULE_COMMANDS,
        metavar="N",
        help="hidden layer of a Hugging Face model (0 = embeddings, -1 = last)",
        label="Layer",
        kind="int",
        affects=VECTORS,
        none_text="last",
        group="checkpoint",
    )
    device: str = option(
        "auto",
        flag="--device",
        commands=EXTRACT_COMMANDS,
        help="auto, cpu, cuda, cuda:N or mps",
        label="Device",
        kind="text",
        suggestions=DEVICES,
        group="checkpoint",
    )
    dtype: str = option(
        "float32",
        flag="--dtype",
        commands=EXTRACT_COMMANDS,
        help="precision of the forward pass",
        label="Precision",
        kind="choice",
        choices=DTYPES,
        affects=VECTORS,
        group="checkpoint",
    )
    batch_size: int = option(
        DEFAULT_BATCH_SIZE,
        flag="--batch-size",
        commands=EXTRACT_COMMANDS,
        metavar="N",
        help="samples per forward pass (halved on out-of-memory)",
        label="Batch size",
        kind="int",
        minimum=1,
        group="checkpoint",
    )
    trust: bool = option(
        False,
        flag="--trust",
        help="allow files that need full unpickling (runs their code)",
        label="Trust the file (runs its code)",
        kind="bool",
    )
    use_cache: bool = option(
        True,
        flag="--no-cache",
        commands=ONE_MODULE_COMMANDS,
        help="read and write the extraction cache",
        off_help="do not read or write the extraction cache",
        label="Use the extraction cache",
        kind="bool",
        group="checkpoint",
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class AnalysisSettings:
    """What is computed for a source, plus how it is read (``load``)."""

    load: LoadSettings = field(default_factory=LoadSettings)
    thresholds: str | None = option(
        None,
        flag="--thresholds",
        metavar="FILE",
        help="grading thresholds (TOML or JSON)",
        label="Thresholds file",
        kind="path",
        affects=SUMMARY,
        fingerprint=True,
        commands=ANALYSIS_COMMANDS | {"layers"},
        none_text="built-in",
        group="analysis",
        file_filter="Thresholds (*.toml *.json);;All files (*)",
    )
    graph: bool = option(
        True,
        flag="--no-graph",
        help="build the k-NN graph (the MCL sweep and k-NN label accuracy need it)",
        off_help="skip the k-NN graph and what needs it (MCL sweep, k-NN label accuracy)",
        label="k-NN graph",
        kind="bool",
        affects=SUMMARY,
        commands=ANALYSIS_COMMANDS,
        group="analysis",
    )
    knn: int | None = option(
        None,
        flag="--knn",
        metavar="K",
        help="neighbours in the k-NN graph, at least 1 and below the number of samples",
        label="Neighbours (k)",
        kind="int",
        minimum=1,
        none_text=f"automatic: min({DEFAULT_KNN}, N − 1)",
        affects=SUMMARY,
        commands=ANALYSIS_COMMANDS | {"map"},
        group="analysis",
    )
    clusters: bool = option(
        True,
        flag="--no-clusters",
        help="run the MCL sweep",
        off_help="skip the MCL sweep",
        label="MCL sweep",
        kind="bool",
        affects=SUMMARY,
        commands=ANALYSIS_COMMANDS,
        group="analysis",
    )
    mcl_full: bool = option(
        False,
        flag="--mcl-full",
        help=f"run MCL on every sample, however many (above {MCL_NODE_LIMIT:,} samples it runs on a seeded "
        f"subsample of {MCL_NODE_LIMIT:,}, stratified by label: the summary says so)",
        label="MCL on all samples",
        kind="bool",
        affects=SUMMARY,
        commands=ANALYSIS_COMMANDS,
        group="analysis",
    )
    inflations: tuple[float, ...] = option(
        DEFAULT_INFLATIONS,
        flag="--inflations",
        metavar="I,I,…",
        help="MCL inflations, each greater than 1",
        label="MCL inflations",
        kind="floats",
        above=1.0,
        affects=SUMMARY,
        commands=ANALYSIS_COMMANDS,
        group="analysis",
    )
    purity_inflation: float | None = option(
        None,
        flag="--purity-inflation",
        metavar="I",
        help="MCL inflation whose purity is compared and tracked (the nearest one swept is used)",
        label="Purity read at inflation",
        kind="float",
        above=1.0,
        commands=frozenset({"compare", "series"}),
        none_text="where parent purity is graded",
        group="analysis",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.load, LoadSettings):
            raise BadInputError(f"load must be LoadSettings, got {type(self.load).__name__}")
        validate(self)


SETTINGS_CLASSES = (LoadSettings, AnalysisSettings)
SettingsT = TypeVar("SettingsT", LoadSettings, AnalysisSettings)


# --------------------------------------------------------------------------- introspection


def option_of(f: dataclasses.Field) -> Option | None:
    """The :class:`Option` of a dataclass field, or None (the composed ``load``)."""
    return f.metadata.get("option")


def iter_options(cls: type = AnalysisSettings, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Option]]:
    """``(dotted name, field, option)`` of every leaf field; nested settings first."""
    own = []
    for f in fields(cls):
        spec = option_of(f)
        if spec is not None:
            own.append((f"{prefix}{f.name}", f, spec))
        elif dataclasses.is_dataclass(f.default_factory):
            yield from iter_options(f.default_factory, f"{prefix}{f.name}.")
    yield from own


def _lookup(name: str) -> tuple[dataclasses.Field, Option]:
    for dotted, f, spec in iter_options():
        if dotted == name or dotted.rsplit(".", 1)[-1] == name:
            return f, spec
    raise KeyError(f"no setting named {name!r}")


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def format_value(value: Any) -> str:
    """A value as a user types it: ``1.4,2,3,4`` for inflations, ``on``/``off`` for switches."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)  # never round a value away
    return str(value)


def help_text(spec: Option, default: Any) -> str:
    """The help line with its default, e.g. ``"samples per forward pass (default: 64)"``."""
    if spec.kind == "bool":
        return f"{spec.help} (default: {'on' if default else 'off'})"
    shown = spec.none_text if default is None else format_value(default)
    return f"{spec.help} (default: {shown})"


# --------------------------------------------------------------------------- validation


def check_value(name: str, value: Any, spec: Option | None = None) -> Any:
    """Validate one setting; return it normalised (inflations as a float tuple).

    The one place where option values are refused.

    Raises
    ------
    BadInputError
        One line naming the CLI flag, e.g. ``--knn must be at least 1, got 0``;
        its ``app_message`` names the form's label instead
        (``Neighbours (k) must be at least 1, got 0``).
    """
    if spec is None:
        spec = _lookup(name)[1]
    short = name.rsplit(".", 1)[-1]
    if value is None:
        if spec.optional:
            return None
        raise refusal(short, "needs a value", spec)
    kind = spec.kind
    if kind == "bool":
        if not isinstance(value, (bool, int)) or isinstance(value, float):
            raise refusal(short, f"must be true or false, got {value!r}", spec)
        return bool(value)
    if kind in ("path", "text"):
        if not isinstance(value, str):
            value = str(value)
        if short == "device" and not _DEVICE_RE.match(value.strip().lower()):
            raise BadInputError(f"unknown device {value!r}; use auto, cpu, cuda, cuda:N or mps")
        return value
    if kind == "choice":
        if value not in spec.choices:
            raise refusal(short, f"must be one of {', '.join(spec.choices)}, got {value!r}", spec)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int,)) and not _is_integral(value):
            raise refusal(short, f"must be a whole number, got {value!r}", spec)
        value = int(value)
        _check_range(short, value, spec)
        return value
    if kind == "float":
        value = _as_float(short, value, spec)
        _check_range(short, value, spec)
        return value
    # floats
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise refusal(short, f"must be a list of numbers, got {value!r}", spec)
    values = tuple(_as_float(short, v, spec) for v in value)
    if not values:
        raise refusal(short, "needs at least one number", spec)
    for v in values:
        _check_range(short, v, spec)
    return values


def refusal(name: str, complaint: str, spec: Option | None = None) -> BadInputError:
    """``"<option> <complaint>"``, the option named as each front end names it.

    The CLI line starts with the flag (``--knn must be at least 1, got 0``;
    a switch by its field name), the app's with the form label
    (``Neighbours (k) must be at least 1, got 0``).
    """
    if spec is None:
        spec = _lookup(name)[1]
    cli = name.rsplit(".", 1)[-1] if spec.kind == "bool" else spec.flag
    return BadInputError(f"{cli} {complaint}", in_app=f"{spec.label} {complaint}")


def form_label(name: str) -> str:
    """The app's form label of setting ``name`` (dotted or bare), for naming it in an app message."""
    return _lookup(name)[1].label


def _is_integral(value: Any) -> bool:
    try:
        import numpy as np

        return isinstance(value, np.integer)
    except ImportError:  # numpy is a dependency; stay importable without it
        return False


def _as_float(name: str, value: Any, spec: Option) -> float:
    if isinstance(value, bool):
        raise refusal(name, f"must be a number, got {value!r}", spec)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise refusal(name, f"must be a number, got {value!r}", spec) from None
    if not math.isfinite(number):
        raise refusal(name, f"must be a finite number, got {value!r}", spec)
    return number


def _check_range(name: str, value: float, spec: Option) -> None:
    if spec.minimum is not None and value < spec.minimum:
        raise refusal(name, f"must be at least {spec.minimum:g}, got {format_value(value)}", spec)
    if spec.maximum is not None and value > spec.maximum:
        raise refusal(name, f"must be at most {spec.maximum:g}, got {format_value(value)}", spec)
    if spec.above is not None and value <= spec.above:
        raise refusal(name, f"must be greater than {spec.above:g}, got {format_value(value)}", spec)


def validate(settings: LoadSettings | AnalysisSettings) -> None:
    """Check (and normalise in place: inflations to a float tuple) every field of ``settings``."""
    for f in fields(settings):
        spec = option_of(f)
        if spec is None:
            continue
        value = getattr(settings, f.name)
        checked = check_value(f.name, value, spec)
        if checked is not value:
            object.__setattr__(settings, f.name, checked)


def parse_text(name: str, text: str) -> Any:
    """A setting's value from what a user typed (CLI argument or GUI line edit); validated.

    Empty text gives ``None`` for optional fields.  ``name`` may be dotted
    (``"load.batch_size"``) or the bare field name.
    """
    _, spec = _lookup(name)
    short = name.rsplit(".", 1)[-1]
    text = text.strip()
    if not text and spec.optional:
        return None
    if spec.kind == "int":
        try:
            value: Any = int(text)
        except ValueError:
            raise refusal(short, f"must be a whole number, got {text!r}", spec) from None
    elif spec.kind == "float":
        value = _as_float(short, text, spec)
    elif spec.kind == "floats":
        parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            value = tuple(float(part) for part in parts)
        except ValueError:
            raise refusal(short, f"expects comma-separated numbers, got {text!r}", spec) from None
    elif spec.kind == "bool":
        lowered = text.lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise refusal(short, f"must be on or off, got {text!r}", spec)
        value = lowered in ("1", "true", "yes", "on")
    else:
        value = text
    return check_value(short, value, spec)


def display_text(name: str, value: Any) -> str:
    """The text a widget shows for ``value`` (inverse of :func:`parse_text`; ``None`` → empty)."""
    return "" if value is None else format_value(value)


# --------------------------------------------------------------------------- reading and replacing


def get_value(settings: AnalysisSettings | LoadSettings, name: str) -> Any:
    """The value at a dotted name, e.g. ``get_value(s, "load.pooling")``."""
    target: Any = settings
    for part in name.split("."):
        target = getattr(target, part)
    return target


def with_value(settings: SettingsT, name: str, value: Any) -> SettingsT:
    """A copy of ``settings`` with the dotted ``name`` set to ``value`` (validated)."""
    head, _, rest = name.partition(".")
    if rest:
        return dataclasses.replace(settings, **{head: with_value(getattr(settings, head), rest, value)})
    return dataclasses.replace(settings, **{head: value})


def settings_from_values(values: Mapping[str, Any], base: AnalysisSettings | None = None) -> AnalysisSettings:
    """An :class:`AnalysisSettings` from ``{dotted or bare name: value}`` over ``base`` (default: defaults).

    Unknown names raise ``KeyError`` (a programming error, not bad input).
    """
    settings = base if base is not None else AnalysisSettings()
    load_changes: dict[str, Any] = {}
    own_changes: dict[str, Any] = {}
    load_names = {f.name for f in fields(LoadSettings)}
    own_names = {f.name for f in fields(AnalysisSettings) if f.name != "load"}
    for name, value in values.items():
        short = name.rsplit(".", 1)[-1]
        if short in load_names and (name == short or name.startswith("load.")):
            load_changes[short] = value
        elif short in own_names:
            own_changes[short] = value
        else:
            raise KeyError(f"no setting named {name!r}")
    load = dataclasses.replace(settings.load, **load_changes) if load_changes else settings.load
    return dataclasses.replace(settings, load=load, **own_changes)


def key_settings(settings: AnalysisSettings | LoadSettings, affects: str = VECTORS) -> dict[str, Any]:
    """The fields that change the extracted vectors (``VECTORS``) or the summary (``SUMMARY``), as a dict.

    ``SUMMARY`` includes the ``VECTORS`` fields.  Keys are dotted names;
    cache keys hash this (``embscope.tasks.cache``), with the content of
    the files named by ``fingerprint`` fields.
    """
    wanted = {VECTORS} if affects == VECTORS else {VECTORS, SUMMARY}
    cls = type(settings)
    out: dict[str, Any] = {}
    for name, _f, spec in iter_options(cls):
        if spec.affects in wanted:
            out[name] = get_value(settings, name)
    return out


def fingerprinted_names(cls: type = AnalysisSettings) -> tuple[str, ...]:
    """Dotted names of the fields whose value is a file that enters cache keys by content."""
    return tuple(name for name, _f, spec in iter_options(cls) if spec.fingerprint)


# --------------------------------------------------------------------------- GUI form


@dataclass(frozen=True)
class FormField:
    """One row of the settings form (see the module docstring)."""

    name: str
    label: str
    help: str
    kind: str
    default: Any
    optional: bool
    none_text: str
    group: str
    choices: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    file_filter: str = ""
    commands: frozenset[str] = frozenset()


def form_fields(cls: type = AnalysisSettings) -> tuple[FormField, ...]:
    """The GUI form of ``cls``: one :class:`FormField` per leaf setting (load settings first)."""
    rows = []
    for name, f, spec in iter_options(cls):
        default = default_of(f)
        minimum = spec.minimum
        if minimum is None and spec.above is not None:
            minimum = spec.above
        rows.append(
            FormField(
                name=name,
                label=spec.label,
                help=help_text(spec, default),
                kind=spec.kind,
                default=default,
                optional=spec.optional,
                none_text=spec.none_text,
                group=spec.group,
                choices=spec.choices,
                suggestions=spec.suggestions,
                minimum=minimum,
                maximum=spec.maximum,
                file_filter=spec.file_filter,
                commands=frozenset(spec.commands),
            )
        )
    return tuple(rows)


# --------------------------------------------------------------------------- argparse


def add_options(parser: Any, command: str, cls: type = AnalysisSettings) -> None:
    """Add to an ``argparse`` parser the flags of every setting that ``command`` offers.

    The destination of each flag is the field's name, so
    :func:`settings_from_args` can read the namespace back.
    """
    import argparse

    for name, f, spec in iter_options(cls):
        if command not in spec.commands:
            continue
        short = name.rsplit(".", 1)[-1]
        default = default_of(f)
        kwargs: dict[str, Any] = {"dest": short, "help": help_text(spec, default), "default": default}
        if spec.kind == "bool":
            kwargs["action"] = "store_false" if default else "store_true"
            if default:
                kwargs["help"] = f"{spec.off_help} (default: {spec.help})"
        else:
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            if spec.kind == "choice":
                kwargs["choices"] = spec.choices
            kwargs["type"] = _argparse_type(short, argparse)
        parser.add_argument(spec.flag, **kwargs)


def _argparse_type(name: str, argparse):
    flag = _lookup(name)[1].flag

    def convert(text: str) -> Any:
        try:
            return parse_text(name, text)
        except BadInputError as exc:
            # argparse already starts the line with "argument --flag: ".
            message = str(exc)
            raise argparse.ArgumentTypeError(message.removeprefix(f"{flag} ")) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def settings_from_args(args: Any) -> AnalysisSettings:
    """The settings held by a parsed argparse namespace (flags a command lacks keep their defaults)."""
    values = {}
    for name, _f, _spec in iter_options():
        short = name.rsplit(".", 1)[-1]
        if hasattr(args, short):
            values[name] = getattr(args, short)
    return settings_from_values(values)
