"""Weight inspection with no data: norms, spectra of 2-D weights, embedding tables, dead heads and channels.

Seed 000 §3 localises a collapse by reading the checkpoint's weight norms and
looking for dead attention heads; seed 001 reads an embedding table's effective
rank against 0.3·min(V, d) and counts rows with norm < 0.01 (unused tokens).
A normalisation layer whose gain is ~0 on a channel outputs the same value
there for every input (its bias): that channel is dead in the weights, and an
embedding read at or after that layer shows it as a collapsed dimension.  The
real all-MiniLM-L6-v2 has three such channels in its last LayerNorm (127, 223,
319: gains ~5e-33), which is why its embeddings have 3 collapsed dimensions
whatever the data; :func:`dead_channel_evidence` says so next to the verdict.
State dicts come in as name → tensor (torch or numpy); loading them safely is
``embscope.sources.checkpoints.load_state_dict_safely``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from embscope.analysis.spectrum import effective_rank
from embscope.formatting import counted, listed

EMBEDDING_ROW_NORM = 0.01  # seed 001: rows below this are effectively unused tokens
EMBEDDING_RANK_FRACTION = 0.3  # seed 001: r_eff < 0.3·min(V, d) is collapse
ZERO_NORM = 1e-8
DEAD_HEAD_RELATIVE = 0.01  # a head this much weaker than the median head is dead
DEAD_GAIN_RELATIVE = 0.01  # a normalisation gain this much smaller than the median |gain| is dead
MAX_LISTED_ROWS = 50
MAX_LISTED_CHANNELS = 8  # channel indices spelt out in a sentence
MAX_NAMED_TENSORS = 3  # tensor names spelt out in the headline (all-zero, non-finite)
SUMMARY_SINGULAR_VALUES = 32

_EMBED_NAME = re.compile(r"(embed|wte|wpe|tok_emb|token_emb|word_emb)", re.IGNORECASE)
# Output projections of attention blocks, whose input columns are split by head.
_OUT_PROJ = re.compile(
    r"(attention\.output\.dense|self_attn\.o_proj|attn\.o_proj|\.o_proj|out_proj|attention\.dense"
    r"|SelfAttention\.o|EncDecAttention\.o|attn\.c_proj|attn\.proj|attention\.wo|attn\.out)\.weight$"
)
# Gains of normalisation layers, by their module's own name: LayerNorm, layer_norm,
# input_layernorm, RMSNorm, norm1, final_layer_norm, GPT-2's ln_1/ln_f, BatchNorm's bn1.
_NORM_MODULE = re.compile(r"(norm|^ln(_\w+)?$|^bn\d*$)", re.IGNORECASE)


#: How a status reads in a table (report.md and the Weights panel): a buffer is listed, but it is not a weight.
STATUS_WORDS = {"buffer": "integer buffer", "nonfinite": "non-finite"}


@dataclass(frozen=True)
class ParameterNorm:
    """Frobenius norm of one parameter, its RMS, and a status (``ok``/``zero``/``nonfinite``, or
    ``buffer`` for an integer or boolean tensor: listed, not counted as a weight)."""

    name: str
    shape: tuple[int, ...]
    norm: float
    rms: float
    status: str

    @property
    def status_text(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)


@dataclass(frozen=True, eq=False)
class MatrixSpectrum:
    """Singular spectrum of a 2-D weight with its effective and stable rank."""

    name: str
    shape: tuple[int, int]
    singular_values: np.ndarray
    effective_rank: float
    stable_rank: float


@dataclass(frozen=True, eq=False)
class EmbeddingTable:
    """An embedding table's dead rows and rank against seed 001's threshold."""

    name: str
    shape: tuple[int, int]
    small_rows: np.ndarray  # indices of rows with norm < EMBEDDING_ROW_NORM
    effective_rank: float
    rank_threshold: float
    collapsed: bool | None  # None: not judged (position/segment tables are low-rank by design)
    role: str = "token"


@dataclass(frozen=True, eq=False)
class AttentionHeads:
    """Per-head norms of an attention output projection and which heads are dead."""

    name: str
    num_heads: int
    head_norms: np.ndarray
    dead: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class NormGains:
    """A normalisation layer's gain vector and its dead channels (gain ~0: constant output there)."""

    name: str
    size: int
    dead: np.ndarray  # channel indices whose |gain| is below DEAD_GAIN_RELATIVE of the median


@dataclass(frozen=True, eq=False)
class WeightsReport:
    """Everything :func:`inspect_weights` found."""

    parameters: tuple[ParameterNorm, ...]
    matrices: tuple[MatrixSpectrum, ...]
    embeddings: tuple[EmbeddingTable, ...]
    attention: tuple[AttentionHeads, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    norm_gains: tuple[NormGains, ...] = field(default_factory=tuple)
    #: L2 norm of all floating-point parameters together (integer buffers such as position ids
    #: left out): over a series of checkpoints, its blow-up often precedes a divergence (seed 003).
    total_norm: float = 0.0

    @property
    def n_parameters(self) -> int:
        """Weights only: an integer buffer (BERT's ``position_ids``) is listed but is not a parameter."""
        return int(sum(int(np.prod(p.shape)) for p in self.parameters if p.status != "buffer"))

    def summary_line(self) -> str:
        """``104 tensors, 22,713,216 parameters (L2 norm 280.2) and 1 integer buffer; 1 all-zero tensor
        (pooler.dense.bias); 0 non-finite; …``: the headline of the CLI, report.md and the Weights panel."""
        buffers = sum(p.status == "buffer" for p in self.parameters)
        zero = [p.name for p in self.parameters if p.status == "zero"]
        nonfinite = [p.name for p in self.parameters if p.status == "nonfinite"]

        def named(names: list[str]) -> str:
            return f" ({listed(names, MAX_NAMED_TENSORS)})" if names else ""

        return (
            f"{len(self.parameters)} tensors, {self.n_parameters:,} parameters (L2 norm {self.total_norm:.4g})"
            + (f" and {counted(buffers, 'integer buffer')}" if buffers else "")
            + f"; {counted(len(zero), 'all-zero tensor')}{named(zero)}; {len(nonfinite)} non-finite{named(nonfinite)}"
            + f"; {counted(self.dead_heads, 'dead attention head')}"
            + f"; {counted(self.dead_channel_count, 'dead normalisation channel')}"
        )

    @property
    def dead_heads(self) -> int:
        return sum(len(a.dead) for a in self.attention)

    @property
    def dead_channel_count(self) -> int:
        return sum(len(g.dead) for g in self.norm_gains)

    @property
    def dead_channels(self) -> tuple[NormGains, ...]:
        """The normalisation layers with at least one dead channel, in state-dict order."""
        return tuple(g for g in self.norm_gains if len(g.dead))

    def to_summary(self) -> dict:
        """JSON-able dict for ``summary.json["weights"]``."""
        return {
            "n_tensors": len(self.parameters),
            "n_parameters": self.n_parameters,
            "total_norm": _finite_or_none(self.total_norm),
            "parameters": [
                {
                    "name": p.name,
                    "shape": list(p.shape),
                    "norm": _finite_or_none(p.norm),
                    "rms": _finite_or_none(p.rms),
                    "status": p.status,
                }
                for p in self.parameters
            ],
            "matrices": [
                {
                    "name": m.name,
                    "shape": list(m.shape),
                    "effective_rank": m.effective_rank,
                    "stable_rank": m.stable_rank,
                    "singular_values": [float(s) for s in m.singular_values[:SUMMARY_SINGULAR_VALUES]],
                }
                for m in self.matrices
            ],
            "embeddings": [
                {
                    "name": e.name,
                    "shape": list(e.shape),
                    "rows_below_0.01": len(e.small_rows),
                    "small_rows": [int(i) for i in e.small_rows[:MAX_LISTED_ROWS]],
                    "effective_rank": e.effective_rank,
                    "rank_threshold": e.rank_threshold,
                    "collapsed": e.collapsed,
                    "role": e.role,
                }
                for e in self.embeddings
            ],
            "attention": [
                {
                    "name": a.name,
                    "num_heads": a.num_heads,
                    "head_norms": [float(x) for x in a.head_norms],
                    "dead_heads": list(a.dead),
                }
                for a in self.attention
            ],
            "dead_heads": self.dead_heads,
            "dead_norm_channels": [
                {
                    "name": g.name,
                    "size": g.size,
                    "count": len(g.dead),
                    "channels": [int(c) for c in g.dead[:MAX_LISTED_ROWS]],
                }
                for g in self.dead_channels
            ],
            "collapsed_embeddings": [e.name for e in self.embeddings if e.collapsed],
            "zero_parameters": [p.name for p in self.parameters if p.status == "zero"],
            "nonfinite_parameters": [p.name for p in self.parameters if p.status == "nonfinite"],
            "notes": list(self.notes),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Full singular spectra, keyed ``weights/sv/<name>``: what ``arrays.npz`` holds for a checkpoint."""
        return {f"weights/sv/{m.name}": m.singular_values for m in self.matrices}

    def headline_lines(self) -> list[str]:
        """The findings in plain text, one per line (what ``embscope weights`` prints)."""
        lines = [self.summary_line() + "."]
        lines += [f"  {line[2:]}".replace("`", "").replace("**", "") for line in self._finding_lines()]
        return lines

    def markdown_lines(self) -> list[str]:
        """The weights section of ``report.md``."""
        lines = ["## Weights", "", self.headline_lines()[0], "", *self._finding_lines()]
        lines += ["", "| Parameter | Shape | Norm | Eff. rank | Stable rank | Status |", "|---|---|---|---|---|---|"]
        ranks = {m.name: m for m in self.matrices}
        for p in self.parameters:
            m = ranks.get(p.name)
            eff = f"{m.effective_rank:.1f}" if m else ""
            stable = f"{m.stable_rank:.2f}" if m else ""
            shape = "×".join(str(s) for s in p.shape) or "scalar"
            lines.append(f"| {p.name} | {shape} | {p.norm:.4g} | {eff} | {stable} | {p.status_text} |")
        lines.append("")
        return lines

    def _finding_lines(self) -> list[str]:
        """Markdown bullets: embedding tables, dead heads, dead channels, notes."""
        lines = []
        for e in self.embeddings:
            verdict = {True: "collapsed", False: "healthy", None: f"not judged ({e.role} table)"}[e.collapsed]
            lines.append(
                f"- Embedding table `{e.name}` {e.shape[0]}×{e.shape[1]}: effective rank {e.effective_rank:.1f} "
                f"vs 0.3·min(V, d) = {e.rank_threshold:.1f} → **{verdict}**; "
                f"{len(e.small_rows)} rows with norm < {EMBEDDING_ROW_NORM}."
            )
        for a in self.attention:
            if a.dead:
                lines.append(f"- `{a.name}`: dead heads {', '.join(str(h) for h in a.dead)} of {a.num_heads}.")
        for g in self.dead_channels:
            lines.append(f"- `{g.name}`: {dead_channels_text(g)}.")
        for note in self.notes:
            lines.append(f"- {note}")
        return lines


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a non-finite norm is written as null (its status says why)."""
    return float(value) if np.isfinite(value) else None


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values (descending, float64) of a 2-D matrix.

    Through the smaller Gram matrix with float64 accumulation (the design's
    fast accurate route): a 30k×384 embedding table costs one 384×384 ``eigh``.
    """
    w = np.asarray(matrix, dtype=np.float64)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    eigenvalues = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.clip(eigenvalues, 0.0, None))


def stable_rank(singular: np.ndarray) -> float:
    """‖W‖_F² / σ₁² (0.0 for a zero matrix)."""
    s = np.asarray(singular, dtype=np.float64)
    if s.size == 0 or s[0] <= 0:
        return 0.0
    return float((s**2).sum() / s[0] ** 2)


def is_embedding_table(name: str, shape: tuple[int, ...], has_bias: bool = False) -> bool:
    """An embedding table by name (``*embed*``, ``wte``…) or by shape (V×d with V large).

    ``has_bias``: the state dict also holds ``<prefix>.bias`` for this ``<prefix>.weight``.  An
    ``nn.Embedding`` has no bias, so such a weight belongs to a layer (a Linear named ``embed``,
    as in the demo model), whatever its name or shape.
    """
    if len(shape) != 2 or has_bias:
        return False
    if _EMBED_NAME.search(name) and "norm" not in name.lower():
        return True
    rows, cols = shape
    return rows >= 1000 and rows >= 8 * cols


def _bias_name(weight_name: str) -> str | None:
    """``x.bias`` for ``x.weight`` (None for other names): the parameter a layer with a bias has beside it."""
    if weight_name == "weight" or weight_name.endswith(".weight"):
        return weight_name[: -len("weight")] + "bias"
    return None


def embedding_role(name: str, shape: tuple[int, ...]) -> str:
    """``token`` (vocabulary table, judged by seed 001), ``position`` or ``segment``.

    Learned position tables are smooth in the position index and so low-rank
    by design; segment (token-type) tables have a handful of rows.  Neither is
    judged for collapse.
    """
    lowered = name.lower()
    if "position" in lowered or "wpe" in lowered or re.search(r"\bpos_", lowered):
        return "position"
    if "token_type" in lowered or "segment" in lowered or shape[0] < 16:
        return "segment"
    return "token"


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    tensor = value.detach().cpu()
    # bfloat16/float16 have no (or a lossy) numpy form for the maths below.
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy()


def head_norms(weight: np.ndarray, num_heads: int, heads_on_rows: bool = False) -> np.ndarray:
    """Frobenius norm of each head's slice of an attention output projection.

    A ``Linear`` output projection has weight ``out × (heads·head_dim)``: head h
    owns input columns ``h·head_dim … (h+1)·head_dim``.  GPT-2's ``Conv1D``
    stores the transpose (``heads_on_rows=True``).
    """
    w = np.asarray(weight, dtype=np.float64)
    if heads_on_rows:
        w = w.T
    if w.shape[1] % num_heads:
        raise ValueError(f"{w.shape[1]} input features do not split into {num_heads} heads")
    per_head = w.reshape(w.shape[0], num_heads, -1)
    return np.sqrt((per_head**2).sum(axis=(0, 2)))


def dead_heads(norms: np.ndarray) -> tuple[int, ...]:
    """Heads whose slice norm is ~zero: below 1 % of the median head (or absolutely ~0)."""
    norms = np.asarray(norms, dtype=np.float64)
    limit = max(ZERO_NORM, DEAD_HEAD_RELATIVE * float(np.median(norms)))
    return tuple(int(h) for h in np.flatnonzero(norms < limit))


def is_norm_gain(name: str, shape: tuple[int, ...]) -> bool:
    """Whether ``name`` is the 1-D gain (``weight``) of a normalisation layer."""
    if len(shape) != 1 or not name.endswith(".weight"):
        return False
    module = name[: -len(".weight")].rsplit(".", 1)[-1]
    return bool(_NORM_MODULE.search(module))


def dead_gains(gain: np.ndarray) -> np.ndarray:
    """Channels whose |gain| is below 1 % of the median |gain| (or absolutely ~0), as with dead heads."""
    magnitude = np.abs(np.asarray(gain, dtype=np.float64))
    limit = max(ZERO_NORM, DEAD_GAIN_RELATIVE * float(np.median(magnitude)))
    return np.flatnonzero(magnitude < limit)


def dead_channels_text(gains: NormGains) -> str:
    """ "3 of 384 gains ≈ 0 (channels 127, 223, 319): the layer outputs a constant there"."""
    return (
        f"{len(gains.dead)} of {gains.size} gains ≈ 0 (channel{'s' if len(gains.dead) != 1 else ''} "
        f"{listed(gains.dead, MAX_LISTED_CHANNELS)}): the layer outputs a constant there"
    )


def _norm_gains(name: str, array: np.ndarray) -> NormGains | None:
    """``array``'s dead channels when it is a finite normalisation gain, else None."""
    if array.dtype.kind != "f" or not array.size or not is_norm_gain(name, array.shape):
        return None
    return NormGains(name, int(array.size), dead_gains(array)) if np.isfinite(array).all() else None


def norm_gains_of(state_dict: dict) -> WeightsReport:
    """Only the normalisation gains of a state dict (no norms, no spectra): what
    :func:`dead_channel_evidence` needs, cheaply, for a model already in memory."""
    gains = []
    for name, value in state_dict.items():
        found = _norm_gains(name, _to_numpy(value))
        if found is not None:
            gains.append(found)
    return WeightsReport((), (), (), (), (), tuple(gains))


def dead_channel_evidence(collapsed: np.ndarray, dim: int, weights: WeightsReport | None) -> str | None:
    """Why some collapsed dimensions are collapsed, when the weights say so; else None.

    ``collapsed`` holds the indices of the embedding's collapsed dimensions and
    ``dim`` its width.  A normalisation layer of that width whose dead channels
    include some of them explains those: the layer writes the same value there
    for every input, so no data can spread them.  Of several such layers the
    one covering most of them is named, the last in the state dict on a tie
    (nearest the output).  Only exact channel matches count, so a layer of
    another width, or an embedding read before that layer, is not blamed.
    """
    collapsed = np.asarray(collapsed, dtype=np.int64)
    if weights is None or collapsed.size == 0:
        return None
    best, best_hits = None, np.zeros(0, dtype=np.int64)
    for gains in weights.dead_channels:
        if gains.size != dim:
            continue
        hits = np.intersect1d(collapsed, gains.dead)
        if hits.size and hits.size >= best_hits.size:
            best, best_hits = gains, hits
    if best is None:
        return None
    text = (
        f"{best_hits.size} of {collapsed.size} collapsed dimension{'s' if collapsed.size != 1 else ''}"
        f" ({listed(best_hits, MAX_LISTED_CHANNELS)}) {'are' if best_hits.size != 1 else 'is'} dead in the weights:"
        f" {best.name} has gain ≈ 0 there, so every input gets the same value"
    )
    if best.dead.size > best_hits.size:
        # A later rescaling (a sentence model's L2 Normalize) lets a dead channel's constant vary with the
        # vector's norm, so it need not read as collapsed: 288 dead gains showed as 22 collapsed dimensions.
        text += (
            f"; {best.dead.size} of its {dim} gains are ≈ 0 in all (the others still vary here, e.g. through"
            " a later normalisation)"
        )
    return text


def inspect_weights(state_dict: dict, *, num_heads: int | None = None, cancel=None) -> WeightsReport:
    """Inspect a state dict with no data.

    Parameters
    ----------
    state_dict
        Parameter name → tensor (torch or numpy).
    num_heads
        Attention heads per layer (``config.num_attention_heads``); when
        unknown, a head size of 64 is assumed and said so in the notes.
    cancel
        Optional ``CancelToken`` checked between parameters.

    Returns
    -------
    WeightsReport
        Norm table, spectra of 2-D weights, embedding-table checks (seed 001),
        dead attention heads (seed 000 §3) and dead normalisation channels.
    """
    parameters, matrices, embeddings, attention, norm_gains = [], [], [], [], []
    total_sq = 0.0
    notes: list[str] = []
    assumed_heads = False
    for name, value in state_dict.items():
        if cancel is not None:
            cancel.raise_if_cancelled()
        array = _to_numpy(value)
        finite = bool(np.isfinite(array).all())
        norm = float(np.linalg.norm(array.astype(np.float64).ravel())) if finite else float("nan")
        rms = norm / np.sqrt(array.size) if array.size and finite else 0.0
        if array.dtype.kind not in "fc":
            status = "buffer"  # integer ids (position_ids) or masks: listed, not a weight
        else:
            status = "nonfinite" if not finite else ("zero" if norm < ZERO_NORM else "ok")
        parameters.append(ParameterNorm(name, tuple(int(s) for s in array.shape), norm, float(rms), status))
        if array.dtype.kind == "f":
            total_sq += norm * norm  # NaN once any float parameter is non-finite: the total is then unknown
        gains = _norm_gains(name, array) if finite else None
        if gains is not None:
            norm_gains.append(gains)
        if array.ndim != 2 or not finite or min(array.shape) == 0 or array.dtype.kind != "f":
            continue  # integer buffers (position ids) are not weights
        sv = singular_values(array)
        matrix = MatrixSpectrum(name, tuple(array.shape), sv, effective_rank(sv), stable_rank(sv))
        matrices.append(matrix)
        if is_embedding_table(name, array.shape, has_bias=_bias_name(name) in state_dict):
            row_norms = np.linalg.norm(array.astype(np.float64), axis=1)
            threshold = EMBEDDING_RANK_FRACTION * min(array.shape)
            role = embedding_role(name, array.shape)
            embeddings.append(
                EmbeddingTable(
                    name=name,
                    shape=tuple(array.shape),
                    small_rows=np.flatnonzero(row_norms < EMBEDDING_ROW_NORM),
                    effective_rank=matrix.effective_rank,
                    rank_threshold=threshold,
                    collapsed=(matrix.effective_rank < threshold) if role == "token" else None,
                    role=role,
                )
            )
        if _OUT_PROJ.search(name):
            on_rows = name.endswith("c_proj.weight")  # GPT-2 Conv1D: in × out
            features = array.shape[0] if on_rows else array.shape[1]
            heads = num_heads
            if heads is None:
                if features % 64:
                    continue
                heads = features // 64
                assumed_heads = True
            if features % heads:
                notes.append(f"{name}: {features} features do not split into {heads} heads; heads not checked")
                continue
            norms = head_norms(array, heads, heads_on_rows=on_rows)
            attention.append(AttentionHeads(name, heads, norms, dead_heads(norms)))
    if assumed_heads:
        notes.append("head count unknown: assumed 64-dimensional heads for the dead-head check")
    return WeightsReport(
        tuple(parameters),
        tuple(matrices),
        tuple(embeddings),
        tuple(attention),
        tuple(notes),
        tuple(norm_gains),
        float(np.sqrt(total_sq)),
    )
