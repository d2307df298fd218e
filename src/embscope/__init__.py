"""EmbScope: inspect the geometry of neural-network embeddings.

The package is layered (a test enforces it):

``gui`` → ``tasks`` → ``analysis`` / ``sources`` → ``data``, ``errors``.

Only ``gui`` imports Qt; heavy imports (torch, umap, Qt) happen inside
functions so that ``embscope --help`` stays instant.
"""

__version__ = "0.1.0"
