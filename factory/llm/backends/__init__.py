"""Backends by name. Values are import paths so that choosing ``fake`` never imports llama.cpp."""

from __future__ import annotations

import importlib

from factory.llm.backends.base import Backend, BackendSettings

BACKENDS: dict[str, str] = {
    "fake": "factory.llm.backends.fake:FakeBackend",
    "llama_cpp": "factory.llm.backends.llama_cpp:LlamaCppBackend",
    "anthropic": "factory.llm.backends.anthropic_api:AnthropicBackend",
    "openai_compatible": "factory.llm.backends.openai_compatible:OpenAICompatibleBackend",
    "transformers": "factory.llm.backends.transformers_backend:TransformersBackend",
    "vllm": "factory.llm.backends.vllm_backend:VLLMBackend",
}


def backend_class(name: str) -> type[Backend]:
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["BACKENDS", "Backend", "BackendSettings", "backend_class"]
