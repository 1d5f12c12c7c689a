"""`agentstream media`: fetches customers' files as soon as their messages are in the log.

A consumer of `agent.events.v1` in a group of its own (`MEDIA_GROUP`: several processes share the
work). For each file of an inbound that agentstream reads (a photo, a voice note, a document) it
downloads the file from the vendor, with retries and backoff (a vendor's 404 while a file
settles, a timeout), checks its type against the allow-list and its size against its kind's
limit, keeps it in the media bucket under the customer's stream and content hash, transcribes a
voice note, and appends what happened to the customer's stream: `MediaTranscribed`, then
`MediaStored`; or `MediaRefused`; or `MediaFailed` after the last attempt. Each outcome is
appended once (an idempotency key per file), so a record read again costs a lookup. Nothing here
holds up the conversation: the reply waits for these events only up to `mediaWaitMs`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from agentstream import idempotency as keys
from agentstream.adapters.media_bucket import MediaBucket, object_key
from agentstream.adapters.media_fetch import FetchFailed, Fetched, Retryable, Source, TooLarge
from agentstream.events import Event, MessageReceived, new_event, parse_event
from agentstream.adapters.kafka.client import loads
from agentstream.projections.media_notes import read_files
from agentstream.retry import RetryPolicy
from agentstream.streams.ports import EventLog
from agentstream.streams.runner import ConsumerRunner, Failure

log = structlog.get_logger(__name__)
Fetch = Callable[[Source, int], Awaitable[Fetched]]  # (where, size limit) → the file
SourceOf = Callable[[MessageReceived, Mapping[str, Any]], Awaitable[Source]]  # the provider's credentials and base


class MediaLimits(Protocol):
    """What is accepted: a size limit per kind and a type allow-list."""

    def limit(self, kind: str) -> int: ...

    def allowed(self, content_type: str) -> bool: ...


class Transcribes(Protocol):
    model: str

    async def transcribe(self, data: bytes, content_type: str) -> Any: ...


@dataclass(frozen=True)
class FileJob:
    inbound: MessageReceived
    index: int
    attachment: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.attachment.get("kind"))


def parse_inbound(record: Any) -> MessageReceived | None:
    """The inbound with files to fetch of a record of `agent.events.v1`; None for anything else."""
    headers = dict(record.headers or ())
    if headers.get("type") not in (None, b"MessageReceived"):
        return None
    event = parse_event(loads(record.value))
    return event if isinstance(event, MessageReceived) and read_files(event) else None


def _size(size: int, up: bool = True) -> str:
    """A size as the customer reads it: a file's rounded up, a limit's down (so a file just past
    its limit never reads as equal to it)."""
    whole = math.ceil if up else math.floor
    if size >= 1024 * 1024:
        return f"{whole(size * 10 / 1024 / 1024) / 10:.1f} MB"
    return f"{max(1, whole(size / 1024))} KB"


class MediaFetcher:
    """Fetches, checks, keeps and transcribes the files of one inbound at a time."""

    def __init__(self, store: EventLog, bucket: MediaBucket, fetch: Fetch, source_of: SourceOf, limits: MediaLimits,
                 transcriber: Transcribes | None = None, policy: RetryPolicy = RetryPolicy()) -> None:
        self._store = store
        self._bucket = bucket
        self._fetch = fetch
        self._source_of = source_of
        self._limits = limits
        self._transcriber = transcriber
        self._policy = policy

    async def handle(self, inbound: MessageReceived, attempt: int = 1) -> None:
        """Every readable file of `inbound` (one already settled is left alone; none of a
        customer erased since: a late record never brings their files back)."""
        forgotten = await self._store.forgotten_at(inbound.businessId, inbound.userId)
        if forgotten is not None and inbound.occurredAt <= forgotten:
            return
        for index in read_files(inbound):
            attachment = inbound.payload.attachments[index].model_dump(exclude_none=True)
            job = FileJob(inbound, index, attachment)
            if not await self._store.has(inbound.businessId, keys.media(inbound.eventId, index)):
                await self._one(job)

    async def _one(self, job: FileJob) -> None:
        declared = str(job.attachment.get("contentType") or "")
        if declared and not self._limits.allowed(declared):
            await self._refused(job, f"type not accepted: {declared}", declared)
            return
        limit = self._limits.limit(job.kind)
        said = int(job.attachment.get("size") or 0)
        if said > limit:  # the vendor said its size: no download needed
            await self._too_large(job, said, limit, declared)
            return
        try:
            fetched, attempts = await self._download(job, limit)
        except TooLarge as exc:
            await self._too_large(job, exc.size, limit, declared)
            return
        except FetchFailed as exc:
            await self._append(job, "MediaFailed", keys.media(job.inbound.eventId, job.index),
                               {"error": str(exc)[:1000], "attempts": getattr(exc, "attempts", 1), "stage": "download"})
            return
        content_type = fetched.content_type.split(";")[0].strip().lower()
        if not self._limits.allowed(content_type):
            await self._refused(job, f"type not accepted: {content_type}", content_type, len(fetched.data))
            return
        await self._keep(job, fetched.data, content_type)

    async def _download(self, job: FileJob, limit: int) -> tuple[Fetched, int]:
        """The file, tried with backoff while the vendor's failure may pass (its credentials read
        again on each try: a refreshed token); the attempts it took."""
        attempts = 0
        try:
            async for attempt in self._policy.attempts_of(Retryable):
                with attempt:
                    attempts += 1
                    return await self._fetch(await self._source_of(job.inbound, job.attachment), limit), attempts
        except FetchFailed as exc:
            exc.attempts = attempts  # type: ignore[attr-defined]
            log.warning("media.fetch_failed", eventId=job.inbound.eventId, attempts=attempts, error=str(exc)[:200])
            raise
        raise FetchFailed("no attempt was made")  # pragma: no cover - stamina always tries once

    async def _keep(self, job: FileJob, data: bytes, content_type: str) -> None:
        sha = hashlib.sha256(data).hexdigest()
        key = object_key(job.inbound.businessId, job.inbound.userId, sha)
        await self._bucket.put(key, data, content_type)
        if job.kind == "audio" and self._transcriber is not None:
            await self._transcribe(job, data, content_type)
        await self._append(job, "MediaStored", keys.media(job.inbound.eventId, job.index),
                           {"key": key, "contentType": content_type, "size": len(data), "sha256": sha, "kind": job.kind})

    async def _transcribe(self, job: FileJob, data: bytes, content_type: str) -> None:
        assert self._transcriber is not None
        key = keys.transcript(job.inbound.eventId, job.index)
        if await self._store.has(job.inbound.businessId, key):
            return
        attempts = 0
        try:
            async for attempt in self._policy.attempts_of(Exception):
                with attempt:
                    attempts += 1
                    said = await self._transcriber.transcribe(data, content_type)
        except Exception as exc:
            await self._append(job, "MediaFailed", key, {"error": f"{type(exc).__name__}: {exc}"[:1000],
                                                         "attempts": attempts, "stage": "transcription"})
            return
        await self._append(job, "MediaTranscribed", key, {"text": said.text[:16_000], "model": said.model, "usage": said.usage})

    async def _too_large(self, job: FileJob, size: int, limit: int, content_type: str) -> None:
        await self._refused(job, f"too large: {_size(size)} > {_size(limit, up=False)}", content_type, size)

    async def _refused(self, job: FileJob, reason: str, content_type: str, size: int | None = None) -> None:
        log.info("media.refused", eventId=job.inbound.eventId, reason=reason)
        await self._append(job, "MediaRefused", keys.media(job.inbound.eventId, job.index),
                           {"reason": reason, "kind": job.kind, "contentType": content_type, "size": size})

    async def _append(self, job: FileJob, event_type: str, key: str, payload: dict[str, Any]) -> Event:
        inbound = job.inbound
        draft = new_event(event_type, business_id=inbound.businessId, user_id=inbound.userId, channel=inbound.channel,
                          location_id=inbound.locationId,
                          payload={"sourceEventId": inbound.eventId, "index": job.index, **payload})
        appended = await self._store.append(draft, external_id=key)
        log.info("media.appended", type=event_type, eventId=appended.event.eventId, source=inbound.eventId,
                 duplicate=appended.duplicate)
        return appended.event


def media_runner(consumer: Any, fetcher: MediaFetcher, dlq: Any, policy: RetryPolicy = RetryPolicy()) -> ConsumerRunner[MessageReceived]:
    """The loop of `agentstream media` (the consumer in `MEDIA_GROUP`, not yet subscribed). A
    record that does not parse is the worker's to dead-letter; one whose handling fails every
    attempt (the bucket or the log unreachable) goes to the DLQ, stage "media"."""

    async def dead_letter(failure: Failure[MessageReceived]) -> None:
        if failure.stage == "parse":
            log.warning("media.unreadable_record", error=failure.error[:300])
            return
        await dlq.send("media", failure.record.key, failure.record.value, failure.error)

    return ConsumerRunner(consumer, "media", parse_inbound, fetcher.handle, dead_letter,
                          key_of=lambda record, inbound: inbound.streamId, policy=policy)
