"""The newcomer's second shell: commands read the project's `.env`, and a missing credential, an
unreachable DynamoDB or Kafka, or a missing table is one line saying what to do (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentstream.local.services import free_port
from tests.conftest import isolated_env
from tests.services import Endpoints

AGENTSTREAM = str(Path(sys.executable).with_name("agentstream"))
QUICK_S = 20  # startup alone takes seconds on a busy machine; botocore's retries took ~25 s more


def run(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`agentstream ARGS` with only `env` (plus PATH), as a person would type it."""
    return subprocess.run([AGENTSTREAM, *args], env={"PATH": os.environ["PATH"]} | env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def one_line(done: subprocess.CompletedProcess[str], says: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("agentstream: ") and says in lines[0], done.stderr


@pytest.fixture
def bare(tmp_path: Path) -> dict[str, str]:
    """No .env, no AWS credentials or profile, no instance metadata, no settings."""
    return {"HOME": str(tmp_path), "AGENTSTREAM_ENV_FILE": "none", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}


@pytest.mark.parametrize("args", [["setup", "--no-topics"], ["replay"], ["credentials", "show", "demo-salon", "twilio"]])
def test_unreachable_dynamodb(args: list[str], bare: dict[str, str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = run(*args, env=bare | {"DYNAMODB_ENDPOINT_URL": dead, "AGENTSTREAM_SECRET_KEY": "k" * 43 + "="})
    one_line(done, f"cannot reach DynamoDB at {dead}: start it (`make up`)")
    assert time.monotonic() - started < QUICK_S


@pytest.mark.parametrize("args", [["replay"], ["credentials", "show", "demo-salon", "twilio"]])
def test_no_aws_credentials(args: list[str], bare: dict[str, str]) -> None:
    env = bare | {"AGENTSTREAM_SECRET_KEY": "k" * 43 + "="}
    one_line(run(*args, env=env), "no AWS credentials: for the local stack set DYNAMODB_ENDPOINT_URL")


def test_unreachable_kafka(bare: dict[str, str], endpoints: Endpoints) -> None:
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    one_line(run("status", env=bare | isolated_env(endpoints, KAFKA_BOOTSTRAP_SERVERS=dead)), f"cannot reach Kafka at {dead}")
    assert time.monotonic() - started < QUICK_S


def test_no_secret_key(bare: dict[str, str], endpoints: Endpoints) -> None:
    env = {k: v for k, v in isolated_env(endpoints).items() if k != "AGENTSTREAM_SECRET_KEY"}
    for args in (["set", "demo-salon", "twilio", "accountSid=AC1"], ["show", "demo-salon", "twilio"]):
        one_line(run("credentials", *args, env=bare | env), "AGENTSTREAM_SECRET_KEY is not set")


@pytest.mark.parametrize("args", [["replay"], ["status"], ["credentials", "show", "demo-salon", "twilio"]])
def test_missing_table(args: list[str], bare: dict[str, str], endpoints: Endpoints) -> None:
    env = bare | isolated_env(endpoints)
    done = run(*args, env=env)
    if "Kafka is not ready" in done.stderr:  # status on a fresh broker: no group coordinator for a moment
        one_line(done, "try again in a moment")
        time.sleep(3)
        done = run(*args, env=env)
    one_line(done, "a DynamoDB table is missing (Requested resource not found): run `agentstream setup`")


def test_a_second_shell_reads_the_projects_dotenv(tmp_path: Path, endpoints: Endpoints) -> None:
    """A throw-away project root: its `.env` as `up` leaves it (plus this test's own names); the
    commands run from another folder with nothing exported but where the home folder is."""
    settings = isolated_env(endpoints)
    del settings["AGENTSTREAM_ENV_FILE"]
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell = {"HOME": str(tmp_path), "AGENTSTREAM_HOME": str(tmp_path / ".local"), "AWS_EC2_METADATA_DISABLED": "true"}

    assert run("setup", "--no-topics", env=shell, cwd=elsewhere).returncode == 0
    done = run("credentials", "set", "demo-salon", "twilio", "accountSid=AC12345678", env=shell, cwd=elsewhere)
    assert done.returncode == 0 and "set accountSid" in done.stderr, done.stderr
    shown = run("credentials", "show", "demo-salon", "twilio", env=shell, cwd=elsewhere)
    assert shown.returncode == 0 and json.loads(shown.stdout) == {"accountSid": "AC…78 (10 chars)"}, shown.stderr

    real = shell | {"DYNAMODB_EXTERNAL_CREDENTIALS_TABLE": "not-created-credentials"}
    one_line(run("credentials", "show", "demo-salon", "twilio", env=real, cwd=elsewhere), "run `agentstream setup`")


def test_a_gateway_before_setup_says_to_run_it(bare: dict[str, str], endpoints: Endpoints) -> None:
    env = bare | isolated_env(endpoints, GATEWAY_PORT_HTTP=str(free_port()))
    one_line(run("gateway", env=env), "does not exist: run `agentstream setup`")
