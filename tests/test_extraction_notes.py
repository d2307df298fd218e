"""What an extraction says about its pooling (notes and ``summary.json``'s ``extraction`` block).

From a user trial: ``--pooling pooler`` left no record, ``--pooling cls`` on a
B×H output was silently ignored, and ``--module`` on a sentence-transformers
folder claimed it had no Pooling config.
"""

from __future__ import annotations

import numpy as np
import pytest

from embscope.options import LoadSettings
from embscope.resources import resource_path
from embscope.sources.checkpoints import open_checkpoint
from embscope.sources.data_files import DataSet
from embscope.sources.extraction import extract
from embscope.tasks.analyze import AnalyzeRequest, analyze_job
from embscope.tasks.progress import run_job
from helpers_checkpoints import minilm_path

DEMO = resource_path("demo")
TEXTS = ["A cat sat on the mat.", "The stock market fell sharply on Tuesday.", "hi", "Where is the station?"]


@pytest.fixture(scope="module")
def minilm():
    return open_checkpoint(minilm_path())


def test_a_chosen_pooling_on_a_one_vector_per_sample_output_is_said_not_applied(tmp_path):
    data = tmp_path / "fashion30.npy"
    np.save(data, np.load(DEMO / "fashion_val.npy")[:30])
    request = AnalyzeRequest.of(
        str(DEMO / "healthy.safetensors"),
        data=str(data),
        factory=f"{DEMO / 'demo_model.py'}:build_model",
        module="embed_norm",
        pooling="cls",
        device="cpu",
        use_cache=False,
        clusters=False,
    )
    result = run_job(analyze_job(request))
    said = "pooling: cls not applied: the captured output is already one vector per sample (B×H)"
    assert said in result.embeddings.notes
    assert result.summary["extraction"]["pooling"] == "cls" and result.summary["extraction"]["resolved"] == "none"


def test_minilm_pooler_is_recorded_and_a_module_note_names_the_pooling_config(minilm):
    data = DataSet(texts=TEXTS)
    pooler = run_job(extract(minilm, data, LoadSettings(pooling="pooler", device="cpu")))
    assert pooler.extraction["pooling"] == "pooler" and pooler.extraction["resolved"] == "pooler"
    assert pooler.notes[0].startswith("pooling: pooler (chosen: the model's pooler output)")
    hooked = run_job(extract(minilm, data, LoadSettings(module="encoder.layer.3", device="cpu")))
    note = hooked.notes[0]
    assert note.startswith("pooling: auto → mean (the model's default")
    assert "no sentence-transformers Pooling config" not in note
    said = (
        "its sentence-transformers Pooling config, mean + normalize (from modules.json, 1_Pooling/config.json), "
        "applies to the model's output, not to module 'encoder.layer.3'"
    )
    assert said in note
    assert hooked.extraction["resolved"] == "mean" and hooked.extraction["normalize"] is False
