"""Cosine k-NN search on faiss-cpu: exhaustive tiles, and an IVF index tuned until its recall is measured high.

Every search runs in tiles of bounded work, each one a ``yield``, so the
generator job above can report progress and honour a cancel between tiles
(tens of milliseconds each on two cores, a few tenths under load).  Tile sizes
depend only on the data's shape, never on timing, so the same input gives the
same graph on every run.  faiss is compiled code: nothing is JIT-compiled, so
the first graph of a process costs no warm-up (pynndescent compiled for ~20 s
in every fresh process).

Inner products of unit rows are cosines.  The rows come as :class:`UnitRows`:
the caller's array and its row norms, normalised tile by tile as each tile is
read, so no normalised copy of the whole input is ever held (at 10⁶ × 128 that
copy was 0.5 GB beside the input).  The IVF index stores its rows as 8-bit
scalar-quantised codes (a quarter of float32) and its candidates are re-ranked
by exact cosines, so the graph's similarities and order are exact for the
neighbours it found.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

#: Multiply-adds per tile: ~0.1 s of BLAS on two idle cores.
TILE_WORK = 2_000_000_000
#: Query rows of an exhaustive tile.  faiss's inner-product search loses ~4× per
#: row below ~1 000 query rows (measured at 50 000 × 384: 64 rows 11 ms/row,
#: 4 096 rows 2.2 ms/row), so tiles split the database instead of the queries.
QUERY_ROWS = 1024
#: Fewest database rows per exhaustive tile (smaller blocks waste the heap updates).
MIN_DB_ROWS = 2048
#: Training rows per IVF list (faiss warns below 39) and the k-means iterations.
TRAIN_PER_LIST = 48
KMEANS_ITERATIONS = 10
#: nprobe values tried, smallest first, until the calibration recall reaches the target.
NPROBE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Most of the lists a search may probe.  Whether probing that many still beats the
#: exhaustive search is measured, not assumed (graph._tune_nprobe): real sentence
#: embeddings need more probes than planted blobs (MiniLM, 20 000 × 384: recall 0.966
#: at 1/8 of the lists, 0.988 at 1/4), and without them a 10⁶-row set would fall back
#: to an exhaustive search of hours.
MAX_PROBE_SHARE = 1 / 2
#: Recall the tuning aims at on its calibration queries (the reported recall is
#: measured afterwards on other queries; the graph's promise is ≥ 0.95).
CALIBRATION_TARGET = 0.97
CALIBRATION_QUERIES = 300
#: Queries whose recall is measured against an exhaustive search and reported.
RECALL_QUERIES = 1000
#: A returned neighbour counts for recall@k when its cosine is within this of
#: the k-th exact cosine (ties count, as in ann-benchmarks).
RECALL_TOLERANCE = 1e-5
#: Candidates beyond the k asked for that the IVF search returns and re-ranks by
#: exact cosine: 8-bit codes blur near-ties (planted 10⁵ × 128, 2 probes, codes
#: per dimension: recall 0.952 with none re-ranked, 0.997 with 4, 1.000 with 8,
#: as the float index).
RERANK_EXTRA = 8
#: ... raised in these steps while the tuning finds that more probes stopped
#: raising recall: the true neighbours are then in the probed lists but lost
#: among near-ties the 8-bit codes cannot order (10⁶ noisy copies of 20 000 real
#: MiniLM rows, PCA-128: recall 0.68 at every probe count with 8 extra, 1.00 at
#: 4 probes with 48).
RERANK_STEPS = (RERANK_EXTRA, 32, 128)
#: A probe step that raises calibration recall by less than this is a plateau.
RECALL_PLATEAU = 0.005
#: Queries re-ranked at once.
RERANK_ROWS = 512
#: Rows whose norms :class:`UnitRows` computes at once.
NORM_ROWS = 65_536
#: Rows :class:`UnitRows` divides at once (its float64 quotients: 8 MB at d = 128).
UNIT_BLOCK_ROWS = 8192


class UnitRows:
    """Rows of ``x`` scaled to unit L2 norm, computed when read: ``u[rows]`` is a float32 C-order array.

    Holds ``x`` (not copied) and its float64 row norms (8 bytes a row).  Any
    selection of rows gives the same bits as :func:`embscope.analysis.graph.unit_rows`
    of the whole array (each row divided by its norm in float64, then rounded
    to float32; zero rows stay zero), so tiles read in any order agree.
    """

    def __init__(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"UnitRows needs an N×d array, got shape {x.shape}")
        self.x = x
        norms = np.empty(x.shape[0], np.float64)
        for s in range(0, x.shape[0], NORM_ROWS):
            norms[s : s + NORM_ROWS] = np.linalg.norm(x[s : s + NORM_ROWS], axis=1)
        self.divisors = np.where(norms > 0, norms, 1.0)

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        """Unit rows selected by a slice or an integer array of any shape (``u[idx]`` of an N×k ``idx`` is N×k×d)."""
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.x.shape[0]))
        rows = np.asarray(rows)
        flat = rows.reshape(-1)
        out = np.empty((flat.size, self.x.shape[1]), np.float32)
        # In blocks: the float64 quotient of a whole selection (a re-ranking gathers
        # ~24 rows per query) would be four times the float32 rows it returns.
        for s in range(0, flat.size, UNIT_BLOCK_ROWS):
            part = flat[s : s + UNIT_BLOCK_ROWS]
            np.divide(self.x[part], self.divisors[part, None], out=out[s : s + UNIT_BLOCK_ROWS], casting="unsafe")
        return out.reshape(*rows.shape, self.x.shape[1])


def default_threads() -> int:
    """Threads faiss uses when none is configured: ``OMP_NUM_THREADS`` if set, else the CPUs this process may use."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_threads(threads: int) -> None:
    """Set faiss's OpenMP thread count for the calling thread (set before every faiss call: a job may hop threads)."""
    import faiss

    faiss.omp_set_num_threads(max(1, int(threads)))


def ivf_list_count(n: int) -> int:
    """Lists of the IVF index: a power of two near 2·√n (≥ 16), and ≥ :data:`TRAIN_PER_LIST` rows per list."""
    target = 2 * np.sqrt(n)
    lists = 1 << max(4, int(round(np.log2(max(target, 1)))))
    return int(max(1, min(lists, n // TRAIN_PER_LIST)))


# --------------------------------------------------------------------------- exhaustive tiles


def exact_search(u: UnitRows | np.ndarray, rows: np.ndarray, k: int, threads: int) -> Generator[float, None, tuple]:
    """Exact top-``k`` inner products of ``u[rows]`` against every row of ``u`` (self included).

    ``u`` is a :class:`UnitRows` (each database block normalised as it is read)
    or an array of unit rows.

    Yields the fraction done after each tile; returns ``(similarities, indices)``,
    each ``len(rows) × k``, best first.  Ties keep the lower index (faiss's heap
    replaces only on a strictly larger value and tiles run in index order).
    """
    import faiss

    n, d = u.shape
    nq = rows.shape[0]
    db_rows = int(max(MIN_DB_ROWS, TILE_WORK // (QUERY_ROWS * d)))
    sims = np.empty((nq, k), np.float32)
    idx = np.empty((nq, k), np.int64)
    n_tiles = -(-nq // QUERY_ROWS) * -(-n // db_rows)
    done = 0
    for q0 in range(0, nq, QUERY_ROWS):
        q = u[rows[q0 : q0 + QUERY_ROWS]]
        heap = faiss.ResultHeap(q.shape[0], k, keep_max=True)
        for b0 in range(0, n, db_rows):
            block = u[b0 : b0 + db_rows]
            use_threads(threads)
            d_block, i_block = faiss.knn(q, block, min(k, block.shape[0]), metric=faiss.METRIC_INNER_PRODUCT)
            heap.add_result(d_block, i_block + b0)
            done += 1
            yield done / n_tiles
        heap.finalize()
        sims[q0 : q0 + q.shape[0]] = heap.D
        idx[q0 : q0 + q.shape[0]] = heap.I
    return sims, idx


# --------------------------------------------------------------------------- IVF


@dataclass
class IvfIndex:
    """A trained and filled ``faiss.IndexIVFScalarQuantizer`` (8-bit codes, inner product) with what it took to build.

    ``quantizer`` is held here because the index only points at it.
    """

    index: object
    quantizer: object
    n_lists: int
    n_train: int


def spherical_kmeans(
    sample: np.ndarray, n_lists: int, threads: int, seed: int = 0
) -> Generator[float, None, np.ndarray]:
    """Spherical k-means centroids (unit rows) of ``sample``, one assignment tile per yield.

    Written here rather than calling ``faiss.Kmeans``: that is one call of
    seconds at 10⁶ rows, which no cancel could interrupt.  Assignment by
    faiss (exhaustive inner product), update by a sparse one-hot product;
    an emptied list is re-seeded with the sample row its centroid fits worst.
    """
    import faiss
    from scipy import sparse

    rng = np.random.default_rng(seed)
    m, d = sample.shape
    centroids = sample[np.sort(rng.choice(m, n_lists, replace=False))].copy()
    rows = int(max(256, TILE_WORK // max(n_lists * d, 1)))
    steps = KMEANS_ITERATIONS * -(-m // rows)
    done = 0
    for _ in range(KMEANS_ITERATIONS):
        sums = np.zeros((n_lists, d), np.float64)
        counts = np.zeros(n_lists, np.int64)
        fit = np.empty(m, np.float32)
        for s in range(0, m, rows):
            chunk = sample[s : s + rows]
            use_threads(threads)
            best, assign = faiss.knn(chunk, centroids, 1, metric=faiss.METRIC_INNER_PRODUCT)
            assign = assign[:, 0]
            fit[s : s + rows] = best[:, 0]
            one_hot = sparse.csr_matrix(
                (np.ones(assign.size, np.float32), (assign, np.arange(assign.size))), shape=(n_lists, assign.size)
            )
            sums += one_hot @ chunk
            counts += np.bincount(assign, minlength=n_lists)
            done += 1
            yield done / steps
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            sums[empty] = sample[np.argsort(fit, kind="stable")[: empty.size]]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return centroids


def build_ivf(u: UnitRows | np.ndarray, threads: int, seed: int = 0) -> Generator[float, None, IvfIndex]:
    """Train (on a seeded sample) and fill an inner-product IVF index of 8-bit codes of the unit rows ``u``.

    Spherical k-means places the lists; the 8-bit scalar quantiser (one
    range for all dimensions, ``QT_8bit_uniform``, trained on the same
    sample's residuals to their list centres) stores each row in ``d`` bytes,
    a quarter of float32: at 10⁶ × 128 the index holds 0.13 GB where a float
    index held 0.5 GB.  One range scans 1.3× faster than one per dimension
    (planted 3·10⁵ × 128, 2 probes: 6.0 against 7.8 CPU-s, the float index
    5.7) and the re-ranking makes up for its coarser codes.  The rows are
    added tile by tile, so no whole normalised copy of the input is made.
    """
    import faiss

    n, d = u.shape
    n_lists = ivf_list_count(n)
    n_train = min(n, TRAIN_PER_LIST * n_lists)
    rng = np.random.default_rng(seed)
    sample = u[np.sort(rng.choice(n, n_train, replace=False))]
    centroids = yield from scaled(spherical_kmeans(sample, n_lists, threads, seed), 0.0, 0.6)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(centroids)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, d, n_lists, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT
    )
    use_threads(threads)
    index.train(sample)  # the quantiser is filled already: this trains the 8-bit codes only
    del sample
    rows = int(max(256, TILE_WORK // max(n_lists * d, 1)))
    for s in range(0, n, rows):
        use_threads(threads)
        index.add(u[s : s + rows])
        yield 0.6 + 0.4 * min(s + rows, n) / n
    return IvfIndex(index=index, quantizer=quantizer, n_lists=n_lists, n_train=n_train)


def ivf_search(
    ivf: IvfIndex,
    u: UnitRows | np.ndarray,
    rows: np.ndarray,
    k: int,
    nprobe: int,
    threads: int,
    extra: int = RERANK_EXTRA,
) -> Generator[float, None, tuple]:
    """Approximate top-``k`` of ``u[rows]`` probing ``nprobe`` lists (self included), tile by tile.

    The index returns ``k + extra`` (default :data:`RERANK_EXTRA`) candidates by their coded
    inner products; they are re-ranked by exact cosines against ``u`` and the
    best ``k`` kept (cosine descending, index ascending), so the similarities
    returned are exact cosines (to float32 rounding).  Queries run grouped by their nearest list (the rows'
    order in the index), so consecutive queries scan the same lists while they
    are in cache (1.3× measured).  Returns ``(similarities, indices)``; missing
    results are -1 with similarity -inf.
    """
    n, d = u.shape
    nq = rows.shape[0]
    ivf.index.nprobe = int(nprobe)
    perm = _list_order(ivf, rows)
    per_query = ivf.n_lists + nprobe * n / ivf.n_lists
    # A scanned vector costs ~3× a BLAS one (18 against 6.2 ns at 384-d, measured): an eighth of a
    # tile's work keeps each chunk shorter than a BLAS tile, so progress and Cancel stay as prompt.
    chunk = int(max(64, TILE_WORK / 8 // max(per_query * d, 1)))
    wanted = min(n, k + extra)
    # Each block gathers its candidates' rows (~6 MB at d = 128 with the default
    # candidates): more candidates, fewer queries per block.
    block = max(16, RERANK_ROWS * (k + RERANK_EXTRA) // max(wanted, 1))
    sims = np.empty((nq, k), np.float32)
    idx = np.empty((nq, k), np.int64)
    for s in range(0, nq, chunk):
        part = perm[s : s + chunk]
        queries = u[rows[part]]
        use_threads(threads)
        _, found = ivf.index.search(queries, wanted)
        for r in range(0, part.size, block):
            sims[part[r : r + block]], idx[part[r : r + block]] = rerank(
                queries[r : r + block], found[r : r + block], u, k
            )
        yield min(s + chunk, nq) / nq
    return sims, idx


def rerank(queries: np.ndarray, candidates: np.ndarray, u: UnitRows | np.ndarray, k: int) -> tuple:
    """The best ``k`` of each query's ``candidates`` (-1: none) by exact cosine, ties by lower index.

    ``queries`` are unit rows.  Returns ``(similarities, indices)``,
    ``len(queries) × k``; a query with fewer than ``k`` candidates gets
    -1 / -inf in the remaining places.  The candidates' raw rows are divided
    by their norms after the product (half the time of normalising the
    gathered rows first); the graph's own similarities are recomputed
    afterwards in one fixed way, so these only choose.
    """
    missing = candidates < 0
    safe = np.where(missing, 0, candidates)
    if isinstance(u, UnitRows):
        cos = np.einsum("id,ikd->ik", queries, u.x[safe]) / u.divisors[safe]
    else:
        cos = np.einsum("id,ikd->ik", queries, u[safe])
    cos[missing] = -np.inf
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, candidates), -cos), axis=-1)[:, :k]
    return np.take_along_axis(cos, order, axis=1).astype(np.float32), np.take_along_axis(candidates, order, axis=1)


def _list_order(ivf: IvfIndex, rows: np.ndarray) -> np.ndarray:
    """Positions of ``rows`` sorted by the IVF list they were filed in (stable)."""
    import faiss

    invlists = ivf.index.invlists
    list_of = np.full(ivf.index.ntotal, ivf.n_lists, np.int64)
    for lst in range(ivf.n_lists):
        size = invlists.list_size(lst)
        if size:
            ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size)
            list_of[np.asarray(ids, np.int64)] = lst
    return np.argsort(list_of[rows], kind="stable")


# --------------------------------------------------------------------------- recall


def recall_at_k(found_sims: np.ndarray, exact_sims: np.ndarray, tolerance: float = RECALL_TOLERANCE) -> float:
    """Mean recall@k of approximate neighbour lists against exact ones, ties counted.

    Parameters
    ----------
    found_sims
        ``q × k`` true cosines of the neighbours a search returned (-inf for a
        missing one).
    exact_sims
        ``q × k`` exact top-k cosines of the same queries, best first.
    tolerance
        A returned neighbour counts when its cosine is at least the k-th exact
        cosine minus this (the ann-benchmarks rule: among tied neighbours any
        choice is right).

    Returns
    -------
    float
        Mean over queries of (neighbours that count) / k.
    """
    k = exact_sims.shape[1]
    kth = exact_sims[:, -1:].astype(np.float64)
    hits = (found_sims.astype(np.float64) >= kth - tolerance).sum(axis=1)
    return float(np.mean(np.minimum(hits, k) / k))


def scaled(gen: Generator[float, None, object], low: float, high: float):
    """Re-yield a sub-step's fractions mapped onto [low, high] of the caller's."""
    while True:
        try:
            fraction = next(gen)
        except StopIteration as stop:
            return stop.value
        yield low + (high - low) * fraction
