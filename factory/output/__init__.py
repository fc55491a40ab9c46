"""Layer 7, ``factory.output``: what a build leaves on disk. Imports core, recipe, engine.

Contract: ``write_dataset`` writes each split (parquet + jsonl in TRL's formats, every row with
``id`` and ``lineage``), ``rejects.jsonl``, ``stats.json`` and the card into a temporary folder and
renames it into place; a split with no rows is not written (``datasets`` cannot load one) and the
card and stats say why (``writer``); the card never holds backend options or secrets (``card``).
"""
