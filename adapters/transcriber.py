"""Voice notes to text through the `openai` client's transcription endpoint (its own base URL and
model: many OpenAI-compatible chat servers have no audio endpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXTENSIONS = {"audio/ogg": "ogg", "audio/opus": "ogg", "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/aac": "m4a",
              "audio/amr": "amr", "audio/wav": "wav", "audio/x-wav": "wav", "audio/webm": "webm"}


@dataclass(frozen=True)
class Transcript:
    text: str
    model: str
    usage: dict[str, int]


class Transcriber:
    """One `openai.AsyncOpenAI` client (made by the bootstrap) and the model it asks."""

    def __init__(self, client: Any, model: str) -> None:
        self._client = client
        self.model = model

    async def transcribe(self, data: bytes, content_type: str) -> Transcript:
        ext = EXTENSIONS.get(content_type.split(";")[0].strip().lower(), "ogg")
        result = await self._client.audio.transcriptions.create(model=self.model, file=(f"voice.{ext}", data, content_type))
        usage = getattr(result, "usage", None)
        seconds = getattr(usage, "seconds", None) if usage is not None else None
        tokens = getattr(usage, "total_tokens", None) if usage is not None else None
        counted = {k: int(v) for k, v in (("seconds", seconds), ("totalTokens", tokens)) if v is not None}
        return Transcript(str(getattr(result, "text", "") or "").strip(), self.model, counted)

    async def close(self) -> None:
        await self._client.close()
