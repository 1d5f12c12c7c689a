"""What DynamoDB leaves unprocessed in a batch is sent again after a growing wait (stamina's
exponential backoff with jitter), and a batch that never goes through ends in a clear error."""

from __future__ import annotations

from typing import Any

import pytest
import stamina.instrumentation

from agentstream.adapters.dynamo.client import LeftUnprocessed, batch_write, existing_keys
from agentstream.retry import RetryPolicy
from agentstream.adapters.dynamo import client as dynamo


class Throttled:
    """A DynamoDB that leaves the last request of each batch unprocessed `times` times."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls: list[dict[str, Any]] = []

    def _left(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(request)
        if len(self.calls) > self.times:
            return {}
        return {table: entries if isinstance(entries, list) else {**entries, "Keys": entries["Keys"][-1:]}
                for table, entries in request.items()}

    async def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        left = self._left(RequestItems)
        return {"UnprocessedItems": {t: e[-1:] for t, e in left.items()}} if left else {}

    async def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        left = self._left(RequestItems)
        table, entries = next(iter(RequestItems.items()))
        served = entries["Keys"][:-1] if left else entries["Keys"]
        return {"Responses": {table: served}, **({"UnprocessedKeys": left} if left else {})}


@pytest.fixture
def waits() -> Any:
    seen: list[float] = []
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([lambda details: seen.append(details.wait_for)])
    yield seen
    stamina.instrumentation.set_on_retry_hooks(hooks)


async def test_unprocessed_items_are_sent_again_after_a_wait(waits: list[float]) -> None:
    ddb = Throttled(times=3)
    puts = [{"PutRequest": {"Item": {"k": {"S": str(i)}}}} for i in range(3)]
    await batch_write(ddb, {"t": puts})
    assert len(ddb.calls) == 4 and ddb.calls[-1] == {"t": puts[-1:]}
    assert len(waits) == 3 and all(w > 0 for w in waits) and waits[-1] > waits[0]


async def test_unprocessed_keys_are_read_again_and_every_item_is_found(waits: list[float]) -> None:
    ddb = Throttled(times=2)
    keys = [{"k": str(i)} for i in range(3)]
    found = await existing_keys(ddb, "t", keys)
    assert sorted(f["k"] for f in found) == ["0", "1", "2"] and len(ddb.calls) == 3 and len(waits) == 2


async def test_a_batch_that_never_goes_through_ends_in_one_clear_error(waits: list[float], monkeypatch: Any) -> None:
    monkeypatch.setattr(dynamo, "UNPROCESSED_TRIES", RetryPolicy(attempts=4, wait_initial=0.01, wait_max=0.02, timeout=5))
    ddb = Throttled(times=10**6)
    with pytest.raises(LeftUnprocessed, match="1 requests left unprocessed after"):
        await dynamo.until_processed(lambda p: ddb.batch_write_item(RequestItems=p),
                                     {"t": [{"PutRequest": {}}]}, "UnprocessedItems", dynamo.UNPROCESSED_TRIES)
    assert len(ddb.calls) == 4 and len(waits) == 3 and all(w > 0 for w in waits)
