"""Architecture of the bundled demo checkpoints (Fashion-MNIST MLP).

EmbScope needs the architecture to run data through a plain state dict; this
file is the model factory the demo passes as
``--factory resources/demo/demo_model.py:build_model``.  It imports only torch,
so it can be loaded from its file path by the extraction engine.

Layout (named submodules, in forward order)::

    hidden      Linear 784 → 128, then ReLU (``act``)
    embed       Linear 128 → 64
    embed_norm  LayerNorm(64)        ← the 64-d representation the demo inspects
    classifier  Linear 64 → 10       (Fashion-MNIST classes)
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_DIM = 784
HIDDEN_DIM = 128
EMBED_DIM = 64
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Two-level hierarchy used by the demo's metadata (leaf class → parent group).
PARENT_OF = {
    "T-shirt/top": "tops",
    "Pullover": "tops",
    "Coat": "tops",
    "Shirt": "tops",
    "Dress": "tops",
    "Trouser": "bottoms",
    "Sandal": "footwear",
    "Sneaker": "footwear",
    "Ankle boot": "footwear",
    "Bag": "bags",
}


class DemoNet(nn.Module):
    """A small MLP classifier whose 64-d ``embed_norm`` output is the embedding."""

    #: Names of the classifier outputs, read by EmbScope's extraction so the
    #: predictions are class names comparable with the ``label`` column.
    class_names = CLASS_NAMES

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(INPUT_DIM, HIDDEN_DIM)
        self.act = nn.ReLU()
        self.embed = nn.Linear(HIDDEN_DIM, EMBED_DIM)
        self.embed_norm = nn.LayerNorm(EMBED_DIM)
        self.classifier = nn.Linear(EMBED_DIM, len(CLASS_NAMES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of flattened 28×28 images scaled to [0, 1] (``B×784``)."""
        x = x.reshape(x.shape[0], -1).to(self.hidden.weight.dtype)
        z = self.embed_norm(self.embed(self.act(self.hidden(x))))
        return self.classifier(z)


def build_model() -> nn.Module:
    """Return an untrained :class:`DemoNet` (load a demo state dict into it)."""
    return DemoNet()
