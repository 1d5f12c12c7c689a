#!/usr/bin/env python3
"""The seed's `populate-system-instructions`: rag-system-instructions from agentstream/data/system_instructions.json."""

import asyncio

from agentstream.bootstrap import populate
from agentstream import logs
from agentstream.settings import load_settings

if __name__ == "__main__":
    logs.configure("WARNING", "console")
    for table, count in asyncio.run(populate(load_settings(), only=["rag_system"])).items():
        print(f"{table}: {count} items")
