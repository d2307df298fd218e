"""One list of vector key names: a file the embeddings readers can open is never taken for a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from embscope.sources.checkpoints import is_checkpoint
from embscope.sources.embedding_files import load_embeddings
from embscope.sources.raw import VECTOR_NAMES

X = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)


@pytest.mark.parametrize("key", VECTOR_NAMES)
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_every_vector_key_reads_as_embeddings_not_a_checkpoint(tmp_path, key, suffix):
    path = tmp_path / f"e{suffix}"
    if suffix == ".pt":
        torch.save({key: torch.from_numpy(X), "layer.weight": torch.zeros(2, 2)}, path)
    else:
        save_file({key: X, "layer.weight": np.zeros((2, 2), np.float32)}, str(path))
    assert not is_checkpoint(path)
    np.testing.assert_array_equal(load_embeddings(path).vectors, X)


def test_a_state_dict_is_still_a_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"encoder.weight": X, "encoder.bias": X[0]}, str(path))
    assert is_checkpoint(path)
