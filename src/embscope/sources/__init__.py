"""Loading embeddings files, checkpoints and data; extraction. Never imports Qt."""
