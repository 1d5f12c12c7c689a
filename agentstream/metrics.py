"""Prometheus metrics shared by every process (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPENDED = Counter("agentstream_events_appended_total", "Events appended to the log", ["type", "channel"])
INGEST_DUPLICATES = Counter("agentstream_ingest_duplicates_total", "Appends refused as duplicates", ["channel"])
BRIDGE_RECORDS = Counter("agentstream_bridge_records_total", "Stream records published to Kafka")
BRIDGE_LAG_MS = Gauge("agentstream_bridge_lag_ms", "Milliseconds behind the newest stream record", ["shard"])
BRIDGE_LAST_READ = Gauge(
    "agentstream_bridge_last_read_timestamp_seconds",
    "When GetRecords last answered for a shard; a bridge that silently stopped falls behind the clock", ["shard"],
)
BRIDGE_ERRORS = Counter("agentstream_bridge_errors_total", "Bridge errors", ["kind"])
BRIDGE_TRIMS = Counter("agentstream_bridge_trims_total", "Stream positions lost to trimming or a restart")
WORKER_EVENTS = Counter("agentstream_worker_events_total", "Events applied by the worker", ["type", "outcome"])
WORKER_INFLIGHT = Gauge("agentstream_worker_inflight", "Events taken but not yet durable")
REPLY_LATENCY = Histogram(
    "agentstream_reply_latency_seconds", "Inbound event time to reply appended",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DRAFTS_DROPPED = Counter("agentstream_drafts_dropped_total", "Model drafts dropped: the customer wrote again during the call")
MODEL_ERRORS = Counter("agentstream_model_errors_total", "Model calls that failed", ["kind"])
DELIVERIES = Counter("agentstream_deliveries_total", "Reply deliveries", ["channel", "outcome"])
DLQ_EVENTS = Counter("agentstream_dlq_events_total", "Events sent to the dead-letter topic", ["stage"])
CONSUMER_LAG = Gauge("agentstream_consumer_lag_records", "Records past a consumer group's committed offsets",
                     ["group", "topic"])
DLQ_SIZE = Gauge("agentstream_dlq_records", "Records in the dead-letter topic")
# Counted by a hook on the clients of adapters/dynamo/client.py; a DynamoDB client made elsewhere must
# count its calls here too (`agentstream bench pipeline` reads this counter from each process).
DYNAMODB_CALLS = Counter("agentstream_dynamodb_calls_total", "DynamoDB and DynamoDB Streams API calls made",
                         ["service", "operation"])
APPEND_CONFLICTS = Counter("agentstream_append_conflicts_total",
                           "Appends that lost the race for a stream's head and tried again, by the type of the event appended",
                           ["type"])
