"""GGUF files for the llama.cpp backend: PEFT LoRA adapters as GGUF LoRA adapters, and a
dequantized copy of a quantized base model.

Adapters: each PEFT adapter folder becomes a GGUF LoRA adapter, which llama.cpp applies on top of
the base GGUF at decode time, several at once.

The conversion writes what llama.cpp's ``convert_lora_to_gguf.py`` writes, without the base model's
weights: ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``, the base's
architecture, and for every adapted Linear layer its A (rank x in) and B (out x rank) matrices as
``<llama.cpp tensor name>.lora_a`` / ``.lora_b`` (``gguf.TensorNameMap`` maps
``model.layers.3.self_attn.q_proj`` to ``blk.3.attn_q.weight``). llama.cpp's Llama converter
permutes the rows of the q and k projections (its rotary layout); B's rows are permuted the same
way, so B @ A lands on the same rows as the base weight. llama.cpp scales by alpha / rank, as PEFT
does; rsLoRA (alpha / sqrt(rank)) is written as the alpha that gives the same scale.

Files are cached under ``$FACTORY_CACHE_DIR/lora_gguf/`` by the adapter's hash: a retrained adapter
gets a new file. What cannot be converted (DoRA, per-module alphas, fully trained modules such as
``lm_head``) is refused with a one-line reason: serve such an adapter with the transformers backend.

Dequantized copy (``dtype: float32``): the trainers learn an adapter on the base GGUF's weights
dequantized to fp32; llama.cpp on the quantized file also quantizes activations in its matmuls, and
those numerics move greedy texts (measured on the embedded Q4_1 model: 3 of 4 prompts diverged
from the transformers text at the first token). The copy holds the same weights in fp32, bit for
bit, with every metadata key of the source; llama.cpp then gives transformers' greedy texts.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from factory.core.errors import FactoryError
from factory.core.models import adapters_id
from factory.core.paths import cache_dir

PERMUTED_ARCHS = {"llama"}  # converters that permute q/k rows (convert_hf_to_gguf.py LlamaModel)
SUPPORTED_ARCHS = PERMUTED_ARCHS  # others may lay out tensors differently: not verified here


def pop_adapter_options(opts: dict[str, Any]) -> tuple[str | None, list[str], str]:
    """The llama_cpp backend's ``dtype`` and ``adapters`` options, taken out of ``opts``, and the
    suffix they add to its model id (the cache key): the dtype, then the adapters' hash."""
    dtype = opts.pop("dtype", None)  # None: the file's own weights
    if dtype not in (None, "float32", "float16"):
        raise ValueError(f"llama_cpp option dtype: float32 or float16, not {dtype!r}")
    adapters = opts.pop("adapters", [])
    adapters = [str(adapters)] if isinstance(adapters, (str, Path)) else [str(a) for a in adapters]
    # named by the adapters' hash, as in the transformers backend (adapters_id checks each folder)
    suffix = (f"+{dtype}" if dtype else "") + (f"+lora:{adapters_id(adapters)}" if adapters else "")
    return dtype, adapters, suffix


def base_facts(gguf_path: Path) -> dict[str, Any]:
    """Architecture, layers and attention heads of a base GGUF (read from its metadata)."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))

    def value(key: str) -> Any:
        found = reader.fields.get(key)
        if found is None:
            raise FactoryError(f"{gguf_path}: no {key} in the GGUF metadata")
        return found.contents()

    arch = str(value("general.architecture"))
    return {"arch": arch, "n_layer": int(value(f"{arch}.block_count")),
            "n_head": int(value(f"{arch}.attention.head_count")),
            "n_head_kv": int(value(f"{arch}.attention.head_count_kv"))}


def permute_rows(b: Any, n_head: int) -> Any:
    """The row order llama.cpp's Llama converter gives a q/k projection with ``n_head`` heads."""
    out = b.shape[0]
    return b.reshape(n_head, 2, out // n_head // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def _config(folder: Path) -> dict[str, Any]:
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {config.get('peft_type')}")
    if config.get("use_dora"):
        problems.append("DoRA")
    if config.get("modules_to_save"):
        problems.append(f"fully trained modules {config['modules_to_save']}")
    if config.get("alpha_pattern") or config.get("rank_pattern"):
        problems.append("per-module rank or alpha")
    if config.get("bias", "none") != "none":
        problems.append(f"bias={config['bias']}")
    if problems:
        raise FactoryError(f"adapter {folder}: llama.cpp cannot apply {', '.join(problems)}; "
                           "use the transformers backend for it")
    return config


def _tensors(folder: Path) -> dict[str, Any]:
    file = folder / "adapter_model.safetensors"
    if file.exists():
        from safetensors.numpy import load_file

        return load_file(str(file))
    import torch

    state = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def convert(folder: Path, out: Path, facts: dict[str, Any]) -> Path:
    """Write the PEFT LoRA adapter in ``folder`` as a GGUF LoRA adapter at ``out``."""
    import gguf
    import numpy as np

    folder = Path(folder)
    if facts["arch"] not in SUPPORTED_ARCHS:
        raise FactoryError(f"adapter {folder}: the llama.cpp adapter path supports "
                           f"{', '.join(sorted(SUPPORTED_ARCHS))} GGUFs, not {facts['arch']!r}; use "
                           "the transformers backend")
    config = _config(folder)
    rank = int(config["r"])
    alpha = float(config["lora_alpha"]) * (math.sqrt(rank) if config.get("use_rslora") else 1.0)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[facts["arch"].upper()], facts["n_layer"])
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in _tensors(folder).items():
        module, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")
        if part not in ("A.weight", "B.weight"):
            raise FactoryError(f"adapter {folder}: tensor {key} is not a LoRA A/B matrix")
        pairs.setdefault(module, {})[part[0]] = np.asarray(tensor, dtype=np.float32)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")  # renamed when complete: never half a file
    writer = gguf.GGUFWriter(str(tmp), facts["arch"])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for module, ab in sorted(pairs.items()):
        target = names.get_name(module)
        if target is None or set(ab) != {"A", "B"}:
            raise FactoryError(f"adapter {folder}: no llama.cpp tensor for {module}")
        b = ab["B"]
        if facts["arch"] in PERMUTED_ARCHS and module.endswith(("q_proj", "k_proj")):
            b = permute_rows(b, facts["n_head"] if module.endswith("q_proj") else facts["n_head_kv"])
        writer.add_tensor(f"{target}.weight.lora_a", np.ascontiguousarray(ab["A"]))
        writer.add_tensor(f"{target}.weight.lora_b", np.ascontiguousarray(b))
    return _finish(writer, tmp, out)


def _finish(writer: Any, tmp: Path, out: Path) -> Path:
    """Write the GGUF file under a temporary name, then move it into place in one step (a killed
    conversion leaves no half-written file where the cache looks)."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def dequantized(source: Path, dtype: str) -> Path:
    """``source`` with every tensor dequantized to ``float32`` (or ``float16`` for matrices), made
    once and cached by the source's name, size and modification time."""
    import gguf
    import numpy as np

    if dtype not in ("float32", "float16"):
        raise ValueError(f"llama_cpp option dtype: float32 or float16, not {dtype!r}")
    stat = source.stat()
    out = cache_dir() / "gguf" / f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}-{dtype}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(str(source))
    arch = reader.fields["general.architecture"].contents()
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for name, found in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue  # written by the writer itself / no longer true
        kind = found.types[0]
        sub = found.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, found.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        data = data.reshape(tuple(int(d) for d in reversed(tensor.shape)))
        half = dtype == "float16" and data.ndim > 1  # norms stay fp32, as llama.cpp's converter does
        writer.add_tensor(tensor.name, data.astype(np.float16 if half else np.float32))
    return _finish(writer, tmp, out)


def adapter_files(adapters: list[str], base_gguf: Path) -> list[Path]:
    """A GGUF LoRA file per adapter folder (converted once, cached by the adapter's hash)."""
    folder = cache_dir() / "lora_gguf"
    folder.mkdir(parents=True, exist_ok=True)
    facts = base_facts(base_gguf)  # metadata only (memory-mapped): cheap
    shape = f"{facts['arch']}-{facts['n_layer']}x{facts['n_head']}x{facts['n_head_kv']}"
    files = []
    for adapter in map(Path, adapters):
        out = folder / f"{adapters_id([adapter])}-{shape}.gguf"
        if not out.exists():
            convert(adapter, out, facts)
        files.append(out)
    return files


def attach_adapters(model: Any, ctx: Any, files: list[Path]) -> None:
    """Load each GGUF LoRA file for ``model`` and apply them all to ``ctx`` at scale 1 (their sum
    is what merging them in order gives: an adapter trained on a merged one adds to it)."""
    import ctypes

    import llama_cpp as L

    handles = []
    for file in files:
        handle = L.llama_adapter_lora_init(model, str(file).encode())
        if not handle:
            raise RuntimeError(f"llama.cpp could not load the LoRA adapter {file}")
        handles.append(handle)  # freed with the model
    array = (L.llama_adapter_lora_p_ctypes * len(handles))(*handles)
    scales = (ctypes.c_float * len(handles))(*([1.0] * len(handles)))
    if L.llama_set_adapters_lora(ctx, array, len(handles), scales) != 0:
        raise RuntimeError("llama.cpp refused the LoRA adapters")
