#!/usr/bin/env python3
"""The seed's `test-sessions-and-messages`: creates a session and messages for a throw-away
customer, reads them back through every GSI, then erases the customer. Exit status 1 on failure.

    python scripts/test_sessions_and_messages.py [BUSINESS_ID] [--keep]
"""

import asyncio
import sys

from agentstream import logs
from agentstream.settings import load_settings
from agentstream.wiring import run_selfcheck


async def main(business_id: str, keep: bool) -> bool:
    checks = await run_selfcheck(load_settings(), business_id, keep)
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    return all(c.ok for c in checks)


if __name__ == "__main__":
    logs.configure("WARNING", "console")
    args = [a for a in sys.argv[1:] if a != "--keep"]
    sys.exit(0 if asyncio.run(main(args[0] if args else "demo-salon", "--keep" in sys.argv)) else 1)
