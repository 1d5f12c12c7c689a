"""The topics as an AsyncAPI 3 document: each Kafka topic the settings name (`TOPIC_*`), the
messages it carries and their payloads, generated from the same pydantic models as `schemas/`."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from agentstream.events import EVENT_TYPES, OUTBOUND_TYPES, schema_version
from agentstream.settings import Settings

REF = "#/components/schemas/{model}"
KEY = {"type": "string", "description": "the streamId, `businessId#userId`: a conversation's events keep their order"}
DEAD_LETTER = {"type": "object", "required": ["stage", "error", "failedAt", "event"], "properties": {
    "stage": {"type": "string", "description": "the process step that gave up (worker, delivery, …)"},
    "error": {"type": "string"}, "failedAt": {"type": "string", "format": "date-time"},
    "event": {"description": "the record as it was read: an event of agent.events.v1, or its raw text"}}}
SHADOW_PAIR = {"type": "object", "required": ["streamId", "inbound"], "additionalProperties": True,
               "description": "an inbound message, the reply logged for it and the candidate model's answer",
               "properties": {"streamId": {"type": "string"}, "inbound": {"type": "object"}}}
SIGNAL = {"type": "object", "required": ["type", "streamId"], "additionalProperties": True,
          "description": "what a conversation shows now; never in the log, and losing one is harmless",
          "properties": {
              "type": {"enum": ["typing", "delta", "revoked"],
                       "description": "typing: a reply is being prepared; delta: the reply's text so far, as the model "
                                      "writes it; revoked: the widget visitor was revoked (gateways close its sockets)"},
              "streamId": {"type": "string"}, "channel": {"type": "string"},
              "eventId": {"type": "string", "description": "delta: the reply's eventId"},
              "text": {"type": "string", "description": "delta: the whole text so far"}}}
# topic setting → (what it carries, its messages: event types, or a name with its schema)
TOPICS: dict[str, tuple[str, list[str] | tuple[str, dict[str, Any]]]] = {
    "topic_events": ("Every event of the log, in log order per conversation, published by the bridge after "
                     "DynamoDB accepted it.", sorted(EVENT_TYPES)),
    "topic_replies": ("The messages for a customer, published once they are in the log; header `first: 1` on a "
                      "reply's first publication.", list(OUTBOUND_TYPES)),
    "topic_handoffs": ("HandoffRequested events that handed a conversation to a person, and new booking requests "
                       "(AppointmentRequested): the owner's feed.", ["HandoffRequested", "AppointmentRequested"]),
    "topic_dlq": ("Events that failed every attempt, with the stage and the error.", ("DeadLetter", DEAD_LETTER)),
    "topic_shadow": ("`agentstream shadow`'s pairs; nothing reads them back into the log.", ("ShadowPair", SHADOW_PAIR)),
    "topic_signals": ("Typing and the reply's text as it is written, for the gateways' sockets and the vendors' typing "
                      "indicators; a revoked widget visitor. 10 minutes' retention.", ("Signal", SIGNAL)),
}


def _message(name: str, schema_ref: str, summary: str) -> dict[str, Any]:
    return {"name": name, "title": name, "summary": summary, "contentType": "application/json",
            "payload": {"$ref": schema_ref}, "bindings": {"kafka": {"key": KEY, "bindingVersion": "0.5.0"}}}


def _event_schemas() -> dict[str, Any]:
    models = sorted(EVENT_TYPES.values(), key=lambda m: m.__name__)
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    return top.get("$defs", {})


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic the settings name."""
    schemas, messages, channels, operations = _event_schemas(), {}, {}, {}
    for event_type, model in EVENT_TYPES.items():
        summary = (model.__doc__ or event_type).strip().splitlines()[0]
        messages[event_type] = _message(event_type, REF.format(model=model.__name__),
                                        f"{summary} (schemaVersion {schema_version(event_type)})")
    for setting in sorted(n for n in Settings.model_fields if n.startswith("topic_")):
        name = setting.removeprefix("topic_")
        what, carried = TOPICS[setting]  # a new topic setting must say what it carries
        if isinstance(carried, tuple):
            schemas[carried[0]] = carried[1]
            messages[carried[0]] = _message(carried[0], REF.format(model=carried[0]), what)
            carried = [carried[0]]
        channels[name] = {"address": Settings.model_fields[setting].default, "description": what,
                          "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in carried}}
        operations[f"publish-{name}"] = {"action": "send", "channel": {"$ref": f"#/channels/{name}"},
                                         "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in carried]}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "agentstream topics", "version": "1",
                 "description": "Kafka topics of agentstream. Delivery is at least once: a consumer deduplicates by "
                                "(streamId, seq) and parses with agentstream.events.parse_event, which refuses an unknown "
                                "schemaVersion. Topic names are the defaults of the TOPIC_* settings."},
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                              "description": "`make up`'s Kafka (KAFKA_BOOTSTRAP_SERVERS)"}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": dict(sorted(messages.items()))},
    }
