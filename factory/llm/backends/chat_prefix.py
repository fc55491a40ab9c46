"""Magpie's prompt: a model's own chat template rendered up to where a user turn's text starts.

The template is rendered with a marker as the user's message and cut at the marker, so the
prefix is exactly what the model saw before every user message it was tuned on (system turn and
role header included): continuing it, an aligned model writes a user query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
MARKER = "FactoryUserTurnMarker7f3a"  # letters only: survives templates that strip or escape


def cut_at_user_turn(render: Callable[[list[dict[str, str]]], str], system: str | None) -> str:
    """``render(messages)`` of [system?, user MARKER], cut where the marker starts."""
    messages = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": "user", "content": MARKER}]
    text = render(messages)
    at = text.find(MARKER)
    if at < 0:
        raise ValueError("the chat template does not write the user's message as given")
    return text[:at]


def render_jinja(template: str, messages: list[dict[str, str]], bos_token: str = "",
                 eos_token: str = "") -> str:
    """A Hugging Face style chat template rendered in jinja2's sandbox (as transformers does)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> Any:
        raise ValueError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos_token, eos_token=eos_token)
