"""A local Telegram Bot API: sendMessage, sendChatAction, sendPhoto and setMessageReaction for
one bot token, answered in the Bot API's shapes (an unknown token gets its 401). Every call is
recorded. Run it with `with TelegramServer("123:ABC") as telegram:`."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.serving import LocalServer

METHODS = ("sendMessage", "sendChatAction", "sendPhoto", "sendAudio", "sendDocument", "sendVideo", "setMessageReaction")


@dataclass
class BotCall:
    method: str
    body: dict[str, Any]
    at: float = field(default_factory=time.time)


class TelegramServer(LocalServer):
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[BotCall] = []
        self._ids = itertools.count(1000)
        super().__init__(Starlette(routes=[Route("/bot{token}/{method}", self._method, methods=["POST"])]))

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method]

    async def _method(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        method, body = request.path_params["method"], await request.json()
        if method not in METHODS or "chat_id" not in body:
            return JSONResponse({"ok": False, "error_code": 400, "description": "Bad Request"}, status_code=400)
        self.calls.append(BotCall(method, body))
        if method in ("sendChatAction", "setMessageReaction"):
            return JSONResponse({"ok": True, "result": True})
        chat = {"id": int(body["chat_id"]), "type": "private"}
        return JSONResponse({"ok": True, "result": {"message_id": next(self._ids), "date": int(time.time()), "chat": chat,
                                                    **({"text": body["text"]} if "text" in body else {})}})
