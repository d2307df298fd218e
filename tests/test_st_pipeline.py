"""'auto' pooling follows a sentence-transformers folder's own pipeline (Pooling config, Normalize).

The reference is sentence-transformers itself: its ``Pooling`` module on random token states, and
``SentenceTransformer(path).encode`` on the installed all-MiniLM-L6-v2 folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from embscope.options import LoadSettings
from embscope.sources.checkpoints import open_checkpoint
from embscope.sources.data_files import DataSet
from embscope.sources.extraction import extract, st_pool
from embscope.sources.st_pipeline import describe_auto, read_pipeline
from embscope.tasks.extract import ExtractRequest, extract_job
from embscope.tasks.progress import run_job
from helpers_checkpoints import make_tiny_bert, minilm_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [
    "A cat sat on the mat.",
    "The stock market fell sharply on Tuesday after the central bank raised interest rates.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "hi",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons in hadrons.",
    "Bake at 180 degrees for twenty minutes.",
    "She plays the violin in the city orchestra every Sunday evening.",
]


def _modules(*kinds: tuple[str, str]) -> list[dict]:
    return [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (kind, path) in enumerate(kinds)
    ]


def _st_folder(folder: Path, pooling: dict | None, modules: list[dict] | None, lower: bool = False) -> Path:
    folder.mkdir(parents=True)
    if modules is not None:
        (folder / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": lower}))
    return folder


def test_read_pipeline_of_the_installed_minilm_folder():
    pipeline = read_pipeline(minilm_path())
    assert pipeline is not None
    assert pipeline.modes == ("mean",) and pipeline.normalize and not pipeline.lowercase and not pipeline.skipped
    assert pipeline.files == ("modules.json", "1_Pooling/config.json")
    assert describe_auto(minilm_path()) == "mean + normalize (from modules.json, 1_Pooling/config.json)"
    assert describe_auto(minilm_path(), normalize=False) == (
        "mean without the model's Normalize (from modules.json, 1_Pooling/config.json)"
    )


def test_read_pipeline_variants(tmp_path):
    legacy = _st_folder(
        tmp_path / "legacy",
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False},
        _modules(("Transformer", ""), ("Pooling", "1_Pooling"), ("Dense", "2_Dense"), ("Normalize", "3_Normalize")),
        lower=True,
    )
    p = read_pipeline(legacy)
    assert p.modes == ("cls", "mean") and p.normalize and p.lowercase and p.skipped == ("Dense",)
    assert p.pooling_name == "cls ⊕ mean"
    new = _st_folder(tmp_path / "new", {"pooling_mode": "lasttoken", "include_prompt": False}, None)
    p = read_pipeline(new)
    assert p.modes == ("lasttoken",) and not p.include_prompt and not p.normalize
    assert p.files == ("1_Pooling/config.json",)
    # A Transformer-only pipeline has no pooling to follow; a plain folder is not a pipeline.
    assert read_pipeline(_st_folder(tmp_path / "bare", None, _modules(("Transformer", "")))) is None
    plain = tmp_path / "plain"
    plain.mkdir()
    assert read_pipeline(plain) is None
    broken = _st_folder(tmp_path / "broken", None, None)
    (broken / "modules.json").write_text("{not json")
    assert read_pipeline(broken) is None


@pytest.mark.parametrize(
    "modes",
    [("cls",), ("max",), ("mean",), ("mean_sqrt_len_tokens",), ("weightedmean",), ("lasttoken",), ("cls", "mean")],
)
def test_st_pool_matches_sentence_transformers_pooling(modes):
    from sentence_transformers.sentence_transformer.modules import Pooling

    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(5, 9, 16, generator=generator)
    lengths = torch.tensor([9, 4, 1, 7, 2])
    mask = (torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)).long()  # right padding, as BERT tokenizers pad
    reference = Pooling(16, pooling_mode=modes[0] if len(modes) == 1 else modes)
    expected = reference({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
    np.testing.assert_allclose(st_pool(hidden, mask, modes).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def st_reference():
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    return model.encode(TEXTS, convert_to_numpy=True, batch_size=3)


@pytest.fixture(scope="module")
def minilm():
    return open_checkpoint(minilm_path())


@pytest.mark.slow
def test_auto_pooling_gives_the_vectors_sentence_transformers_serves(minilm, st_reference):
    result = run_job(extract(minilm, DataSet(texts=TEXTS), LoadSettings(device="cpu", batch_size=3)))
    np.testing.assert_allclose(result.vectors, st_reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert result.notes[0] == "pooling: auto → mean + normalize (from modules.json, 1_Pooling/config.json)"
    assert result.extraction == {
        "pooling": "auto",
        "resolved": "mean",
        "normalize": True,
        "from": ["modules.json", "1_Pooling/config.json"],
        "described": "mean + normalize (from modules.json, 1_Pooling/config.json)",
    }


@pytest.mark.slow
def test_raw_pooled_vectors_one_setting_away(minilm, st_reference):
    raw = run_job(extract(minilm, DataSet(texts=TEXTS), LoadSettings(device="cpu", model_normalize=False)))
    norms = np.linalg.norm(raw.vectors, axis=1)
    assert norms.min() > 1.5  # MiniLM's mean-pooled states are far from unit length
    np.testing.assert_allclose(raw.vectors / norms[:, None], st_reference, atol=1e-5)
    assert raw.extraction["normalize"] is False
    assert "without the model's Normalize" in raw.notes[0]
    chosen = run_job(extract(minilm, DataSet(texts=TEXTS), LoadSettings(device="cpu", pooling="mean")))
    np.testing.assert_allclose(chosen.vectors, raw.vectors, atol=1e-5)
    assert chosen.notes[0].startswith("pooling: mean (chosen); the model's own pipeline is mean + normalize")
    # A chosen layer is pooled the model's way but not normalised (Normalize belongs to the output).
    layer = run_job(extract(minilm, DataSet(texts=TEXTS[:3]), LoadSettings(device="cpu", layer=3)))
    assert layer.extraction["normalize"] is False and "not to layer 3" in layer.notes[0]


@pytest.mark.slow
def test_summary_records_what_auto_resolved_to(tmp_path):
    from embscope.tasks.analyze import AnalyzeRequest, analyze_job

    data = tmp_path / "t.txt"
    data.write_text("\n".join(TEXTS * 2), encoding="utf-8")
    request = AnalyzeRequest.of(
        str(minilm_path()), data=str(data), device="cpu", use_cache=False, clusters=False, graph=False
    )
    summary = run_job(analyze_job(request)).summary
    assert summary["extraction"]["described"] == "mean + normalize (from modules.json, 1_Pooling/config.json)"
    assert "pooling: auto → mean + normalize (from modules.json, 1_Pooling/config.json)" in summary["input_notes"]


def test_auto_on_a_folder_without_sentence_transformers_files_says_mean(tmp_path):
    folder = make_tiny_bert(tmp_path / "tiny")
    result = run_job(extract(open_checkpoint(folder), DataSet(texts=TEXTS[:3]), LoadSettings(device="cpu")))
    assert result.notes[0] == "pooling: auto → mean (no sentence-transformers Pooling config)"
    assert result.extraction["resolved"] == "mean" and result.extraction["normalize"] is False


def test_lowercasing_and_normalize_follow_the_copied_folder(tmp_path):
    """A copy of a tiny BERT with a CLS + Normalize pipeline and do_lower_case: unit CLS vectors of lower text."""
    folder = make_tiny_bert(tmp_path / "tiny")
    shutil.rmtree(folder / "1_Pooling", ignore_errors=True)
    (folder / "modules.json").write_text(
        json.dumps(_modules(("Transformer", ""), ("Pooling", "1_Pooling"), ("Normalize", "2_Normalize")))
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "cls"}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": True}))
    loaded = open_checkpoint(folder)
    seen: list[str] = []
    tokenizer = loaded.tokenizer

    def recording(texts, **kwargs):  # MiniLM's tokenizer is uncased itself: record what it is given
        seen.extend(texts)
        return tokenizer(texts, **kwargs)

    loaded.tokenizer = recording
    upper = [t.upper() for t in TEXTS[:3]]
    auto = run_job(extract(loaded, DataSet(texts=upper), LoadSettings(device="cpu")))
    assert sorted(seen) == sorted(t.lower() for t in upper)
    assert any("lower-cased" in note for note in auto.notes)
    cls = run_job(extract(loaded, DataSet(texts=upper), LoadSettings(device="cpu", pooling="cls")))
    expected = cls.vectors / np.linalg.norm(cls.vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(auto.vectors, expected, atol=1e-5)
    assert auto.extraction["described"] == "cls + normalize (from modules.json, 1_Pooling/config.json)"


def test_cache_keeps_the_resolution(tmp_path):
    folder = make_tiny_bert(tmp_path / "tiny")
    data = tmp_path / "t.txt"
    data.write_text("\n".join(TEXTS), encoding="utf-8")
    request = ExtractRequest.of(str(folder), cache_dir=str(tmp_path / "cache"), data=str(data), device="cpu")
    first = run_job(extract_job(request))
    again = run_job(extract_job(request))
    assert "embeddings read from the extraction cache" in again.notes
    assert again.extraction == first.extraction and again.extraction["resolved"] == "mean"
