"""method name -> (config class, train function), imported lazily: TRL loads only when training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _sft() -> tuple[type, Callable[..., Any]]:
    from trainers.config import SFTLoraConfig
    from trainers.sft import train_sft

    return SFTLoraConfig, train_sft


def _dpo() -> tuple[type, Callable[..., Any]]:
    from trainers.config import DPOLoraConfig
    from trainers.dpo import train_dpo

    return DPOLoraConfig, train_dpo


def _reward() -> tuple[type, Callable[..., Any]]:
    from trainers.config import RewardLoraConfig
    from trainers.reward import train_reward

    return RewardLoraConfig, train_reward


def _grpo() -> tuple[type, Callable[..., Any]]:
    from trainers.config import GRPOLoraConfig
    from trainers.grpo import train_grpo

    return GRPOLoraConfig, train_grpo


METHODS: dict[str, Callable[[], tuple[type, Callable[..., Any]]]] = {
    "sft": _sft, "dpo": _dpo, "reward": _reward, "grpo": _grpo}
