"""Layer 3 (beside ``trainers``), ``filters``: quality control. Imports only ``factory.core`` and
``factory.llm``.

Contract (``base``): a filter answers per record ``Keep(score)`` or ``Drop(reason, score)`` (or
``Failed``), or decides a whole set at once (dedup, percentile cuts, drift, decontamination
against eval sets); the ``Chain`` counts
per filter and reason, keeps every dropped record with its filter, reason and score, and checks
``input = kept + dropped + failed``. Chain files and the recipe's ``qc:`` share one schema
(``config``); ``chain.build_chain`` makes filter objects; ``factory qc`` / ``audit`` run a chain on
any dataset read through ``factory.core.dataset_files`` (``dataset_io``, ``audit``) and ``qc``
writes a dataset folder like its input (``qc_output``). Nothing heavy is imported here: a build
without ``qc:`` needs no torch.
"""
