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

    events: str = Field("ai-agent-events", validation_alias="DYNAMODB_EVENTS_TABLE", min_length=3)
    sessions: str = Field("ai-agent-sessions", validation_alias="DYNAMODB_SESSIONS_TABLE", min_length=3)
    messages: str = Field(
        "ai-agent-messages",
        validation_alias=AliasChoices("DYNAMODB_MESSAGES_TABLE", "DYNAMODB_MESSIONS_TABLE"),
        min_length=3,
    )
    business_info: str = Field("business-info", validation_alias="DYNAMODB_BUSINESS_INFO_TABLE", min_length=3)
    rag_system: str = Field("rag-system-instructions", validation_alias="DYNAMODB_RAG_SYSTEM_TABLE", min_length=3)
    rag_business: str = Field(
        "rag-dynamic-business", validation_alias="DYNAMODB_RAG_DYNAMIC_BUSINESS_TABLE", min_length=3
    )
    rag_user: str = Field("rag-dynamic-user", validation_alias="DYNAMODB_RAG_DYNAMIC_USER_TABLE", min_length=3)
    credentials: str = Field(
        "business-external-credentials", validation_alias="DYNAMODB_EXTERNAL_CREDENTIALS_TABLE", min_length=3
    )
    leases: str = Field("ai-agent-stream-leases", validation_alias="DYNAMODB_LEASES_TABLE", min_length=3)
    facts: str = Field("ai-agent-customer-facts", validation_alias="DYNAMODB_CUSTOMER_FACTS_TABLE", min_length=3)
    config_history: str = Field("ai-agent-config-history", validation_alias="DYNAMODB_CONFIG_HISTORY_TABLE", min_length=3)
    analytics_snapshots: str = Field("ai-agent-analytics-snapshots", validation_alias="DYNAMODB_ANALYTICS_SNAPSHOTS_TABLE",
                                     min_length=3)
    inbox_views: str = Field("ai-agent-inbox-views", validation_alias="DYNAMODB_INBOX_VIEWS_TABLE", min_length=3)  # beside the log
    rate_limits: str = Field("ai-agent-rate-limits", validation_alias="DYNAMODB_RATE_LIMITS_TABLE", min_length=3)
    widget_visitors: str = Field("ai-agent-widget-visitors", validation_alias="DYNAMODB_WIDGET_VISITORS_TABLE", min_length=3)
    appointments: str = Field("ai-agent-appointments", validation_alias="DYNAMODB_APPOINTMENTS_TABLE", min_length=3)
    bookings: str = Field("ai-agent-bookings", validation_alias="DYNAMODB_BOOKINGS_TABLE", min_length=3)
    reminders: str = Field("ai-agent-reminders", validation_alias="DYNAMODB_REMINDERS_TABLE", min_length=3)
    usage: str = Field("ai-agent-usage", validation_alias="DYNAMODB_USAGE_TABLE", min_length=3)  # each business's month of model spend

DEFAULT_MEDIA_TYPES = ("image/jpeg,image/png,image/webp,image/heic,audio/ogg,audio/opus,audio/mpeg,audio/mp4,audio/aac,"
                       "audio/amr,audio/wav,audio/x-wav,audio/webm,application/pdf,text/plain,"
                       "application/vnd.openxmlformats-officedocument.wordprocessingml.document,application/msword")


class MediaSettings(_FromEnv):
    """Customers' files: where they are kept, what is accepted, the transcription model, and how
    long a reply waits for a voice note's transcript."""

    model_config = SettingsConfigDict(extra="ignore")

    bucket: str = Field("agentstream-media", min_length=3, validation_alias="MEDIA_BUCKET")
    s3_endpoint_url: str | None = Field(None, validation_alias="MEDIA_S3_ENDPOINT_URL")  # default: DYNAMODB_ENDPOINT_URL (ministack)
    group: str = Field("agentstream-media", min_length=1, validation_alias="MEDIA_GROUP")
    max_image_bytes: int = Field(5 * 1024 * 1024, ge=1, validation_alias="MEDIA_MAX_IMAGE_BYTES")
    max_audio_bytes: int = Field(16 * 1024 * 1024, ge=1, validation_alias="MEDIA_MAX_AUDIO_BYTES")
    max_document_bytes: int = Field(100 * 1024 * 1024, ge=1, validation_alias="MEDIA_MAX_DOCUMENT_BYTES")
    allowed_types: str = Field(DEFAULT_MEDIA_TYPES, validation_alias="MEDIA_ALLOWED_TYPES")
    wait_ms: int = Field(15_000, ge=0, validation_alias="MEDIA_WAIT_MS")  # mediaWaitMs: a reply waits this long for a transcript
    download_timeout_s: float = Field(20.0, gt=0, validation_alias="MEDIA_DOWNLOAD_TIMEOUT")
    attempts: int = Field(4, ge=1, validation_alias="MEDIA_ATTEMPTS")
    retry_wait_s: float = Field(1.0, gt=0, validation_alias="MEDIA_RETRY_WAIT")  # the first backoff
    transcribe_base_url: str | None = Field(None, validation_alias="TRANSCRIBE_BASE_URL")  # default: OPENAI_BASE_URL
    transcribe_api_key: str | None = Field(None, validation_alias="TRANSCRIBE_API_KEY", repr=False)  # default: OPENAI_API_KEY
    transcribe_model: str = Field("whisper-1", validation_alias="TRANSCRIBE_MODEL")
    model_accepts_images: bool = Field(False, validation_alias="MODEL_ACCEPTS_IMAGES")

    def limit(self, kind: str) -> int:
        return {"image": self.max_image_bytes, "audio": self.max_audio_bytes}.get(kind, self.max_document_bytes)

    def allowed(self, content_type: str) -> bool:
        main = content_type.split(";")[0].strip().lower()
        return main in {t.strip().lower() for t in self.allowed_types.split(",") if t.strip()}


class Settings(_FromEnv):
    # extra: a setting declared elsewhere (a channel provider's API base) may be given by name too
    model_config = SettingsConfigDict(extra="allow", populate_by_name=True)

    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    dynamodb_endpoint_url: str | None = Field(None, validation_alias="DYNAMODB_ENDPOINT_URL")
    # the hot path's client (a turn's calls): "lean" (aiodynamo over aiohttp) or "botocore"
    dynamodb_client: Literal["lean", "botocore"] = Field("lean", validation_alias="DYNAMODB_CLIENT")
    event_loop: Literal["uvloop", "asyncio"] = Field("uvloop", validation_alias="EVENT_LOOP")  # of the long-lived processes
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_partitions: int = Field(6, ge=1, validation_alias="KAFKA_PARTITIONS")
    topic_events: str = Field("agent.events.v1", validation_alias="TOPIC_EVENTS")
    topic_replies: str = Field("agent.replies.v1", validation_alias="TOPIC_REPLIES")
    topic_dlq: str = Field("agent.dlq.v1", validation_alias="TOPIC_DLQ")
    topic_shadow: str = Field("agent.shadow.v1", validation_alias="TOPIC_SHADOW")  # `agentstream shadow`'s pairs
    topic_handoffs: str = Field("agent.handoffs.v1", validation_alias="TOPIC_HANDOFFS")  # the owner is told, by streamId
    topic_signals: str = Field("agent.signals.v1", validation_alias="TOPIC_SIGNALS")  # typing and streamed text, short retention

    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY", repr=False)
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    openai_model: str = Field("gpt-4o-mini", validation_alias="OPENAI_MODEL")
    openai_timeout_s: float = Field(30.0, gt=0, validation_alias="OPENAI_TIMEOUT")
    openai_max_retries: int = Field(3, ge=0, validation_alias="OPENAI_MAX_RETRIES")
    prompt_budget_chars: int = Field(12000, ge=1000, validation_alias="PROMPT_BUDGET_CHARS")
    facts_model_extraction: bool = Field(False, validation_alias="FACTS_MODEL_EXTRACTION")  # needs OPENAI_API_KEY
    model_prices: str = Field("", validation_alias="MODEL_PRICES")  # JSON {model: [USD per 1M input, per 1M output tokens]}, over the built-in table
    spend_release_every_s: float = Field(60.0, ge=0, validation_alias="SPEND_RELEASE_EVERY")  # 0: this worker releases none

    google_token_uri: str = Field("https://oauth2.googleapis.com/token", validation_alias="GOOGLE_TOKEN_URI")
    public_base_url: str = Field("http://localhost:8080", validation_alias="PUBLIC_BASE_URL")

    gateway_host: str = Field("127.0.0.1", validation_alias="GATEWAY_HOST")
    gateway_port: int = Field(8080, ge=0, le=65535, validation_alias="GATEWAY_PORT_HTTP")
    max_body_bytes: int = Field(256 * 1024, ge=1024, validation_alias="MAX_BODY_BYTES")
    credentials_key: str | None = Field(None, validation_alias="AGENTSTREAM_SECRET_KEY", repr=False)
    widget_token_ttl_s: int = Field(24 * 3600, ge=60, validation_alias="WIDGET_TOKEN_TTL")

    session_idle_minutes: int = Field(60, ge=1, validation_alias="SESSION_IDLE_MINUTES")
    reply_after_quiet_ms: int | None = Field(None, ge=0, validation_alias="REPLY_AFTER_QUIET_MS")  # for businesses that set none
    session_timer_every_s: float = Field(60.0, ge=0, validation_alias="SESSION_TIMER_EVERY")  # 0: this worker runs none
    reminder_timer_every_s: float = Field(60.0, ge=0, validation_alias="REMINDER_TIMER_EVERY")  # 0: this worker runs none
    clock_file: str | None = Field(None, validation_alias="CLOCK_FILE")  # tests: the time the timers read (ISO UTC in a file)
    bridge_start_position: str = Field("TRIM_HORIZON", validation_alias="BRIDGE_START_POSITION")
    bridge_idle_poll_s: float = Field(0.05, gt=0, validation_alias="BRIDGE_IDLE_POLL")
    bridge_lease_ttl_ms: int = Field(10_000, ge=1_000, validation_alias="BRIDGE_LEASE_TTL_MS")
    worker_group: str = Field("agentstream-worker", validation_alias="WORKER_GROUP")
    delivery_group: str = Field("agentstream-delivery", validation_alias="DELIVERY_GROUP")
    analytics_group: str = Field("agentstream-analytics", min_length=1, validation_alias="ANALYTICS_GROUP")
    analytics_snapshot_every_s: float = Field(60.0, gt=0, validation_alias="ANALYTICS_SNAPSHOT_EVERY")
    worker_positions_every_s: float = Field(10.0, ge=0, validation_alias="WORKER_POSITIONS_EVERY")  # 0: none saved or used
    worker_max_inflight: int = Field(2000, ge=1, validation_alias="WORKER_MAX_INFLIGHT")
    metrics_port: int = Field(0, ge=0, le=65535, validation_alias="METRICS_PORT")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: str = Field("json", validation_alias="LOG_FORMAT")

    # safety: older secret keys that still decrypt/verify (comma-separated, newest first); limits
    previous_secret_keys: str = Field("", validation_alias="AGENTSTREAM_PREVIOUS_SECRET_KEYS", repr=False)
    limit_socket_frames: str = Field("20/10 seconds", validation_alias="LIMIT_SOCKET_FRAMES")  # per socket
    limit_visitors_per_address: str = Field("20/hour", validation_alias="LIMIT_VISITORS_PER_ADDRESS")
    limit_visitors_per_business: str = Field("2000/hour", validation_alias="LIMIT_VISITORS_PER_BUSINESS")
    limit_sign_in_per_address: str = Field("10/minute", validation_alias="LIMIT_SIGN_IN_PER_ADDRESS")
    limit_sign_in_per_business: str = Field("100/hour", validation_alias="LIMIT_SIGN_IN_PER_BUSINESS")
    cache_entries: int = Field(10_000, ge=100, validation_alias="CACHE_ENTRIES")  # per cache keyed by caller input
    widget_visitor_lifetime_days: int = Field(90, ge=1, validation_alias="WIDGET_VISITOR_LIFETIME_DAYS")

    tables: Tables = Field(default_factory=Tables)
    media: MediaSettings = Field(default_factory=MediaSettings)

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
