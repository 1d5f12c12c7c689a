"""Settings from the environment, with the seed's variable names (README's Settings),
then from the `.env` file `agentstream up` writes (real environment variables win)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, DotEnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(SystemExit):
    """A wrong or missing setting: one clear line naming it, then exit."""


def home_dir() -> Path:
    """$AGENTSTREAM_HOME, else `.local` in the project root (the current folder for a copy
    installed outside a checkout)."""
    if os.environ.get("AGENTSTREAM_HOME"):
        return Path(os.environ["AGENTSTREAM_HOME"]).resolve()
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return root / ".local"


def env_file() -> Path | None:
    """The `.env` every command reads and `up` writes: $AGENTSTREAM_ENV_FILE (`none`: no file),
    else the one beside the home folder, i.e. the project root's `.env`."""
    chosen = os.environ.get("AGENTSTREAM_ENV_FILE", "").strip()
    if chosen:
        return None if chosen.lower() == "none" else Path(chosen).resolve()
    return home_dir().parent / ".env"


class _FromEnv(BaseSettings):
    """Real environment variables, then the `.env` file, found afresh at every load."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=env_file()), file_secret_settings


class Tables(_FromEnv):
    model_config = SettingsConfigDict(extra="ignore")

    events: str = Field(
        "ai-agent-events", validation_alias="DYNAMODB_EVENTS_TABLE", min_length=3,
        description="The event log: every message and change, the record everything else is rebuilt from.",
    )
    sessions: str = Field(
        "ai-agent-sessions", validation_alias="DYNAMODB_SESSIONS_TABLE", min_length=3,
        description="Conversations, rebuilt from the log.",
    )
    messages: str = Field(
        "ai-agent-messages", min_length=3,
        validation_alias=AliasChoices("DYNAMODB_MESSAGES_TABLE", "DYNAMODB_MESSIONS_TABLE"),
        description="The messages of each conversation, rebuilt from the log.",
    )
    business_info: str = Field(
        "business-info", validation_alias="DYNAMODB_BUSINESS_INFO_TABLE", min_length=3,
        description="Each business's details and settings (opening hours, budget, reply timing).",
    )
    rag_system: str = Field(
        "rag-system-instructions", validation_alias="DYNAMODB_RAG_SYSTEM_TABLE", min_length=3,
        description="The AI's instructions for each type of business.",
    )
    rag_business: str = Field(
        "rag-dynamic-business", validation_alias="DYNAMODB_RAG_DYNAMIC_BUSINESS_TABLE", min_length=3,
        description="Each business's knowledge the AI answers from.",
    )
    rag_user: str = Field(
        "rag-dynamic-user", validation_alias="DYNAMODB_RAG_DYNAMIC_USER_TABLE", min_length=3,
        description="What the AI remembers of each customer, rebuilt from the log.",
    )
    credentials: str = Field(
        "business-external-credentials", validation_alias="DYNAMODB_EXTERNAL_CREDENTIALS_TABLE", min_length=3,
        description="Each business's channel credentials and API keys, encrypted.",
    )
    leases: str = Field(
        "ai-agent-stream-leases", validation_alias="DYNAMODB_LEASES_TABLE", min_length=3,
        description="Which process holds which job (log shards, timers) and how far workers have read.",
    )
    facts: str = Field(
        "ai-agent-customer-facts", validation_alias="DYNAMODB_CUSTOMER_FACTS_TABLE", min_length=3,
        description="What is known about each customer (name, preferences), rebuilt from the log.",
    )
    config_history: str = Field(
        "ai-agent-config-history", validation_alias="DYNAMODB_CONFIG_HISTORY_TABLE", min_length=3,
        description="Every version of business info, instructions and knowledge, so `explain` shows what a past reply "
                    "was built from.",
    )
    analytics_snapshots: str = Field(
        "ai-agent-analytics-snapshots", validation_alias="DYNAMODB_ANALYTICS_SNAPSHOTS_TABLE", min_length=3,
        description="The analytics process's saved figures.",
    )
    inbox_views: str = Field(
        "ai-agent-inbox-views", validation_alias="DYNAMODB_INBOX_VIEWS_TABLE", min_length=3,
        description="What each owner has read in the inbox, and ended inbox sessions.",
    )
    rate_limits: str = Field(
        "ai-agent-rate-limits", validation_alias="DYNAMODB_RATE_LIMITS_TABLE", min_length=3,
        description="The rate limits' shared counters (they expire by themselves).",
    )
    widget_visitors: str = Field(
        "ai-agent-widget-visitors", validation_alias="DYNAMODB_WIDGET_VISITORS_TABLE", min_length=3,
        description="Chat-widget visitors: the current token and whether it is revoked.",
    )
    appointments: str = Field(
        "ai-agent-appointments", validation_alias="DYNAMODB_APPOINTMENTS_TABLE", min_length=3,
        description="Each customer's appointments, rebuilt from the log.",
    )
    bookings: str = Field(
        "ai-agent-bookings", validation_alias="DYNAMODB_BOOKINGS_TABLE", min_length=3,
        description="Every appointment by business and start time, so a day's bookings are one query; rebuilt from "
                    "the log.",
    )
    reminders: str = Field(
        "ai-agent-reminders", validation_alias="DYNAMODB_REMINDERS_TABLE", min_length=3,
        description="Each customer's pending appointment reminders, rebuilt from the log.",
    )
    usage: str = Field(
        "ai-agent-usage", validation_alias="DYNAMODB_USAGE_TABLE", min_length=3,
        description="Each business's model spend per month, for the spend ceiling.",
    )

DEFAULT_MEDIA_TYPES = ("image/jpeg,image/png,image/webp,image/heic,audio/ogg,audio/opus,audio/mpeg,audio/mp4,audio/aac,"
                       "audio/amr,audio/wav,audio/x-wav,audio/webm,application/pdf,text/plain,"
                       "application/vnd.openxmlformats-officedocument.wordprocessingml.document,application/msword")


class MediaSettings(_FromEnv):
    """Customers' files: where they are kept, what is accepted, the transcription model, and how
    long a reply waits for a voice note's transcript."""

    model_config = SettingsConfigDict(extra="ignore")

    bucket: str = Field(
        "agentstream-media", min_length=3, validation_alias="MEDIA_BUCKET",
        description="The S3 bucket customers' files are kept in (`setup` and `up` create it).",
    )
    s3_endpoint_url: str | None = Field(
        None, validation_alias="MEDIA_S3_ENDPOINT_URL",
        description="S3's address; unset: DYNAMODB_ENDPOINT_URL (ministack serves S3 there), or AWS itself.",
    )
    group: str = Field(
        "agentstream-media", min_length=1, validation_alias="MEDIA_GROUP",
        description="The Kafka consumer group the media processes (which fetch customers' files) share.",
    )
    max_image_bytes: int = Field(
        5 * 1024 * 1024, ge=1, validation_alias="MEDIA_MAX_IMAGE_BYTES",
        description="The largest photo accepted (WhatsApp's own limit).",
    )
    max_audio_bytes: int = Field(
        16 * 1024 * 1024, ge=1, validation_alias="MEDIA_MAX_AUDIO_BYTES",
        description="The largest voice note or audio file accepted (WhatsApp's own limit).",
    )
    max_document_bytes: int = Field(
        100 * 1024 * 1024, ge=1, validation_alias="MEDIA_MAX_DOCUMENT_BYTES",
        description="The largest document accepted (WhatsApp's own limit).",
    )
    allowed_types: str = Field(
        DEFAULT_MEDIA_TYPES, validation_alias="MEDIA_ALLOWED_TYPES",
        description="The file types accepted (comma-separated MIME types); any other is refused, never downloaded.",
    )
    wait_ms: int = Field(
        15_000, ge=0, validation_alias="MEDIA_WAIT_MS",
        description="Milliseconds a reply waits for the message's files to be kept or transcribed before answering "
                    "with what it has.",
    )
    download_timeout_s: float = Field(
        20.0, gt=0, validation_alias="MEDIA_DOWNLOAD_TIMEOUT",
        description="Seconds one file download may take.",
    )
    attempts: int = Field(
        4, ge=1, validation_alias="MEDIA_ATTEMPTS",
        description="How many times a file's download or transcription is tried before it is recorded as failed.",
    )
    retry_wait_s: float = Field(
        1.0, gt=0, validation_alias="MEDIA_RETRY_WAIT",
        description="Seconds before the first retry of a download or transcription; each later wait is longer.",
    )
    transcribe_base_url: str | None = Field(
        None, validation_alias="TRANSCRIBE_BASE_URL",
        description="The address of the voice-note transcription API; unset: OPENAI_BASE_URL.",
    )
    transcribe_api_key: str | None = Field(
        None, validation_alias="TRANSCRIBE_API_KEY", repr=False,
        description="The transcription API's key; unset: OPENAI_API_KEY; neither: voice notes are kept, not "
                    "transcribed.",
    )
    transcribe_model: str = Field(
        "whisper-1", validation_alias="TRANSCRIBE_MODEL",
        description="The model that transcribes voice notes.",
    )
    model_accepts_images: bool = Field(
        False, validation_alias="MODEL_ACCEPTS_IMAGES",
        description="`true`: the reply model is shown customers' photos; `false`: it is told a photo was sent.",
    )

    def limit(self, kind: str) -> int:
        return {"image": self.max_image_bytes, "audio": self.max_audio_bytes}.get(kind, self.max_document_bytes)

    def allowed(self, content_type: str) -> bool:
        main = content_type.split(";")[0].strip().lower()
        return main in {t.strip().lower() for t in self.allowed_types.split(",") if t.strip()}


class Settings(_FromEnv):
    # extra: a setting declared elsewhere (a channel provider's API base) may be given by name too
    model_config = SettingsConfigDict(extra="allow", populate_by_name=True)

    aws_region: str = Field(
        "us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="The AWS region of the tables and the files bucket.",
    )
    dynamodb_endpoint_url: str | None = Field(
        None, validation_alias="DYNAMODB_ENDPOINT_URL",
        description="DynamoDB's address; unset: AWS itself (`make up` sets the local ministack, "
                    "http://127.0.0.1:8000).",
    )
    dynamodb_client: Literal["lean", "botocore"] = Field(
        "lean", validation_alias="DYNAMODB_CLIENT",
        description="How a reply's database calls are made: `lean` (aiodynamo, about half the CPU) or `botocore` "
                    "(like every other call).",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", validation_alias="EVENT_LOOP",
        description="The event loop of the long-running processes: `uvloop` (less CPU per message) or `asyncio` "
                    "(Python's own, also used without uvloop).",
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Where Kafka is: the brokers' host:port.",
    )
    kafka_partitions: int = Field(
        6, ge=1, validation_alias="KAFKA_PARTITIONS",
        description="How many partitions `agentstream setup` gives the topics it creates: the most workers that can "
                    "share the load.",
    )
    topic_events: str = Field(
        "agent.events.v1", validation_alias="TOPIC_EVENTS",
        description="The topic carrying every event of the log, in order within each conversation.",
    )
    topic_replies: str = Field(
        "agent.replies.v1", validation_alias="TOPIC_REPLIES",
        description="The topic of what goes out to customers (replies, the owner's messages, notices, nudges), read "
                    "by delivery.",
    )
    topic_dlq: str = Field(
        "agent.dlq.v1", validation_alias="TOPIC_DLQ",
        description="The dead-letter topic: events that failed for good, with where and why.",
    )
    topic_shadow: str = Field(
        "agent.shadow.v1", validation_alias="TOPIC_SHADOW",
        description="Where `agentstream shadow` puts each message with its logged reply and the candidate's.",
    )
    topic_handoffs: str = Field(
        "agent.handoffs.v1", validation_alias="TOPIC_HANDOFFS",
        description="The owner's feed: conversations handed to a person and new booking requests.",
    )
    topic_signals: str = Field(
        "agent.signals.v1", validation_alias="TOPIC_SIGNALS",
        description="Typing and the reply as it is written, for the chat widget; never in the log, kept 10 minutes.",
    )

    openai_api_key: str | None = Field(
        None, validation_alias="OPENAI_API_KEY", repr=False,
        description="The key to the AI model's API; unset: an offline responder answers instead of a model.",
    )
    openai_base_url: str | None = Field(
        None, validation_alias="OPENAI_BASE_URL",
        description="The address of an OpenAI-compatible API; unset: OpenAI's own.",
    )
    openai_model: str = Field(
        "gpt-4o-mini", validation_alias="OPENAI_MODEL",
        description="The model that writes the replies.",
    )
    openai_timeout_s: float = Field(
        30.0, gt=0, validation_alias="OPENAI_TIMEOUT",
        description="Seconds a call to the model may take before it is given up.",
    )
    openai_max_retries: int = Field(
        3, ge=0, validation_alias="OPENAI_MAX_RETRIES",
        description="How many times a failed call to the model is tried again.",
    )
    prompt_budget_chars: int = Field(
        12000, ge=1000, validation_alias="PROMPT_BUDGET_CHARS",
        description="The most characters the model is given per reply; over it, business knowledge, then the oldest "
                    "turns are left out.",
    )
    facts_model_extraction: bool = Field(
        False, validation_alias="FACTS_MODEL_EXTRACTION",
        description="`true`: the model also picks facts about the customer out of each message (needs "
                    "OPENAI_API_KEY).",
    )
    model_prices: str = Field(
        "", validation_alias="MODEL_PRICES",
        description='Model prices for the spend ceiling, JSON {"model": [USD per 1M input tokens, per 1M output '
                    "tokens]}, over the built-in ones.",
    )
    spend_release_every_s: float = Field(
        60.0, ge=0, validation_alias="SPEND_RELEASE_EVERY",
        description="Seconds between the rounds that give conversations paused for budget back to the AI once there "
                    "is budget again; 0: this worker runs none.",
    )

    google_token_uri: str = Field(
        "https://oauth2.googleapis.com/token", validation_alias="GOOGLE_TOKEN_URI",
        description="Where Gmail access tokens are refreshed.",
    )
    public_base_url: str = Field(
        "http://localhost:8080", validation_alias="PUBLIC_BASE_URL",
        description="The public address vendors call your webhooks on; their signatures are checked against it.",
    )

    gateway_host: str = Field(
        "127.0.0.1", validation_alias="GATEWAY_HOST",
        description="The address the gateway listens on (127.0.0.1: this machine only).",
    )
    gateway_port: int = Field(
        8080, ge=0, le=65535, validation_alias="GATEWAY_PORT_HTTP",
        description="The port of the gateway: the API, webhooks, chat widget and inbox.",
    )
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, validation_alias="MAX_BODY_BYTES",
        description="The largest request body the gateway takes; a larger one is refused (413).",
    )
    credentials_key: str | None = Field(
        None, validation_alias="AGENTSTREAM_SECRET_KEY", repr=False,
        description="The secret key (`agentstream credentials keygen`) that encrypts stored credentials and signs "
                    "cookies and snapshots; gateway, delivery and analytics need it.",
    )
    widget_token_ttl_s: int = Field(
        24 * 3600, ge=60, validation_alias="WIDGET_TOKEN_TTL",
        description="Seconds a chat widget's token stays valid.",
    )

    session_idle_minutes: int = Field(
        60, ge=1, validation_alias="SESSION_IDLE_MINUTES",
        description="Minutes of silence after which a conversation ends, for businesses that set none "
                    "(`sessionIdleMinutes`).",
    )
    reply_after_quiet_ms: int | None = Field(
        None, ge=0, validation_alias="REPLY_AFTER_QUIET_MS",
        description="Milliseconds the AI waits after a customer's last message, so a burst of messages gets one reply "
                    "(a business may set its own); unset: the channel's (2500 on chat, 0 on Gmail and REST).",
    )
    session_timer_every_s: float = Field(
        60.0, ge=0, validation_alias="SESSION_TIMER_EVERY",
        description="Seconds between the rounds that end idle conversations and send nudges (one worker at a time); "
                    "0: this worker runs none.",
    )
    reminder_timer_every_s: float = Field(
        60.0, ge=0, validation_alias="REMINDER_TIMER_EVERY",
        description="Seconds between the rounds that send appointment reminders (one worker at a time); 0: this "
                    "worker runs none.",
    )
    clock_file: str | None = Field(
        None, validation_alias="CLOCK_FILE",
        description="For tests: a file holding the time (ISO, UTC) the timers read instead of the system's clock; "
                    "unset: the system's.",
    )
    bridge_start_position: str = Field(
        "TRIM_HORIZON", validation_alias="BRIDGE_START_POSITION",
        description="Where a new bridge starts reading the log's changes: `TRIM_HORIZON` (the oldest kept) or "
                    "`LATEST` (new ones only).",
    )
    bridge_idle_poll_s: float = Field(
        0.05, gt=0, validation_alias="BRIDGE_IDLE_POLL",
        description="Seconds the bridge waits before asking again when there was nothing new in the log; doubled while "
                    "nothing comes, up to 0.25 seconds.",
    )
    bridge_lease_ttl_ms: int = Field(
        10_000, ge=1_000, validation_alias="BRIDGE_LEASE_TTL_MS",
        description="Milliseconds before another bridge takes over the work of one that stopped.",
    )
    worker_group: str = Field(
        "agentstream-worker", validation_alias="WORKER_GROUP",
        description="The Kafka consumer group the workers (which write the replies) share.",
    )
    delivery_group: str = Field(
        "agentstream-delivery", validation_alias="DELIVERY_GROUP",
        description="The Kafka consumer group the delivery processes (which send replies to the channels) share.",
    )
    analytics_group: str = Field(
        "agentstream-analytics", min_length=1, validation_alias="ANALYTICS_GROUP",
        description="The Kafka consumer group name of the analytics processes (each adds its own suffix, so each sees "
                    "every event).",
    )
    analytics_snapshot_every_s: float = Field(
        60.0, gt=0, validation_alias="ANALYTICS_SNAPSHOT_EVERY",
        description="Seconds between the analytics process's saves of its figures (it saves on stop too).",
    )
    worker_positions_every_s: float = Field(
        10.0, ge=0, validation_alias="WORKER_POSITIONS_EVERY",
        description="Seconds between saves of how far each worker has read the events topic; 0: none saved or used.",
    )
    worker_max_inflight: int = Field(
        2000, ge=1, validation_alias="WORKER_MAX_INFLIGHT",
        description="The most events one worker handles at once, across conversations.",
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, validation_alias="METRICS_PORT",
        description="The local port (on 127.0.0.1) where a process serves Prometheus /metrics; 0: none served.",
    )
    log_level: str = Field(
        "INFO", validation_alias="LOG_LEVEL",
        description="How much the processes log: DEBUG, INFO, WARNING or ERROR.",
    )
    log_format: str = Field(
        "json", validation_alias="LOG_FORMAT",
        description="`json` (one JSON object a line, for log tools) or `console` (for people).",
    )

    # safety: older secret keys that still decrypt/verify (comma-separated, newest first); limits
    previous_secret_keys: str = Field(
        "", validation_alias="AGENTSTREAM_PREVIOUS_SECRET_KEYS", repr=False,
        description="Older secret keys (comma-separated, newest first) that still decrypt and verify while you change "
                    "the key (`agentstream credentials rekey`).",
    )
    limit_socket_frames: str = Field(
        "20/10 seconds", validation_alias="LIMIT_SOCKET_FRAMES",
        description="How many messages one chat-widget connection may send, as a rate; over it the connection closes.",
    )
    limit_visitors_per_address: str = Field(
        "20/hour", validation_alias="LIMIT_VISITORS_PER_ADDRESS",
        description="How many new chat-widget visitors one internet address may create, as a rate.",
    )
    limit_visitors_per_business: str = Field(
        "2000/hour", validation_alias="LIMIT_VISITORS_PER_BUSINESS",
        description="How many new chat-widget visitors one business may get, as a rate.",
    )
    limit_sign_in_per_address: str = Field(
        "10/minute", validation_alias="LIMIT_SIGN_IN_PER_ADDRESS",
        description="How many inbox sign-in attempts one internet address may make, as a rate.",
    )
    limit_sign_in_per_business: str = Field(
        "100/hour", validation_alias="LIMIT_SIGN_IN_PER_BUSINESS",
        description="How many inbox sign-in attempts one business may get, as a rate.",
    )
    cache_entries: int = Field(
        10_000, ge=100, validation_alias="CACHE_ENTRIES",
        description="The most entries each gateway cache (business info, instructions, knowledge, credentials) holds, "
                    "each for 30 s.",
    )
    widget_visitor_lifetime_days: int = Field(
        90, ge=1, validation_alias="WIDGET_VISITOR_LIFETIME_DAYS",
        description="Days from a chat-widget visitor's first visit after which it gets no new token.",
    )

    tables: Tables = Field(
        default_factory=Tables,
        description="The DynamoDB tables' names.",
    )
    media: MediaSettings = Field(
        default_factory=MediaSettings,
        description="Customers' files and voice notes.",
    )

    @field_validator("bridge_start_position")
    @classmethod
    def _position(cls, v: str) -> str:
        if v.upper() not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError("must be TRIM_HORIZON or LATEST")
        return v.upper()

    @field_validator("limit_socket_frames", "limit_visitors_per_address", "limit_visitors_per_business",
                     "limit_sign_in_per_address", "limit_sign_in_per_business")
    @classmethod
    def _rate(cls, v: str) -> str:
        from limits import parse

        try:
            parse(v)
        except ValueError:
            raise ValueError("must be a rate such as 20/minute or 100/10 seconds") from None
        return v

    @field_validator("dynamodb_endpoint_url", "openai_api_key", "openai_base_url", mode="before")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v or None

    def setting(self, name: str, default: str) -> str:
        """A setting declared outside this class (a channel provider's API base, say): the
        environment, then the `.env` file, then `default` (or as given to the constructor)."""
        given = (self.model_extra or {}).get(name)
        if given:
            return str(given)
        if os.environ.get(name):
            return os.environ[name]
        path = env_file()
        found = dotenv_values(path).get(name) if path is not None and path.is_file() else None
        return found or default

    @property
    def aws_credentials(self) -> dict[str, str]:
        """Fixed local credentials for the local server; the default chain for AWS."""
        if self.dynamodb_endpoint_url:
            return {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        return {}


def load_settings() -> Settings:
    """Read the environment; a bad value exits with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        raise SettingsError(f"agentstream: bad setting {name}: {err['msg']}") from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
