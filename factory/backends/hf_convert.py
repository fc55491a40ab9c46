"""GGUF -> Hugging Face safetensors folder (vLLM loads folders; transformers reads both).

transformers cannot ``save_pretrained`` a model loaded from GGUF (it still believes it is quantized),
so the dequantized weights go into a fresh ``from_config`` model, which saves like any other.
The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from factory.cache import default_cache_path

if TYPE_CHECKING:
    from trainers.models import ModelRef


def default_hf_dir(name: str) -> Path:
    return default_cache_path().parent / "hf" / name


def gguf_to_hf(model: str, out: Path | None = None, dtype: str = "bfloat16") -> Path:
    """``model``: a .gguf path or ``smollm2`` (the embedded GGUF). Returns the folder (reused if there)."""
    from trainers.models import resolve_model

    ref = resolve_model(model)
    out = out or default_hf_dir(Path(ref.name).stem + f"-{dtype}")
    return out if (out / "config.json").exists() else save_dequantized(ref, out, dtype)


def save_dequantized(ref: ModelRef, out: Path, dtype: str) -> Path:
    """Write the GGUF ``ref`` as a safetensors folder at ``out``; safe when two processes race."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers.models import load_gguf_model, load_tokenizer

    tokenizer = load_tokenizer(ref)
    loaded = load_gguf_model(ref)  # fp32, GGUF flags cleared
    fresh = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.to(getattr(torch, dtype))
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another process finished the same folder first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").exists():
            raise
    return out


if __name__ == "__main__":
    import sys

    print(gguf_to_hf(sys.argv[1] if len(sys.argv) > 1 else "smollm2"))
