"""Reading structured (JSON) replies: the one extractor every step, scorer and tool uses.

A request asks for JSON with ``Request.chat(..., json_schema=...)``: backends that can constrain
decoding enforce the schema; the others are only asked, so the reply may wrap its JSON in prose or
a code fence. ``extract_json`` finds it either way.
"""

from __future__ import annotations

import json
import re
from typing import Any


def extract_json(text: str) -> Any | None:
    """The JSON value a completion holds: the whole text, a ```json fence, or the outermost {...}/[...]."""
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidates = [text.strip()] + ([fence.group(1).strip()] if fence else [])
    for opener, closer in ("{}", "[]"):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object a reply holds, or None (no JSON, or JSON that is not an object)."""
    value = extract_json(text)
    return value if isinstance(value, dict) else None
