"""Fixture sizes. `make test` runs each large test at a size that still catches its faults;
`make soak` sets AGENTSTREAM_SOAK=1 and runs them at full size."""

from __future__ import annotations

import os

SOAK = os.environ.get("AGENTSTREAM_SOAK", "") not in ("", "0")


def size(test: int, soak: int) -> int:
    """`soak` under `make soak` (AGENTSTREAM_SOAK=1), else `test`."""
    return soak if SOAK else test
