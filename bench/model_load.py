"""Loading the embedded GGUF for training/eval: transformers' GGUF reader vs the fp32 copy.

    python bench/model_load.py

Side by side in one run: model + tokenizer straight from the GGUF (dequantized in Python on every
load) and from the bit-identical fp32 safetensors copy (``factory.core.models.fp32_copy``), which the
loaders use by default. Prints both times and their ratio; writes JSON to bench/results/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.table import Table  # noqa: E402

from report import report  # noqa: E402


def main() -> None:
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch
    from transformers import AutoTokenizer

    from factory.core.models import fp32_copy, load_gguf_model, load_model, load_tokenizer, resolve_model

    ref = resolve_model("smollm2")
    start = time.perf_counter()
    copy = fp32_copy(ref, make=True)  # written once per machine; not part of either timing
    made_s = time.perf_counter() - start
    start = time.perf_counter()
    direct = load_gguf_model(ref)
    AutoTokenizer.from_pretrained(ref.folder, gguf_file=ref.gguf_file)
    gguf_s = time.perf_counter() - start
    start = time.perf_counter()
    copied = load_model(ref)
    load_tokenizer(ref)
    copy_s = time.perf_counter() - start
    copied_weights = copied.state_dict()
    same = all(torch.equal(t, copied_weights[k]) for k, t in direct.state_dict().items())
    results = {"gguf_s": gguf_s, "copy_s": copy_s, "ratio": copy_s / gguf_s, "identical": same,
               "copy_folder": str(copy.folder), "first_copy_s": made_s}
    table = Table(title="embedded model load for training / eval (one run, side by side)")
    for col in ("figure", "measured"):
        table.add_column(col)
    table.add_row("model + tokenizer from the GGUF", f"{gguf_s:.2f} s")
    table.add_row("model + tokenizer from the fp32 copy", f"{copy_s:.2f} s")
    table.add_row("ratio copy ÷ GGUF", f"{copy_s / gguf_s:.3f}")
    table.add_row("weights identical", str(same))
    print(f"figures: {report(table, results, 'model_load-')}")


if __name__ == "__main__":
    main()
