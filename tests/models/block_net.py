"""A small factory model with its own blocks, for the layer-sweep tests.

``embed`` (Linear 16 → 32), then four residual-free blocks ``blocks.0…3``
(Linear 32 → 32, GELU, LayerNorm), then ``head`` (Linear 32 → 5).  Imports only
torch so EmbScope can load it as ``tests/models/block_net.py:build_model``.
"""

from __future__ import annotations

import torch
from torch import nn

IN_DIM, WIDTH, N_BLOCKS, N_CLASSES = 16, 32, 4, 5


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(WIDTH, WIDTH)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.linear(x)))


class BlockNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(IN_DIM, WIDTH)
        self.blocks = nn.ModuleList(Block() for _ in range(N_BLOCKS))
        self.head = nn.Linear(WIDTH, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.float())
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def build_model() -> nn.Module:
    torch.manual_seed(0)
    return BlockNet()
