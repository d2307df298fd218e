"""benchmarks/corpora.py: WordNet parsing and labels checked against data.noun by hand, caching, stacking."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA_NOUN = Path("/usr/share/wordnet/data.noun")
TINY = 100  # glosses embedded by the build test: MiniLM on 2 shared cores runs ~40 texts/s


def _corpora():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "corpora.py"
    spec = importlib.util.spec_from_file_location("bench_corpora", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw_lines() -> dict[str, str]:
    """data.noun lines by offset, read with plain string operations (independent of the parser)."""
    lines = {}
    with open(DATA_NOUN, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith(" "):
                lines[line[:8]] = line
    return lines


def _first_hypernym(line: str) -> str | None:
    """The target of the first ``@ ... n`` pointer of a data.noun line (``@i`` instance pointers do not count)."""
    tokens = line.split(" | ")[0].split()
    for i, tok in enumerate(tokens):
        if tok == "@" and tokens[i + 2] == "n":
            return tokens[i + 1]
    return None


def test_labels_match_data_noun_by_hand():
    """dog (02084071): entity … organism, animal (depth 6), …, canine, dog; lexicographer file 05.

    Then the first 300 samples, each re-derived from the raw data.noun lines.
    """
    corpora = _corpora()
    ids, texts, labels, parents = corpora.wordnet_samples(size=None)
    assert len(ids) >= 20_000
    i = np.flatnonzero(ids == "02084071")
    assert i.size == 1
    assert labels[i[0]] == "animal"
    assert parents[i[0]] == "noun.animal"
    assert texts[i[0]] == (
        "dog: a member of the genus Canis (probably descended from the common wolf) that has been "
        "domesticated by man since prehistoric times; occurs in many breeds"
    )
    raw = _raw_lines()
    # An instance noun (Aristotle has only an "@i" hypernym) is never a sample.
    aristotle = next(o for o, line in raw.items() if " Aristotle " in line and " @i " in line)
    assert aristotle not in set(ids.tolist())

    # The stored order is the seeded draw: a smaller size is a prefix of the larger one.
    small_ids, *_ = corpora.wordnet_samples(size=300)
    np.testing.assert_array_equal(small_ids, ids[:300])
    lexnames = {5: "noun.animal", 6: "noun.artifact", 18: "noun.person", 4: "noun.act", 9: "noun.cognition"}
    for offset, label, parent in zip(ids[:300], labels[:300], parents[:300], strict=True):
        chain = [offset]
        while (up := _first_hypernym(raw[chain[-1]])) is not None:
            chain.append(up)
        chain.reverse()
        assert chain[0] == "00001740"  # entity
        assert len(chain) > corpora.LEAF_DEPTH + 1
        ancestor = chain[corpora.LEAF_DEPTH]
        lemma = raw[ancestor].split()[4].replace("_", " ")
        assert label in (lemma, f"{lemma} ({ancestor})")
        lexfile = int(raw[offset].split()[1])
        if lexfile in lexnames:
            assert parent == lexnames[lexfile]
        assert parent.startswith("noun.")


def test_tiny_build_is_cached_under_embscope_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    corpora = _corpora()
    vectors, labels, parents, description = corpora.load_corpus("wordnet", size=TINY)
    assert vectors.shape == (TINY, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    ids, _texts, want_labels, want_parents = corpora.wordnet_samples(size=TINY)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(parents, want_parents)
    assert "MiniLM" in description and "depth 6" in description
    assert list((tmp_path / "cache" / "corpora").glob("wordnet-*.npz"))

    # Same-lexfile pairs are closer than cross-lexfile pairs on average: the vectors are real embeddings.
    sims = vectors @ vectors.T
    same = parents[:, None] == parents[None, :]
    off = ~np.eye(TINY, dtype=bool)
    assert sims[same & off].mean() > sims[~same].mean() + 0.02

    # The second load reads the cache: embedding again would fail here.
    def no_embedding(*_a, **_k):
        raise AssertionError("embedded again")

    monkeypatch.setattr(corpora, "embed_minilm", no_embedding)
    again, *_ = corpora.load_corpus("wordnet", n=40, size=TINY)
    np.testing.assert_array_equal(again, vectors[:40])
    with pytest.raises(ValueError, match="stacked"):
        corpora.load_corpus("wordnet", n=TINY + 1, size=TINY)

    stacked, s_labels, s_parents, s_desc = corpora.load_corpus("wordnet-stacked", n=3 * TINY + 7, size=TINY)
    assert stacked.shape == (3 * TINY + 7, 384) and "STACKED" in s_desc
    np.testing.assert_array_equal(stacked[:TINY], vectors)
    src = np.arange(3 * TINY + 7) % TINY
    np.testing.assert_array_equal(s_labels, labels[src])
    np.testing.assert_array_equal(s_parents, parents[src])
    copies = stacked[TINY:]
    np.testing.assert_allclose(np.linalg.norm(copies, axis=1), 1.0, atol=1e-4)
    drift = np.linalg.norm(copies - vectors[src[TINY:]], axis=1)
    assert 0.05 < drift.mean() < 0.15  # noise of norm 0.1, then re-normalised
    assert not np.allclose(copies[:TINY], vectors)


def test_fashion_features_are_the_demo_model(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    corpora = _corpora()
    vectors, labels, parents, _ = corpora.load_corpus("fashion")
    assert vectors.shape == (70_000, 64)
    assert sorted(set(parents.tolist())) == ["bags", "bottoms", "footwear", "tops"]
    assert (labels == "Trouser").sum() == 7_000  # Fashion-MNIST is balanced: 6 000 train + 1 000 test per class
    test = slice(60_000, None)
    # The bundled validation images are test images: the same model gives the same features for them.
    demo = np.load(corpora.REPO / "resources" / "demo" / "fashion_val.npy")
    first = demo[:1]
    td = corpora._train_demo()
    images, _ = td.load_fashion("t10k")
    row = int(np.flatnonzero((images == first).all(axis=1))[0])  # where the bundled image sits in the test split
    dm = td.load_demo_model_module()
    model = dm.build_model()
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(td.DEMO / "healthy.safetensors")))
    fresh = td.embed_and_predict(model, first)[0][0]
    assert np.allclose(vectors[test][row], fresh, atol=1e-5)
    # The healthy model reaches 88 % accuracy: its features separate the classes far above chance (0.1).
    classes = np.unique(labels)
    v, y = vectors[test], labels[test]
    centroids = np.stack([v[y == c].mean(0) for c in classes])
    pred = classes[np.argmin(((v[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
    assert (pred == y).mean() > 0.6
