"""A GGUF's chat template, read without loading its weights (vocabulary only): Magpie's pre-query
prefix needs the template before, or without, any generation."""

from __future__ import annotations

from pathlib import Path

import llama_cpp as L
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from factory.llm.backends.chat_prefix import CHATML


def token_text(vocab: object, token: int) -> str:
    return L.llama_vocab_get_text(vocab, token).decode() if token >= 0 else ""


def chat_formatter(model: object) -> Jinja2ChatFormatter:
    """The formatter for a loaded llama model (weights or vocabulary only): its own template, or
    ChatML for GGUFs without one (base models)."""
    vocab = L.llama_model_get_vocab(model)
    template = L.llama_model_chat_template(model, None)
    return Jinja2ChatFormatter(template=template.decode() if template else CHATML,
                               eos_token=token_text(vocab, L.llama_vocab_eos(vocab)),
                               bos_token=token_text(vocab, L.llama_vocab_bos(vocab)),
                               add_generation_prompt=True)


def vocab_formatter(path: Path) -> Jinja2ChatFormatter:
    """``chat_formatter`` of the GGUF at ``path``, loading its vocabulary and metadata only."""
    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise RuntimeError(f"llama.cpp could not read {path}")
    try:
        return chat_formatter(model)
    finally:
        L.llama_model_free(model)
