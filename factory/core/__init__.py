"""Layer 1, ``factory.core``: what every other layer stands on. Imports nothing of factory's.

Contract: plain types and pure functions with no model calls — the Record and its Reject
(``record``), user-facing errors and exit codes (``errors``), the strict schema base and YAML files
with one-line ``file:line: field: message`` errors (``schema``, ``yaml_files``), prompt templates and
their override check (``templates``), data rows from any file (``rows``), text coercion (``text``),
the one JSON-reply extractor (``structured``), verifiers that check an answer in code
(``verifiers``), the catalogue of verifiable instruction constraints with their checkers and
contradiction-free sampler (``constraints``), model files (``models``: find, load, convert) and
cache paths (``paths``).
"""
