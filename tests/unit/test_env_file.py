"""The `.env` file: found beside the home folder (the project root), never read under the tests,
written by `up` without losing a person's own lines; real environment variables win."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agentstream.settings import PROJECT_ROOT, Settings, env_file
from agentstream.stack import secret_key, write_env_file
from tests.conftest import isolated_env
from tests.services import Endpoints


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away project root (its home folder `.local`) with a `.env` holding a model key."""
    monkeypatch.setenv("AGENTSTREAM_HOME", str(tmp_path / ".local"))
    for name in ("OPENAI_API_KEY", "KAFKA_PARTITIONS", "DYNAMODB_EVENTS_TABLE", "AGENTSTREAM_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\nKAFKA_PARTITIONS=5\nDYNAMODB_EVENTS_TABLE=ev-dotenv\n")
    return tmp_path


def test_the_tests_never_read_a_dotenv(project: Path) -> None:
    assert os.environ["AGENTSTREAM_ENV_FILE"] == "none" and env_file() is None
    assert Settings().openai_api_key is None
    child = subprocess.run([sys.executable, "-c", "from agentstream.settings import Settings; print(Settings().openai_api_key)"],
                           capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == "None", child.stderr
    assert isolated_env(Endpoints("127.0.0.1:1", "http://127.0.0.1:1"))["AGENTSTREAM_ENV_FILE"] == "none"


def test_without_the_switch_the_project_roots_dotenv_is_read(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTSTREAM_ENV_FILE")
    assert env_file() == project / ".env"
    monkeypatch.setenv("KAFKA_PARTITIONS", "7")
    s = Settings()
    assert s.openai_api_key == "sk-from-dotenv" and s.tables.events == "ev-dotenv"
    assert s.kafka_partitions == 7, "a real environment variable wins over .env"
    monkeypatch.delenv("AGENTSTREAM_HOME")
    assert env_file() == PROJECT_ROOT / ".env", "the checkout's root, whatever the current folder"


def test_an_explicit_env_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = project / "other.env"
    other.write_text("OPENAI_MODEL=from-other\n")
    monkeypatch.setenv("AGENTSTREAM_ENV_FILE", str(other))
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    assert Settings().openai_model == "from-other" and Settings().openai_api_key is None


def test_up_refreshes_its_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# mine\nOPENAI_API_KEY=sk-mine\nexport DYNAMODB_ENDPOINT_URL=http://old:1\nDYNAMODB_ENDPOINT_URL=dup\n")
    write_env_file(path, {"DYNAMODB_ENDPOINT_URL": "http://127.0.0.1:8000", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"})
    assert path.read_text().splitlines() == [
        "# mine", "OPENAI_API_KEY=sk-mine", "DYNAMODB_ENDPOINT_URL=http://127.0.0.1:8000", "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_fresh_dotenv_is_read_back(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTSTREAM_ENV_FILE")
    (project / ".env").unlink()
    write_env_file(project / ".env", {"DYNAMODB_ENDPOINT_URL": "http://127.0.0.1:8000", "AGENTSTREAM_SECRET_KEY": "k=="})
    s = Settings()
    assert s.dynamodb_endpoint_url == "http://127.0.0.1:8000" and s.credentials_key == "k=="
    assert secret_key(project / ".local") == "k==", "up keeps the key .env already holds"
    assert not (project / ".local" / "secret.key").exists()
