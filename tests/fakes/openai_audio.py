"""A local OpenAI-compatible transcription server: `POST /v1/audio/transcriptions` answers with
the text queued for it (or fails the next N calls), and records what it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.serving import LocalServer


@dataclass
class AudioState:
    text: str = "Bună ziua, aș vrea o programare mâine la ora 10."
    fail_next: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)


def create_app(state: AudioState) -> Starlette:
    async def transcriptions(request: Request) -> JSONResponse:
        form = await request.form()
        upload = form.get("file")
        data = await upload.read() if hasattr(upload, "read") else b""  # type: ignore[union-attr]
        state.requests.append({"model": form.get("model"), "size": len(data),
                               "filename": getattr(upload, "filename", None),
                               "authorization": request.headers.get("authorization")})
        if state.fail_next > 0:
            state.fail_next -= 1
            return JSONResponse({"error": {"message": "injected", "type": "server_error"}}, status_code=500)
        return JSONResponse({"text": state.text, "usage": {"type": "duration", "seconds": 3}})

    return Starlette(routes=[Route("/v1/audio/transcriptions", transcriptions, methods=["POST"])])


class AudioServer(LocalServer):
    def __init__(self) -> None:
        self.state = AudioState()
        super().__init__(create_app(self.state))

    def env(self) -> dict[str, str]:
        return {"TRANSCRIBE_BASE_URL": f"{self.base}/v1", "TRANSCRIBE_API_KEY": "test-transcribe-key",
                "TRANSCRIBE_MODEL": "whisper-test"}
