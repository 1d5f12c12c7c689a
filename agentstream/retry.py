"""The one retry policy (exponential backoff with jitter, through `stamina`) for every retrying
caller: the worker, the consumer runner (delivery, analytics) and the owner's webhook.

It lives here, beside the events, so adapters and streams both import it without importing
each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stamina


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failing call is tried before giving up."""

    attempts: int = 5
    wait_initial: float = 0.5
    wait_max: float = 5.0
    wait_jitter: float = 0.5
    timeout: float = 30.0

    def attempts_of(self, on: type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]) -> Any:
        """`async for attempt in policy.attempts_of(on): with attempt: ...` retries what `on` names."""
        return stamina.retry_context(on=on, attempts=self.attempts, timeout=self.timeout,
                                     wait_initial=self.wait_initial, wait_max=self.wait_max,
                                     wait_jitter=self.wait_jitter)
