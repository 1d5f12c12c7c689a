#!/usr/bin/env python3
"""The seed's `setup-dynamodb-tables`: every table with its GSIs (idempotent). Same as `agentstream setup --no-topics`."""

import asyncio

from agentstream.bootstrap import setup
from agentstream import logs
from agentstream.settings import load_settings

if __name__ == "__main__":
    logs.configure("WARNING", "console")
    report, _ = asyncio.run(setup(load_settings(), with_topics=False))
    print(f"created: {report.created or 'none'}; indexes added: {report.indexes_added or 'none'}")
