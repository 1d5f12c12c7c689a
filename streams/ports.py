"""The stores a conversation's processing needs, as narrow interfaces (ports).

`adapters/event_store.EventStore` and `adapters/projection_store.ProjectionStore` implement
them over DynamoDB; `adapters/memory_stores.py` implements them in memory with the same semantics
(tests/unit/test_store_contract.py runs one suite against both, moto and ministack). An append's
transaction items (`append_items`) are opaque: only the projection store of the same backend
writes them, in one transaction with its puts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agentstream.adapters.dynamo.event_store import AppendResult
from agentstream.adapters.side_items import AddTo, Claim, SideItem, SideRefused, TakeFrom
from agentstream.events import Event
from agentstream.projections.base import Item, Projection, Put

if TYPE_CHECKING:
    from agentstream.settings import Tables

__all__ = ["AddTo", "Claim", "Clock", "ConfigVersions", "Directory", "EventLog", "ItemBatches", "LiveItemsPort", "SideItem",
           "SideRefused", "StateStore", "StoreConfig", "StreamHeads", "TakeFrom", "VersionedDirectory"]


class StoreConfig(Protocol):
    """What a process over the stored log and projections reads of the configuration: the table
    names and the idle time after which a fold ends a session."""

    @property
    def tables(self) -> Tables: ...

    @property
    def session_idle_minutes(self) -> int: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class Directory(Protocol):
    """The business data a reply is made from (`adapters/business.BusinessDirectory`)."""

    def version(self, kind: str, name: str) -> str: ...

    async def info(self, business_id: str) -> dict[str, Any] | None: ...

    async def system_instructions(self, business_type: str) -> str: ...

    async def rag_entries(self, business_id: str) -> list[dict[str, Any]]: ...


class EventLog(Protocol):
    """The event log: gapless per-stream seqs, appends at most once per external id."""

    async def append(self, event: Event, external_id: str | None = None, aliases: tuple[str, ...] = (),
                     head: int | None = None, guessed: bool = False) -> AppendResult: ...

    async def append_with(self, event: Event, side: Sequence[SideItem], external_id: str | None = None,
                          head: int | None = None) -> AppendResult:
        """`append`, with side items in the same transaction: all go in or none (`SideRefused`);
        a duplicate external id returns the first event and changes no side item."""
        ...

    async def set_side(self, business_id: str, name: str, values: dict[str, Any]) -> None:
        """Set a side item's values whatever it held (a replay rebuilding it: never an add)."""
        ...

    async def side(self, business_id: str, name: str) -> dict[str, Any] | None:
        """A side item's values, None if there is none."""
        ...

    def append_items(self, event: Event, external_id: str, side: Sequence[SideItem] = ()) -> list[Any]:
        """The transaction items of an append at the event's own seq (and of its side items)."""
        ...

    async def read(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[Event]: ...

    async def read_items(self, stream: str, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]: ...

    async def get(self, stream: str, seq: int) -> Event | None: ...

    async def head(self, stream: str) -> int: ...

    async def find(self, business_id: str, external_id: str) -> Event | None: ...

    async def has(self, business_id: str, external_id: str) -> bool: ...

    async def by_id(self, event_id: str) -> Event | None: ...

    async def forgotten_at(self, business_id: str, user_id: str) -> datetime | None: ...


class StateStore(Protocol):
    """The projections' items: puts are monotonic on their position; `write` is one transaction."""

    async def load_states(self, projections: Iterable[Projection], business_id: str,
                          user_id: str) -> dict[str, Item | None]: ...

    async def write(self, puts: list[Put], appends: list[Any] | None = None) -> None:
        """All or nothing: `AppendRaced` if an append's condition failed, `StaleWrite` if a put's did."""
        ...

    async def write_bulk(self, puts: list[Put]) -> None: ...

    async def delete_stale(self, stale: list[tuple[Projection, Put]]) -> None: ...

    async def load_memory(self, business_id: str, user_id: str) -> dict[str, Any] | None: ...

    async def session(self, session_id: str) -> dict[str, Any] | None: ...

    async def session_messages(self, session_id: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    async def customer_messages(self, business_id: str, user_id: str) -> list[dict[str, Any]]: ...


class ConfigVersions(Protocol):
    """The config history (`adapters/dynamo/config_history.ConfigHistory`): every version of a
    business's data with the time it came into force."""

    async def record(self, key: str, content: Any, at: datetime) -> str:
        """Keep `content` as in force from `at` unless it is the latest already; its version."""
        ...

    async def at(self, key: str, when: datetime) -> tuple[Any, str] | None:
        """(content, version) in force at `when`; None when nothing was recorded by then."""
        ...

    async def versions(self, key: str) -> list[tuple[str, Any, str]]:
        """Every recorded version, oldest first: (validFrom, content, version)."""
        ...


class VersionedDirectory(Directory, Protocol):
    """The business data with its history: what explain and replay read the past from."""

    @property
    def history(self) -> ConfigVersions: ...


class StreamHeads(Protocol):
    """The head seq of every conversation in the log (replay's list of what to rebuild)."""

    async def stream_heads(self) -> dict[str, int]: ...


class LiveItemsPort(Protocol):
    """Projection items as they are now, by table name and key (`replay --verify` compares them)."""

    async def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None: ...


class ItemBatches(Protocol):
    """Unconditional puts gathered across conversations (a replay into empty tables)."""

    def add(self, table: str, items: list[dict[str, Any]]) -> None: ...

    async def flush(self) -> None: ...
