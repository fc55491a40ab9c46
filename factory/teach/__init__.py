"""Layer 9, ``factory.teach``: the self-teaching loop and evaluation. Imports every layer below and
``trainers``.

Contract: ``run_teach`` trains LoRA SFT then DPO on what a build made and evaluates base and trained
models on held-out problems through one decoder (``loop``); ``evaluate`` holds greedy accuracy with
Wilson intervals and the pairwise win rate; ``report`` renders ``report.md`` / ``report.html``.
"""
