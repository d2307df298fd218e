"""The extraction engine on the real MiniLM folder and on tiny models built here."""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from embscope.errors import BadInputError, Cancelled
from embscope.options import LoadSettings
from embscope.sources.checkpoints import open_checkpoint
from embscope.sources.data_files import DataSet
from embscope.sources.extraction import extract, pool
from embscope.tasks.extract import ExtractRequest, extract_job, extraction_text
from embscope.tasks.progress import CancelToken, run_job
from helpers_checkpoints import make_tiny_bert, minilm_path, write_factory

TEXTS = [
    "A cat sat on the mat.",
    "The stock market fell sharply on Tuesday after the central bank raised interest rates.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "hi",
    "Where is the nearest train station?",
    "The mitochondria is the powerhouse of the cell.",
    "She plays the violin beautifully, although she only started two years ago.",
    "Quantum computers exploit superposition and entanglement.",
    "I would like a large coffee with oat milk, please.",
    "The Treaty of Westphalia in 1648 ended the Thirty Years' War.",
    "Dogs are loyal companions.",
    "Rain is expected over the weekend in the northern regions.",
    "Compile the code with optimisations enabled before benchmarking it.",
    "An apple a day keeps the doctor away.",
    "The goalkeeper saved a penalty in the final minute of extra time.",
    "Café prices in Paris rose by 12% — naïve tourists did not notice.",
    "Mount Everest is the highest mountain above sea level.",
    "ok",
    "Neural networks can collapse to a single point when trained with a learning rate that is far too high.",
    "The library closes at nine o'clock on weekdays.",
]


def _write_texts(path, texts=TEXTS):
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def _run(gen):
    return run_job(gen)


def _cosine_rows(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def minilm_st_reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    return model.encode(TEXTS, convert_to_numpy=True, batch_size=8)


@pytest.mark.slow
def test_minilm_mean_pooling_matches_sentence_transformers(tmp_path, minilm_st_reference):
    request = ExtractRequest.of(
        checkpoint=str(minilm_path()),
        data=str(_write_texts(tmp_path / "t.txt")),
        device="cpu",
        batch_size=6,
        use_cache=False,
    )
    embeddings = run_job(extract_job(request))
    assert embeddings.vectors.shape == (len(TEXTS), 384)
    assert embeddings.vectors.dtype == np.float32
    cosine = _cosine_rows(embeddings.vectors, minilm_st_reference)
    assert cosine.min() >= 0.9999, cosine
    assert list(embeddings.texts) == TEXTS
    assert embeddings.predictions is None  # a bare encoder has no head


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "clf", classifier=True)


def _reference_hidden(model, tokenizer, text, layer=None):
    """Unbatched, unpadded forward of one text: the ground truth for pooling."""
    enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=128)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    states = out.hidden_states[-1 if layer is None else layer][0].numpy().astype(np.float64)
    return states, out.logits[0].numpy()


@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "last"])
def test_pooling_on_length_sorted_padded_batches_matches_unpadded_reference(tiny_classifier, pooling):
    loaded = open_checkpoint(tiny_classifier)
    options = LoadSettings(pooling=pooling, device="cpu", batch_size=4)
    result = _run(extract(loaded, DataSet(texts=TEXTS), options))
    for i, text in enumerate(TEXTS):
        states, _ = _reference_hidden(loaded.model, loaded.tokenizer, text)
        expected = {
            "mean": states.mean(0),
            "cls": states[0],
            "max": states.max(0),
            "last": states[-1],
        }[pooling]
        np.testing.assert_allclose(result.vectors[i], expected, rtol=1e-4, atol=1e-5)
    assert result.pooling == pooling


def test_classifier_logits_become_predictions_with_config_names(tiny_classifier, tmp_path):
    request = ExtractRequest.of(
        checkpoint=str(tiny_classifier),
        data=str(_write_texts(tmp_path / "t.txt")),
        device="cpu",
        batch_size=5,
        use_cache=False,
    )
    embeddings = run_job(extract_job(request))
    loaded = open_checkpoint(tiny_classifier)
    names = np.array(["negative", "neutral", "positive"])
    for i, text in enumerate(TEXTS):
        _, logits = _reference_hidden(loaded.model, loaded.tokenizer, text)
        np.testing.assert_allclose(embeddings.logits[i], logits, rtol=1e-4, atol=1e-5)
        assert embeddings.predictions[i] == names[int(np.argmax(logits))]
    assert embeddings.class_names == tuple(names)


def test_hidden_layer_and_module_hook(tiny_classifier):
    loaded = open_checkpoint(tiny_classifier)
    data = DataSet(texts=TEXTS[:6])
    layer0 = _run(extract(loaded, data, LoadSettings(layer=0, pooling="cls", device="cpu")))
    hooked = _run(extract(loaded, data, LoadSettings(module="bert.embeddings", pooling="cls", device="cpu")))
    np.testing.assert_allclose(layer0.vectors, hooked.vectors, rtol=1e-5, atol=1e-6)
    for _i, text in enumerate(TEXTS[:6]):
        states, _ = _reference_hidden(loaded.model, loaded.tokenizer, text, layer=1)
        one = _run(extract(loaded, DataSet(texts=[text]), LoadSettings(layer=1, pooling="mean", device="cpu")))
        np.testing.assert_allclose(one.vectors[0], states.mean(0), rtol=1e-4, atol=1e-5)
    with pytest.raises(BadInputError, match="layer 9 out of range"):
        _run(extract(loaded, data, LoadSettings(layer=9, device="cpu")))
    with pytest.raises(BadInputError, match="no module named 'bert.embedings'.*bert.embeddings"):
        _run(extract(loaded, data, LoadSettings(module="bert.embedings", device="cpu")))


def test_pooler_output(tmp_path):
    folder = make_tiny_bert(tmp_path / "enc")
    loaded = open_checkpoint(folder)
    result = _run(extract(loaded, DataSet(texts=TEXTS[:5]), LoadSettings(pooling="pooler", device="cpu")))
    enc = loaded.tokenizer(TEXTS[:5], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = loaded.model(**enc).pooler_output.numpy()
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-4, atol=1e-5)


def _tiny_factory_setup(tmp_path, n=10):
    factory = f"{write_factory(tmp_path)}:build"
    torch.manual_seed(9)
    state = {
        "encoder.weight": torch.randn(8, 6),
        "encoder.bias": torch.randn(8),
        "slots.scale": torch.randn(4, 8),
        "classifier.weight": torch.randn(3, 8),
        "classifier.bias": torch.randn(3),
    }
    weights = tmp_path / "tiny.safetensors"
    save_file(state, weights)
    x = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)
    data = tmp_path / "x.npy"
    np.save(data, x)
    w = {k: v.numpy().astype(np.float64) for k, v in state.items()}
    h_lin = x @ w["encoder.weight"].T + w["encoder.bias"]
    h = np.tanh(h_lin)
    return factory, weights, data, w, h_lin, h


def test_factory_model_pooled_concept_set_and_classifier(tmp_path):
    factory, weights, data, w, h_lin, h = _tiny_factory_setup(tmp_path)
    base = dict(checkpoint=str(weights), data=str(data), factory=factory, device="cpu", batch_size=3, use_cache=False)
    pooled = run_job(extract_job(ExtractRequest.of(module="encoder", **base)))
    assert pooled.kind == "pooled"
    np.testing.assert_allclose(pooled.vectors, h_lin, rtol=1e-5, atol=1e-5)
    logits = h @ w["classifier.weight"].T + w["classifier.bias"]
    np.testing.assert_allclose(pooled.logits, logits, rtol=1e-5, atol=1e-5)
    assert list(pooled.predictions) == list(np.array(["alpha", "beta", "gamma"])[logits.argmax(1)])

    concepts = run_job(extract_job(ExtractRequest.of(module="slots", **base)))
    assert concepts.kind == "concept" and concepts.vectors.shape == (10, 4, 8)
    np.testing.assert_allclose(concepts.vectors, h[:, None, :] * w["slots.scale"], rtol=1e-5, atol=1e-5)
    assert any("concept set of 4" in note for note in concepts.notes)

    # The same B×C×H output with an explicit pooling is reduced (no mask: all positions count).
    maxed = run_job(extract_job(ExtractRequest.of(module="slots", pooling="max", **base)))
    np.testing.assert_allclose(maxed.vectors, (h[:, None, :] * w["slots.scale"]).max(1), rtol=1e-5, atol=1e-5)

    whole = run_job(extract_job(ExtractRequest.of(**base)))  # no module: the model's output as is
    np.testing.assert_allclose(whole.vectors, logits, rtol=1e-5, atol=1e-5)
    assert whole.predictions is None


def test_cache_hit_is_identical_and_keys_on_options(tmp_path):
    factory, weights, data, *_ = _tiny_factory_setup(tmp_path)
    request = ExtractRequest.of(
        checkpoint=str(weights),
        data=str(data),
        factory=factory,
        module="encoder",
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    first = run_job(extract_job(request))
    stages = []
    second = run_job(extract_job(request), stages.append)
    assert any(p.message == "from cache" for p in stages)
    assert not any(p.stage == "opening checkpoint" for p in stages)
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    assert "embeddings read from the extraction cache" in second.notes
    # Where, at which precision and how fast the vectors were computed; a hit reports the extraction that
    # filled the cache.
    record = first.extraction
    assert {k: record[k] for k in ("module", "device", "dtype", "samples")} == {
        "module": "encoder",
        "device": "cpu",
        "dtype": "float32",
        "samples": len(first.vectors),
    }
    assert record["seconds"] >= 0 and "layer" not in record and second.extraction == record
    text = extraction_text(record)
    assert text.startswith(f"module encoder; cpu, float32: {len(first.vectors)} samples in ") and text.endswith("/s)")
    other = replace(request, load=replace(request.load, module="slots"))
    stages.clear()
    third = run_job(extract_job(other), stages.append)
    assert third.kind == "concept" and not any(p.message == "from cache" for p in stages)
    # New weights at the same path miss too.
    state = load_file(str(weights))
    state["encoder.bias"] = state["encoder.bias"] + 1.0
    save_file(state, weights)
    fourth = run_job(extract_job(request))
    np.testing.assert_allclose(fourth.vectors, first.vectors + 1.0, rtol=1e-5, atol=1e-5)


def test_cancel_stops_cleanly_and_ends_tokenizer_thread(tiny_classifier):
    loaded = open_checkpoint(tiny_classifier)
    cancel = CancelToken()
    job = extract(loaded, DataSet(texts=TEXTS * 5), LoadSettings(device="cpu", batch_size=2), cancel)
    next(job)
    next(job)
    cancel.cancel()
    with pytest.raises(Cancelled):
        for _ in job:
            pass
    assert not any(t.name == "embscope-tokenizer" and t.is_alive() for t in threading.enumerate())


class _OomAbove(torch.nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.proj = torch.nn.Linear(3, 2)

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.proj(x)


def test_out_of_memory_halves_batch_and_continues():
    from embscope.sources.checkpoints import LoadedModel

    model = _OomAbove(limit=3)
    x = np.random.default_rng(1).normal(size=(17, 3)).astype(np.float32)
    result = _run(
        extract(LoadedModel(model, "state_dict", "test"), DataSet(arrays=x), LoadSettings(device="cpu", batch_size=16))
    )
    with torch.no_grad():
        expected = model.proj(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(result.vectors, expected, rtol=1e-5, atol=1e-6)
    assert any("halved to 2" in note for note in result.notes)
    with pytest.raises(BadInputError, match="even with batch size 1"):
        _run(
            extract(
                LoadedModel(_OomAbove(limit=0), "state_dict", "test"),
                DataSet(arrays=x),
                LoadSettings(device="cpu", batch_size=4),
            )
        )


def test_bfloat16_autocast_close_to_float32(tiny_classifier):
    loaded = open_checkpoint(tiny_classifier)
    data = DataSet(texts=TEXTS)
    full = _run(extract(loaded, data, LoadSettings(device="cpu")))
    half = _run(extract(loaded, data, LoadSettings(device="cpu", dtype="bfloat16")))
    assert half.vectors.dtype == np.float32
    assert _cosine_rows(full.vectors, half.vectors).min() > 0.99


def test_pool_by_hand_with_left_padding():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0]])
    h = hidden.numpy()
    np.testing.assert_allclose(pool(hidden, mask, "mean").numpy(), [h[0, 1:].mean(0), h[1, :2].mean(0)])
    np.testing.assert_allclose(pool(hidden, mask, "max").numpy(), [h[0, 1:].max(0), h[1, :2].max(0)])
    np.testing.assert_allclose(pool(hidden, mask, "last").numpy(), [h[0, 3], h[1, 1]])
    np.testing.assert_allclose(pool(hidden, mask, "cls").numpy(), [h[0, 0], h[1, 0]])


def test_bad_requests(tmp_path, tiny_classifier):
    data = _write_texts(tmp_path / "t.txt")
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="no CUDA device"):
            run_job(extract_job(ExtractRequest.of(checkpoint=str(tiny_classifier), data=str(data), device="cuda")))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        run_job(extract_job(ExtractRequest.of(checkpoint=str(tiny_classifier), data=str(empty), device="cpu")))
    factory, weights, npy, *_ = _tiny_factory_setup(tmp_path)
    with pytest.raises(BadInputError, match="text data needs a model with a tokenizer"):
        run_job(
            extract_job(
                ExtractRequest.of(
                    checkpoint=str(weights), data=str(data), factory=factory, device="cpu", use_cache=False
                )
            )
        )
    with pytest.raises(BadInputError, match="--layer picks a hidden layer") as info:
        run_job(
            extract_job(
                ExtractRequest.of(
                    checkpoint=str(weights), data=str(npy), factory=factory, layer=2, device="cpu", use_cache=False
                )
            )
        )
    # The app names its form fields, not the flags.
    assert info.value.app_message.startswith("Layer picks a hidden layer") and "--" not in info.value.app_message
    with pytest.raises(BadInputError, match="--pooling pooler needs") as info:
        run_job(
            extract_job(
                ExtractRequest.of(
                    checkpoint=str(weights),
                    data=str(npy),
                    factory=factory,
                    pooling="pooler",
                    device="cpu",
                    use_cache=False,
                )
            )
        )
    assert info.value.app_message == "Pooling 'pooler' needs a Hugging Face model with a pooler"


@pytest.fixture(scope="module")
def collapsed_minilm(tmp_path_factory):
    """MiniLM with its last LayerNorm's weight zeroed: every token becomes the bias vector."""
    folder = tmp_path_factory.mktemp("collapsed") / "minilm"
    shutil.copytree(minilm_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    state = load_file(str(minilm_path() / "model.safetensors"))
    name = "encoder.layer.5.output.LayerNorm.weight"
    assert name in state
    state[name] = torch.zeros_like(state[name])
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.slow
def test_zeroed_last_layernorm_collapses_every_sample_to_one_point(tmp_path, collapsed_minilm):
    data = _write_texts(tmp_path / "t.txt")
    embeddings = run_job(
        extract_job(
            ExtractRequest.of(
                checkpoint=str(collapsed_minilm), data=str(data), device="cpu", use_cache=False, model_normalize=False
            )
        )
    )
    # Raw pooled vectors (the model's Normalize skipped): every sample is the LayerNorm bias itself.
    spread = np.abs(embeddings.vectors - embeddings.vectors[0]).max()
    assert spread < 1e-5 and np.linalg.norm(embeddings.vectors[0]) > 0.1
    bias = load_file(str(collapsed_minilm / "model.safetensors"))["encoder.layer.5.output.LayerNorm.bias"]
    np.testing.assert_allclose(embeddings.vectors[0], bias.numpy(), rtol=1e-5, atol=1e-6)

    # Bias zeroed too: every sample is the zero vector.
    both = tmp_path / "both"
    shutil.copytree(collapsed_minilm, both, ignore=shutil.ignore_patterns("model.safetensors"))
    state = load_file(str(collapsed_minilm / "model.safetensors"))
    state["encoder.layer.5.output.LayerNorm.bias"].zero_()
    save_file(state, both / "model.safetensors", metadata={"format": "pt"})
    zero = run_job(extract_job(ExtractRequest.of(checkpoint=str(both), data=str(data), device="cpu", use_cache=False)))
    assert np.abs(zero.vectors).max() == 0.0


@pytest.mark.slow
def test_verdict_collapsed_for_zeroed_layernorm_not_for_healthy(tmp_path, collapsed_minilm):
    import embscope.tasks.analyze as analyze

    data = _write_texts(tmp_path / "t.txt")
    labels = {}
    for folder in (collapsed_minilm, minilm_path()):
        request = analyze.AnalyzeRequest.of(
            source=str(folder), data=str(data), device="cpu", clusters=False, use_cache=False
        )
        result = run_job(analyze.analyze_job(request))
        labels[folder] = result.verdict.label
        assert "weights" in result.summary or result.weights is not None
    assert labels[collapsed_minilm] == "collapsed_to_point"
    assert labels[minilm_path()] != "collapsed_to_point"
