"""Layer 2, ``factory.llm``: talking to models. Imports only ``factory.core``.

Contract: a ``Request`` (chat messages, sampling params, sample index, optional JSON schema) in, a
``Completion`` out (``request``). Backends implement one async method, ``generate(requests)``, and
are named in one dict (``backends``). Every call anyone makes goes through a ``Dispatcher``
(``dispatch``): the request cache (``cache``, keyed by backend, model, params, messages and sample
index, never by batching), bounded concurrency, in-flight coalescing, counts and the dollar budget
(``pricing``). A run gets its dispatchers from one ``LLMSession`` (``session``): the cache (or
none), the budget, one backend per distinct backend block and the call counts per user (steps, QC
judges, eval, init). Also here: the recipe schema of backend blocks and sampling params (``spec``),
the judge prompts and readers shared by steps, QC and tools (``rubric``, ``pairwise``), and the one
reward-model scorer of steps and QC (``reward_model``).
"""
