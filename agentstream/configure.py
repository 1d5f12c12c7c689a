"""The settings of a process as the command line starts it: loaded, logging configured, and,
for a command that runs once, its services checked reachable first."""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlsplit

from agentstream import logs
from agentstream.settings import Settings, settings as load


def configured(serve_metrics: bool = False) -> Settings:
    s = load()
    logs.configure(s.log_level, s.log_format, s.credentials_key)
    if serve_metrics and s.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(s.metrics_port, addr="127.0.0.1")
    return s


def one_shot() -> Settings:
    """Settings for a command that runs once and ends: an unreachable service fails it at once,
    in main()'s one line (botocore would retry a refused connection for ~25 s, and aiokafka
    logs every failed connect)."""
    s = configured()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if s.dynamodb_endpoint_url:
        check_reachable(s.dynamodb_endpoint_url)
    return s


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    from botocore.exceptions import EndpointConnectionError

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout_s).close()
    except OSError:
        raise EndpointConnectionError(endpoint_url=url) from None
