"""One bootstrap: the processes under streams/ are handed their stores, producer, consumer
factory and configuration; none reads the settings or builds a client itself. Read from the
source (the AST), so a new module is held to it as soon as it exists."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.services import ROOT

# The composition root (the processes and commands in wiring.py; `setup` and `populate`, tables
# and demo data, in bootstrap.py), and the adapters that know how to make a client (it calls them).
BOOTSTRAP = {"agentstream/wiring.py", "agentstream/bootstrap.py"}
CLIENT_FACTORIES = {"adapters/dynamo/client.py", "adapters/dynamo/lean_client.py", "adapters/kafka/client.py"}
PRODUCT = ("agentstream", "adapters", "streams", "projections", "scripts")
# Calls that make a client: aiokafka's, httpx's, aiobotocore's (create_client), aiodynamo's, and
# the factories of adapters/ that wrap them.
CLIENT_CALLS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "AsyncClient", "Client",
                "create_client", "dynamodb_client", "hot_dynamodb_client", "dynamodb_streams_client", "KafkaClients"}
SETTINGS_NAMES = {"Settings", "settings", "load_settings"}
# What a raw DynamoDB, DynamoDB Streams or S3 client is called or typed as: a module under streams/
# takes the narrow store it uses (streams/ports.py, or a Protocol of its own), built by the bootstrap.
CLIENT_NAMES = {"ddb", "hot", "dynamodb", "dynamo", "s3", "client", "streams_client", "ddb_client", "s3_client"}
CLIENT_TYPES = {"DynamoDBClient", "DynamoDBStreamsClient", "S3Client", "AioBaseClient", "BaseClient", "Client"}
UNTYPED = {"Any", "object", "Any | None", "None | Any"}


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def client_calls(path: Path) -> list[str]:
    """`name:line` of every call in the file that makes a client."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{_called(n)}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n) in CLIENT_CALLS]


def settings_imports(path: Path) -> list[str]:
    """The settings objects the file imports (the `Tables` record of table names is not one)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "agentstream.settings":
            found += [f"{a.name}:{node.lineno}" for a in node.names if a.name in SETTINGS_NAMES]
        elif isinstance(node, ast.ImportFrom) and node.module == "agentstream" \
                and any(a.name == "settings" for a in node.names):
            found.append(f"agentstream.settings:{node.lineno}")
        elif isinstance(node, ast.Import) and any(a.name == "agentstream.settings" for a in node.names):
            found.append(f"agentstream.settings:{node.lineno}")
    return found


def _client_name(name: str) -> bool:
    bare = name.strip("_")
    return bare in CLIENT_NAMES or bare.endswith(("_ddb", "_s3", "_client"))


def _client_type(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # a quoted annotation
        annotation = ast.parse(annotation.value, mode="eval").body
    names = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(annotation) if isinstance(n, (ast.Name, ast.Attribute))}
    text = ast.unparse(annotation)
    return bool(names & CLIENT_TYPES) or any(m in text for m in ("aiobotocore", "botocore", "aiodynamo", "types_aiobotocore"))


def raw_clients(path: Path) -> list[str]:
    """`name:line` of every parameter or attribute of the file that is a raw client: named like
    one (`ddb`, `s3`, `self._ddb`, …), typed as one, or a `streams`/`client` typed `Any`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, [args.vararg, args.kwarg])]:
                untyped_stream = a.arg.strip("_") == "streams" and a.annotation is not None and ast.unparse(a.annotation) in UNTYPED
                if _client_name(a.arg) or _client_type(a.annotation) or untyped_stream:
                    found.append(f"{a.arg}:{a.lineno}")
        elif isinstance(node, ast.AnnAssign) and _client_type(node.annotation):
            found.append(f"{ast.unparse(node.target)}:{node.lineno}")
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and _client_name(target.attr):
                found.append(f"{ast.unparse(target)}:{node.lineno}")
    return found


def test_no_module_under_streams_takes_a_raw_client() -> None:
    offenders = {_name(p): found for p in _sources("streams") if (found := raw_clients(p))}
    assert offenders == {}


def test_no_module_under_streams_imports_the_settings() -> None:
    offenders = {_name(p): found for p in _sources("streams") if (found := settings_imports(p))}
    assert offenders == {}


def test_clients_are_made_only_by_the_bootstrap() -> None:
    allowed = BOOTSTRAP | CLIENT_FACTORIES
    offenders = {_name(p): found for p in _sources(*PRODUCT)  # the benches measure raw clients beside ours
                 if _name(p) not in allowed and not _name(p).startswith("agentstream/bench/") and (found := client_calls(p))}
    assert offenders == {}


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The two checks find a client made and the settings imported (they are not vacuous)."""
    sample = tmp_path / "sample.py"
    sample.write_text("from agentstream.settings import Settings, Tables\nfrom aiokafka import AIOKafkaConsumer\n"
                      "import httpx\n\nasync def f(s: Settings) -> None:\n    c = AIOKafkaConsumer('t')\n"
                      "    async with httpx.AsyncClient() as h:\n        pass\n", encoding="utf-8")
    assert settings_imports(sample) == ["Settings:1"]
    assert client_calls(sample) == ["AIOKafkaConsumer:6", "AsyncClient:7"]
    assert client_calls(ROOT / "agentstream/wiring.py"), "the bootstrap makes the clients"


def test_the_raw_client_check_sees_each_way_of_taking_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from typing import Any\n\n"
                      "async def f(ddb: Any, store: object) -> None: ...\n"
                      "def g(snapshots_ddb, s3=None): ...\n"
                      "class B:\n"
                      "    def __init__(self, streams: Any, c: 'DynamoDBClient', fine: Any) -> None:\n"
                      "        self._ddb = fine\n"
                      "        self.store = fine\n", encoding="utf-8")
    assert raw_clients(sample) == ["ddb:3", "snapshots_ddb:4", "s3:4", "streams:6", "c:6", "self._ddb:7"]
    assert raw_clients(ROOT / "agentstream/wiring.py"), "the bootstrap holds the clients"
