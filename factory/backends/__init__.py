"""Backends by name. Values are import paths so that choosing ``fake`` never imports llama.cpp."""

from __future__ import annotations

import importlib

from factory.backends.base import Backend, BackendSettings, Completion, Request, SamplingParams

BACKENDS: dict[str, str] = {
    "fake": "factory.backends.fake:FakeBackend",
    "llama_cpp": "factory.backends.llama_cpp:LlamaCppBackend",
    "anthropic": "factory.backends.anthropic_api:AnthropicBackend",
    "openai_compatible": "factory.backends.openai_compatible:OpenAICompatibleBackend",
    "transformers": "factory.backends.transformers_backend:TransformersBackend",
    "vllm": "factory.backends.vllm_backend:VLLMBackend",
}


def backend_class(name: str) -> type[Backend]:
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["BACKENDS", "Backend", "BackendSettings", "Completion", "Request", "SamplingParams",
           "backend_class"]
