#!/usr/bin/env python3
"""The seed's `populate-rag`: business info and dynamic business RAG from agentstream/data/."""

import asyncio

from agentstream.bootstrap import populate
from agentstream import logs
from agentstream.settings import load_settings

if __name__ == "__main__":
    logs.configure("WARNING", "console")
    for table, count in asyncio.run(populate(load_settings(), only=["business_info", "rag_business"])).items():
        print(f"{table}: {count} items")
