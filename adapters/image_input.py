"""Photos given to a model that accepts images: the prompt's last message (the customer's) as
text and image parts, each photo read from the media bucket as a data URL."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

LoadImage = Callable[[str], Awaitable[tuple[bytes, str] | None]]  # object key → (bytes, content type)


async def with_images(messages: list[dict[str, Any]], keys: Sequence[str], load: LoadImage) -> list[dict[str, Any]]:
    """`messages` with the photos of `keys` added to the last one (a photo no longer kept is left out)."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": messages[-1]["content"]}]
    for key in keys:
        found = await load(key)
        if found is not None:
            data, content_type = found
            url = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return [*messages[:-1], {**messages[-1], "content": parts}] if len(parts) > 1 else messages
