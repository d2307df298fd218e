"""``embscope map SOURCE --out DIR [--knn K] [--method umap|pca]``: 2-D layouts as .npy.

Writes ``layout_pca.npy`` always (it is instant) and ``layout_umap.npy`` with
``--method umap`` (the default); both are N×2 float32, rows in input order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from embscope.errors import BadInputError


def _vectors_2d(emb):
    """Pooled N×d as is; a concept set (N×C×d) is mapped by its per-sample mean."""
    if emb.kind == "pooled":
        return emb.vectors
    return emb.vectors.mean(axis=1)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from embscope.commands.analyze import run_with_progress
    from embscope.options import settings_from_args
    from embscope.tasks.analyze import AnalyzeRequest, load_source
    from embscope.tasks.graph_cache import build_knn_graph
    from embscope.tasks.layout import pca_layout_cached, umap_layout_job

    settings = settings_from_args(args)
    k = settings.knn
    if k is not None and k < 2:  # UMAP needs neighbours: stricter than the k-NN graph's own minimum
        raise BadInputError(f"--knn must be at least 2, got {k}")
    from embscope.tasks.report import OutputSet, check_output_dir

    out = check_output_dir(args.out)
    # The same loading as `analyze`: embeddings files, or extraction from a checkpoint.
    emb, _ = run_with_progress(load_source(AnalyzeRequest(args.source, settings)))
    x = _vectors_2d(emb)
    if not np.ptp(x, axis=0).any():  # every sample the same point: any layout would be noise
        what = "all zero" if not x.any() else "the same vector"
        raise BadInputError(
            f"all {x.shape[0]} vectors of {Path(args.source).name} are {what}: there is nothing to lay out "
            "(`embscope analyze` reports this as collapsed_to_point)"
        )
    for note in emb.notes:  # after the last input check: bad input is one line on stderr
        print(f"note: {note}", file=sys.stderr)

    pca = pca_layout_cached(x)
    layouts = {"layout_pca.npy": pca}
    if args.method == "umap":
        graph = run_with_progress(build_knn_graph(x, k, device=settings.load.device))
        layouts["layout_umap.npy"] = run_with_progress(
            umap_layout_job(graph, x, n_neighbors=min(graph.k + 1, x.shape[0] - 1))
        )
    # Both layouts or neither: a failed UMAP leaves the previous set, not a lone PCA.
    with OutputSet(out) as staging:
        for name, layout in layouts.items():
            np.save(staging / name, layout)
    for name in layouts:
        print(out / name)
    return 0
