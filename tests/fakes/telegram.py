"""A local Telegram Bot API: sendMessage, sendChatAction, sendPhoto and setMessageReaction for
one bot token, answered in the Bot API's shapes (an unknown token gets its 401), and getFile with
the file server for the files a test puts in `files`. Every call is recorded. Run it with `with TelegramServer("123:ABC") as telegram:`."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, bytes): getFile and the file server
        self.downloads: list[str] = []  # the file paths downloaded
        self._ids = itertools.count(1000)
        super().__init__(Starlette(routes=[Route("/bot{token}/getFile", self._get_file, methods=["GET", "POST"]),
                                           Route("/bot{token}/{method}", self._method, methods=["POST"]),
                                           Route("/file/bot{token}/{path:path}", self._file)]))

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method]

    async def _get_file(self, request: Request) -> JSONResponse:
        """getFile: the File object (with its file_path) of a known file_id, as the Bot API answers."""
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        file_id = request.query_params.get("file_id")
        if file_id is None and request.method == "POST":
            file_id = (await request.json()).get("file_id")
        if file_id not in self.files:
            return JSONResponse({"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"}, status_code=400)
        path, data = self.files[file_id]
        return JSONResponse({"ok": True, "result": {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                                    "file_size": len(data), "file_path": path}})

    async def _file(self, request: Request) -> Response:
        """The file server: the bytes at a file_path (served untyped, as octet-stream)."""
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        found = next((data for path, data in self.files.values() if path == request.path_params["path"]), None)
        if found is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        self.downloads.append(request.path_params["path"])
        return Response(found, media_type="application/octet-stream")

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
