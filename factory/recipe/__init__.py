"""Layer 5, ``factory.recipe``: what a recipe says. Imports core, llm, steps, and ``filters.config``
(the QC chain's schema) and ``trainers.config`` (the ``train:`` section's fields).

Contract: ``load_recipe(path)`` returns a validated ``Recipe`` with its YAML tree, so every later
check can blame a line (``loader``, ``spec``); ``build_graph`` checks the column wiring and cycles
(``graph``); ``load_seeds`` reads the seed rows or a task's problems (``seeds``, ``tasks``); nothing
here calls a model except ``factory init``'s drafting (``init_domain``), through a dispatcher.
"""
