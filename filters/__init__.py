"""Quality control: the filter contract and chain (base.py), the filters (perplexity, dedup, reward,
pairs, drift), the chain schema (config.py), and ``factory qc`` / ``factory audit`` (audit.py).

Nothing heavy is imported here: ``factory.recipe`` imports ``filters.config``, and a build without a
``qc:`` chain must run without torch, FAISS or sentence-transformers installed.
"""
