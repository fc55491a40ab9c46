"""Layer 6, ``factory.engine``: running a recipe's graph. Imports core, llm, steps, recipe.

Contract: ``plan_build`` checks everything and calls nothing (``plan``); ``wiring`` opens the build's
LLM session, one backend per backend block in it, and binds each step to its dispatcher;
``Engine.run`` walks every record through the graph (per-record stages stream with a bounded
window, set steps are barriers) and returns every outcome, kept or rejected, in input order, with
``input + created = kept + rejected + failed + consumed`` (``executor``); a step that raises stops
the run. ``ray_executor`` shards the per-record stages over Ray actors with byte-identical output;
``dry_run`` estimates calls and cost.
"""
