"""What a customer's files become in a reply (pure): the line the model reads for each file, the
voice note's transcript as the message's text, and what the customer is told, in their language,
about a file agentstream does not read or did not accept. The worker and `explain` both build
the prompt from these, from the media events in the log before the reply."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agentstream.events import Event, MediaFailed, MediaRefused, MediaStored, MediaTranscribed, MessageReceived

MEDIA_TYPES = ("MediaStored", "MediaRefused", "MediaFailed", "MediaTranscribed")
READ_KINDS = ("image", "audio", "document")
NOT_FILES = ("fallback", "template", "location")  # Messenger's link previews and the like: no file to open
NAMES = {"image": "a photo", "audio": "a voice note", "document": "a document"}
ASK_TO_WRITE = {
    "ro": "Îmi pare rău, nu pot deschide acest tip de fișier (video, sticker sau atașament). Vă rog să ne scrieți mesajul.",
    "en": "Sorry, I can't open this kind of file (a video, a sticker or an attachment). Please write your message instead.",
}
REFUSED = {
    "ro": "Îmi pare rău, nu am putut accepta fișierul trimis ({reason}). Vă rog să ne scrieți mesajul.",
    "en": "Sorry, we could not accept the file you sent ({reason}). Please write your message instead.",
}
REASONS_RO = {"too large": "este prea mare", "type not accepted": "tipul nu este acceptat"}


@dataclass(frozen=True)
class MediaOutcome:
    """The media events of one inbound found in the log before its reply."""

    stored: list[MediaStored] = field(default_factory=list)
    refused: list[MediaRefused] = field(default_factory=list)
    failed: list[MediaFailed] = field(default_factory=list)
    transcripts: list[MediaTranscribed] = field(default_factory=list)

    def settled(self, indexes: Iterable[int]) -> bool:
        """Whether every file of `indexes` has its last word: kept, refused or failed to download."""
        done = {e.payload.index for e in (*self.stored, *self.refused)}
        done |= {e.payload.index for e in self.failed if e.payload.stage == "download"}
        return all(i in done for i in indexes)


def read_files(inbound: MessageReceived) -> list[int]:
    """The indexes of the inbound's files agentstream fetches (photos, voice notes, documents)."""
    return [i for i, a in enumerate(inbound.payload.attachments) if getattr(a, "kind", None) in READ_KINDS]


def outcome_of(inbound: MessageReceived, events: Sequence[Event], before_seq: int | None = None) -> MediaOutcome:
    """The media events about `inbound` among `events` (only those before `before_seq`)."""
    found = MediaOutcome()
    for e in events:
        if e.type not in MEDIA_TYPES or e.payload.sourceEventId != inbound.eventId:  # type: ignore[union-attr]
            continue
        if before_seq is not None and e.seq >= before_seq:
            continue
        {MediaStored: found.stored, MediaRefused: found.refused, MediaFailed: found.failed,
         MediaTranscribed: found.transcripts}[type(e)].append(e)  # type: ignore[index]
    return found


def message_text(inbound: MessageReceived, outcome: MediaOutcome, images_as_input: bool = False) -> str:
    """The customer's message as the model reads it: the caption, each voice note's transcript,
    and a line per file saying what it is (and whether the model sees it)."""
    lines = [inbound.payload.content] if inbound.payload.content.strip() else []
    said = {t.payload.index: t.payload.text for t in outcome.transcripts}
    refused = {r.payload.index: r.payload.reason for r in outcome.refused}
    stored = {s.payload.index: s.payload for s in outcome.stored}
    for i, a in enumerate(inbound.payload.attachments):
        kind = getattr(a, "kind", None)
        if kind in NOT_FILES:
            continue
        if kind not in READ_KINDS:
            lines.append(f"[The customer also sent {_unread_name(a)}, which cannot be opened here: tell them and ask "
                         "them to write what it says if it matters.]")
            continue
        if i in refused:
            lines.append(f"[The customer sent {NAMES[kind]} that was not accepted ({refused[i]}): tell them and ask them to write instead.]")
        elif kind == "audio" and i in said:
            lines.append(f"[Voice note, transcribed:] {said[i]}")
        elif kind == "audio":
            lines.append("[The customer sent a voice note that could not be transcribed: ask them to write instead.]")
        elif kind == "image" and images_as_input and i in stored:
            lines.append(f"[The customer sent a photo, given to you as an image (sha256 {stored[i].sha256[:16]}).]")
        elif kind == "image":
            lines.append("[The customer sent a photo, which you cannot see: ask them to describe it if it matters.]")
        else:
            name = getattr(a, "name", None) or "a document"
            lines.append(f"[The customer sent a document ({name}), which you cannot read: ask what it says if it matters.]")
    return "\n".join(lines)


def _unread_name(attachment: object) -> str:
    """What a file agentstream does not read is, for the model: a video, a sticker or a file."""
    kind, ctype = str(getattr(attachment, "kind", "") or ""), str(getattr(attachment, "contentType", "") or "")
    if kind == "video" or ctype.startswith("video/"):
        return "a video"
    return "a sticker" if "sticker" in (kind, ctype.split("/")[-1]) else "a file"


def image_keys(inbound: MessageReceived, outcome: MediaOutcome) -> list[str]:
    """The stored photos' object keys, in the inbound's order."""
    return [s.payload.key for s in sorted(outcome.stored, key=lambda s: s.payload.index) if s.payload.kind == "image"]


def canned_media_reply(inbound: MessageReceived, outcome: MediaOutcome, language: str) -> str | None:
    """What the customer is told without the model: to write instead of sending a file agentstream
    does not read, or that the file they sent alone was not accepted (and why)."""
    if inbound.payload.content.strip():
        return None
    files = read_files(inbound)
    if not files and inbound.payload.kind == "unsupported" and inbound.payload.attachments:
        return ASK_TO_WRITE.get(language, ASK_TO_WRITE["en"])
    refused = [r.payload.reason for r in outcome.refused]
    if files and len(refused) == len(files):
        why, _, detail = refused[0].partition(": ")
        reason = refused[0] if language != "ro" or why not in REASONS_RO else f"{REASONS_RO[why]}: {detail}"
        return REFUSED.get(language, REFUSED["en"]).format(reason=reason)
    return None


ACKNOWLEDGED = {  # what the offline responder says of each file: (ro, en)
    "image": ("Am primit fotografia, dar nu o pot vedea aici: ne puteți descrie pe scurt ce arată?",
              "Thanks for the photo; I can't see photos here: could you describe briefly what it shows?"),
    "audio": ("Am primit mesajul vocal, dar nu îl pot asculta aici: ne puteți scrie ce doriți?",
              "Thanks for the voice note; I can't listen to it here: could you write what you need?"),
    "heard": ("Am ascultat mesajul vocal.", "I've listened to your voice note."),
    "document": ("Am primit documentul, dar nu îl pot citi aici: ne puteți scrie pe scurt ce conține?",
                 "Thanks for the document; I can't read it here: could you write briefly what it says?"),
    "unread": ("Am primit și un fișier pe care nu îl pot deschide aici (video, sticker sau atașament): "
               "ne puteți scrie ce conține, dacă e important?",
               "I also got a file I can't open here (a video, a sticker or an attachment): "
               "could you write what it says, if it matters?"),
}


def file_states(inbound: MessageReceived, outcome: MediaOutcome) -> list[str]:
    """Per file, what the reply knows of it: "heard" (a transcribed voice note), its kind, or
    "unread" (a video, a sticker or a file agentstream does not open)."""
    said = {t.payload.index for t in outcome.transcripts}
    refused = {r.payload.index for r in outcome.refused}
    readable = set(read_files(inbound))
    states = []
    for i, a in enumerate(inbound.payload.attachments):
        kind = str(getattr(a, "kind", "") or "")
        if kind in NOT_FILES:
            continue
        if i not in readable:
            states.append("unread")
        elif i not in refused:
            states.append("heard" if kind == "audio" and i in said else kind)
    return states


def acknowledgement(states: Sequence[str], language: str) -> str:
    """The offline responder's words about the customer's files (each kind once)."""
    pick = 0 if language == "ro" else 1
    return " ".join(ACKNOWLEDGED[s][pick] for s in dict.fromkeys(states) if s in ACKNOWLEDGED)
