"""``embscope modules CHECKPOINT``: print the module tree (name, type, parameters, output shape)."""

from __future__ import annotations

import argparse

PROBE_SAMPLES = 2
PROBE_TEXTS = ["EmbScope probes the model with this sentence.", "A second, shorter one."]


def run(args: argparse.Namespace) -> int:
    """Open the checkpoint, probe it with one small batch when possible, print the tree."""
    from embscope.options import settings_from_args
    from embscope.sources.checkpoints import open_checkpoint
    from embscope.sources.modules import format_tree, module_tree

    load = settings_from_args(args).load
    loaded = open_checkpoint(args.source, factory=load.factory, trust=load.trust)
    probe = _make_probe(loaded, load.data)
    rows = module_tree(loaded.model, probe)
    for line in format_tree(rows):
        print(line)
    if probe is None:
        print("(output shapes need a probe batch: pass --data FILE)")
    for note in loaded.notes:
        print(f"note: {note}")
    return 0


def _make_probe(loaded, data_path: str | None):
    """A function running one small batch through the model, or None when no input is known."""
    import numpy as np

    from embscope.sources.data_files import read_data

    texts = arrays = None
    if data_path:
        data = read_data(data_path)
        if data.is_text:
            texts = data.texts[:PROBE_SAMPLES]
        else:
            arrays = np.array(data.arrays[:PROBE_SAMPLES])  # a writable copy of the memory map
    elif loaded.tokenizer is not None:
        texts = PROBE_TEXTS
    if texts is not None and loaded.tokenizer is not None:
        encoded = dict(
            loaded.tokenizer(texts, padding=True, truncation=True, max_length=loaded.max_length, return_tensors="pt")
        )
        return lambda: loaded.model(**encoded)
    if arrays is not None:
        import torch

        tensor = torch.from_numpy(arrays)
        tensor = tensor.long() if arrays.dtype.kind in "iu" else tensor.float()
        return lambda: loaded.model(tensor)
    return None
