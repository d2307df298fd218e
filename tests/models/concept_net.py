"""A concept encoder for tests: 12 inputs → 8 concept vectors of 16 dims (``concepts`` is the B×C×H output)."""

import torch
from torch import nn


class ConceptNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(12, 16)
        self.heads = nn.Parameter(torch.zeros(8, 16, 16))
        self.concepts = nn.Identity()

    def forward(self, x):
        return self.concepts(torch.einsum("cdh,bh->bcd", self.heads, torch.tanh(self.stem(x))))


def build_model():
    torch.manual_seed(0)
    return ConceptNet()
