"""Find samples by label, id, text or any other column of the input: a row mask the map highlights.

Substring search is case-insensitive by default; a regular expression is an
option (an invalid one is a one-line :class:`~embscope.errors.BadInputError`).
:class:`SearchIndex` folds the case of each searchable column once, on its
first search (≈ 1 s per 10⁶ texts, on a worker) and keeps it, so
each query is one vectorised ``np.strings.find`` per column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embscope.errors import BadInputError
from embscope.tasks.progress import CancelToken, Job, Progress

#: Searchable columns: name shown to the user → EmbeddingSet field.
SEARCH_FIELDS = {"label": "labels", "parent": "parents", "prediction": "predictions", "id": "ids", "text": "texts"}
#: Rows matched per chunk by a regular expression (a Python loop): cancel between chunks.
REGEX_CHUNK = 100_000


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Rows matching one query.

    Attributes
    ----------
    query, fields, regex
        What was searched for, in which columns, and whether as a regular expression.
    mask
        Boolean, length N: the sample matches in at least one searched column.
    hits_per_field
        Matching samples per searched column.
    """

    query: str
    fields: tuple[str, ...]
    regex: bool
    mask: np.ndarray

    hits_per_field: dict[str, int]

    @property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.mask)

    @property
    def n_hits(self) -> int:
        return int(np.count_nonzero(self.mask))

    def describe(self) -> str:
        """One line: "12 matches for “bird” (label 10, text 4)"."""
        if not self.query:
            return ""
        parts = ", ".join(f"{name} {n:,}" for name, n in self.hits_per_field.items() if n)
        noun = "match" if self.n_hits == 1 else "matches"
        return f"{self.n_hits:,} {noun} for “{self.query}”" + (f" ({parts})" if parts else "")


class SearchIndex:
    """The searchable columns of one EmbeddingSet: original and lower-cased string arrays."""

    def __init__(self, embeddings) -> None:
        self.n_samples = embeddings.n_samples
        self.columns: dict[str, np.ndarray] = {}
        self._folded: dict[str, np.ndarray] = {}
        for name, attr in SEARCH_FIELDS.items():
            values = getattr(embeddings, attr)
            if values is not None:
                self.columns[name] = np.asarray(values).astype(str)
        for name, values in embeddings.extra_columns.items():  # the input's other columns, by their own names
            self.columns.setdefault(name, np.asarray(values).astype(str))

    def folded(self, name: str) -> np.ndarray:
        """Column ``name`` lower-cased, made on first use (≈ 1 s per column of 10⁶ texts) and kept."""
        if name not in self._folded:
            self._folded[name] = np.strings.lower(self.columns[name])
        return self._folded[name]

    @staticmethod
    def available_fields(embeddings) -> list[str]:
        """Searchable columns ``embeddings`` has, without indexing them (the input's other columns last)."""
        known = [name for name, attr in SEARCH_FIELDS.items() if getattr(embeddings, attr) is not None]
        return known + [name for name in embeddings.extra_columns if name not in known]

    @property
    def fields(self) -> tuple[str, ...]:
        """Columns this data has, in :data:`SEARCH_FIELDS` order."""
        return tuple(self.columns)

    def search(
        self,
        query: str,
        fields: tuple[str, ...] | None = None,
        *,
        regex: bool = False,
        case_sensitive: bool = False,
        cancel: CancelToken | None = None,
    ) -> SearchResult:
        """Rows whose ``fields`` (default: all) contain ``query`` (or match it as a regular expression).

        An empty query matches nothing.
        """
        fields = self.fields if fields is None else tuple(fields)
        unknown = [f for f in fields if f not in self.columns]
        if unknown:
            raise BadInputError(f"the data has no {unknown[0]} column to search")
        mask = np.zeros(self.n_samples, dtype=bool)
        hits: dict[str, int] = {}
        if not query:
            return SearchResult(query, fields, regex, mask, {f: 0 for f in fields})
        pattern = compile_pattern(query, case_sensitive) if regex else None
        for name in fields:
            if pattern is not None:
                found = self._regex_mask(pattern, self.columns[name], cancel)
            elif case_sensitive or query.lower() == query.upper():  # nothing to fold in "4242"
                found = np.strings.find(self.columns[name], query) >= 0
            else:
                found = np.strings.find(self.folded(name), query.lower()) >= 0
            hits[name] = int(np.count_nonzero(found))
            mask |= found
        return SearchResult(query, fields, regex, mask, hits)

    @staticmethod
    def _regex_mask(pattern: re.Pattern, column: np.ndarray, cancel: CancelToken | None) -> np.ndarray:
        out = np.zeros(len(column), dtype=bool)
        search = pattern.search
        for start in range(0, len(column), REGEX_CHUNK):
            if cancel is not None:
                cancel.raise_if_cancelled()
            part = column[start : start + REGEX_CHUNK].tolist()
            out[start : start + len(part)] = [search(s) is not None for s in part]
        return out


def compile_pattern(query: str, case_sensitive: bool = False) -> re.Pattern:
    """``query`` as a regular expression, or a one-line error saying where it is malformed."""
    try:
        return re.compile(query, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise BadInputError(f"not a valid regular expression: {exc.msg}{where}") from None


def search_job(
    index: SearchIndex | None,
    embeddings,
    query: str,
    fields: tuple[str, ...] | None = None,
    *,
    regex: bool = False,
    case_sensitive: bool = False,
) -> Callable[[CancelToken], Job[tuple[SearchIndex, SearchResult]]]:
    """``make_job(cancel)`` returning (index, result); builds the index first when ``index`` is None."""

    def make(cancel: CancelToken) -> Job[tuple[SearchIndex, SearchResult]]:
        built = index
        if built is None:
            yield Progress("indexing for search", None)
            built = SearchIndex(embeddings)
        cancel.raise_if_cancelled()
        yield Progress(f"searching “{query}”", None)
        return built, built.search(query, fields, regex=regex, case_sensitive=case_sensitive, cancel=cancel)

    return make
