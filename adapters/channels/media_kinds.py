"""Which kind of message a customer's file makes: image, audio (a voice note) and document are
kept and read; video, stickers and anything else are recorded as unsupported (the customer is
asked to write instead)."""

from __future__ import annotations

from typing import Any

READ_KINDS = ("image", "audio", "document")
# what a vendor calls a file → the message kind it makes (absent: unsupported)
VENDOR_KINDS = {"image": "image", "photo": "image", "audio": "audio", "voice": "audio", "document": "document",
                "file": "document"}


def kind_of_type(content_type: str | None) -> str | None:
    """The kind a MIME type makes (Twilio names only the type): image/*, audio/*, the document
    types; None (unsupported) for video and the rest."""
    main = (content_type or "").split(";")[0].strip().lower()
    if main.startswith("image/") and main != "image/webp":  # WhatsApp's stickers are WebP
        return "image"
    if main.startswith("audio/"):
        return "audio"
    if main.startswith("application/") or main.startswith("text/"):
        return "document"
    return None


def media_parts(vendor_kind: str, caption: str, attachment: dict[str, Any]) -> dict[str, Any]:
    """kind, content and attachments of a message carrying one file of the vendor's kind."""
    kind = VENDOR_KINDS.get(vendor_kind)
    attachment = {**{k: v for k, v in attachment.items() if v is not None}, "kind": kind or vendor_kind}
    if kind is not None:
        return {"kind": kind, "content": caption, "attachments": (attachment,)}
    return {"kind": "text" if caption else "unsupported", "content": caption, "attachments": (attachment,)}


def first_read_kind(attachments: tuple[dict[str, Any], ...]) -> str | None:
    """The kind of the first attachment agentstream reads, if any."""
    return next((a["kind"] for a in attachments if a.get("kind") in READ_KINDS), None)
