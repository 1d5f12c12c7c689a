"""`setup` (tables and topics, idempotent) and `populate` (system instructions, RAG, demo data)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from agentstream.adapters.kafka import client as kafka
from agentstream.adapters.dynamo.credentials import credential_store
from agentstream.adapters.dynamo.business import BusinessDirectory
from agentstream.adapters.dynamo.client import dynamodb_client, s3_client, scan_all, to_item
from agentstream.adapters.media_bucket import MediaBucket
from agentstream.adapters.dynamo.tables import SetupReport, ensure_tables
from agentstream.projections.nudge import settings_error as nudge_settings_error
from agentstream.projections.templates import settings_error as templates_settings_error
from agentstream.projections.reminders import settings_error as reminders_settings_error
from agentstream.settings import Settings
from agentstream.adapters.channels.rest import PROVIDER as REST

DATA_FILES = {"business_info": "businesses.json", "rag_system": "system_instructions.json", "rag_business": "rag_business.json"}


async def setup(settings: Settings, partitions: int | None = None, with_topics: bool = True) -> tuple[SetupReport, list[str]]:
    """Create missing tables (finishing incomplete ones) and topics; a second run changes nothing."""
    async with dynamodb_client(settings) as ddb:
        report = await ensure_tables(ddb, settings.tables)
    await ensure_media_bucket(settings)
    created_topics = await kafka.ensure_topics(settings, partitions) if with_topics else []
    return report, created_topics


async def ensure_media_bucket(settings: Settings) -> bool:
    """The media bucket (customers' photos, voice notes, documents), created if missing."""
    async with s3_client(settings) as s3:
        return await MediaBucket(s3, settings.media.bucket).ensure()


def load_data(name: str, data_dir: Path | None = None) -> list[dict[str, Any]]:
    if data_dir is not None:
        return json.loads((data_dir / name).read_text(encoding="utf-8"))
    return json.loads(resources.files("agentstream").joinpath(f"data/{name}").read_text(encoding="utf-8"))


class BusinessDataError(ValueError):
    """A business-info item whose settings are refused (nothing is written)."""


def check_businesses(items: list[dict[str, Any]], default_idle_minutes: int) -> None:
    """Refuse business settings that cannot hold (a nudge not shorter than the idle timeout)."""
    for item in items:
        error = nudge_settings_error(item, default_idle_minutes) or templates_settings_error(item) \
            or reminders_settings_error(item)
        if error:
            raise BusinessDataError(error)


async def populate(settings: Settings, data_dir: Path | None = None, only: list[str] | None = None) -> dict[str, int]:
    """Put the data files' items into their tables (idempotent: same items, same keys); business
    settings that cannot hold are refused before anything is written."""
    counts: dict[str, int] = {}
    if not only or "business_info" in only:
        check_businesses(load_data(DATA_FILES["business_info"], data_dir), settings.session_idle_minutes)
    async with dynamodb_client(settings) as ddb:
        for attr, name in DATA_FILES.items():
            if only and attr not in only:
                continue
            table = getattr(settings.tables, attr)
            items = load_data(name, data_dir)
            for item in items:
                await ddb.put_item(TableName=table, Item=to_item(item))
            counts[table] = len(items)
        await record_history(ddb, settings)
    return counts


async def record_history(ddb: Any, settings: Settings) -> None:
    """Record the business data as it now is in the config history (a change from `populate` is
    kept with its time, not only when a worker next reads it)."""
    directory = BusinessDirectory(ddb, settings.tables, ttl_s=0)
    for info in await scan_all(ddb, TableName=settings.tables.business_info):
        await directory.info(info["businessId"])
        await directory.system_instructions(str(info.get("businessType", "general")))
        await directory.rag_entries(info["businessId"])


async def demo_credentials(settings: Settings, business_ids: list[str]) -> dict[str, str]:
    """A widget signing key for each demo business that has none; returns new REST API keys."""
    issued: dict[str, str] = {}
    async with dynamodb_client(settings) as ddb:
        store = credential_store(ddb, settings)
        for business_id in business_ids:
            if not (await store.get(business_id, "widget")).get("signingKey"):
                await store.rotate(business_id, "widget")
            if not (await store.get(business_id, REST.name)).get("apiKeyHash"):
                issued[business_id] = (await store.rotate(business_id, REST.name))["apiKey"]
    return issued
