"""factory: recipes in, post-training datasets out."""

__version__ = "0.1.0"
