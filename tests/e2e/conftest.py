"""One running stack for the end-to-end modules that use it only as customers and owners do
(each test with visitors and conversations of its own): started once per test process (each
xdist worker has its own), instead of once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import isolated_env
from tests.e2e.stack import RunningStack, running_stack
from tests.services import Endpoints


@pytest.fixture(scope="session")
def shared_stack(endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Bridge, worker, gateway and delivery on tables and topics of their own, no vendor settings."""
    with running_stack(isolated_env(endpoints), tmp_path_factory.mktemp("logs")) as running:
        yield running
