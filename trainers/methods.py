"""The four training methods by name: the one table ``factory train``, ``advise`` and ``capacity``
read (each object is defined beside its train function)."""

from __future__ import annotations

from trainers.dpo import DPO
from trainers.grpo import GRPO
from trainers.method import Method
from trainers.reward import REWARD
from trainers.sft import SFT

METHODS: dict[str, Method] = {m.name: m for m in (SFT, DPO, REWARD, GRPO)}
