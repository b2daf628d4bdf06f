"""End-to-end fixtures: moto's DynamoDB server, the fake upstream, the app under real uvicorn."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from api import create_app
from scripts.devstack.tables import create_tables
from tests.fakes.environ import environ
from tests.fakes.moto_atomic import AtomicMotoServer
from tests.fakes.servers import serve
from tests.fakes.upstream import FakeUpstream
from tokenrelay import Settings
from tokenrelay.stores.dynamodb import DynamoStreamStore

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "STREAMS_TABLE": "tokenrelay-streams-e2e",
}


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """moto in server mode (its writes atomic, as DynamoDB's: tests/fakes/moto_atomic.py), with the
    tables of template.yaml; AWS env pointed at it."""
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with environ({**AWS_ENV, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}, remove=["AWS_PROFILE"]):
            client = boto3.client("dynamodb", endpoint_url=endpoint)
            create_tables(client, env=os.environ)
            client.close()
            yield endpoint
    finally:
        server.stop()
        server._server.server_close()  # type: ignore[union-attr]


@dataclass
class LocalApp:
    url: str
    store: DynamoStreamStore
    upstream: FakeUpstream

    async def record(self, stream_id: str) -> Any:
        return await self.store.get(stream_id)


@pytest.fixture(scope="session")
def local_app(dynamodb_endpoint: str, upstream_server: FakeUpstream) -> Iterator[LocalApp]:
    with environ(upstream_server.env), _served_app(upstream_server) as app:
        yield app


@contextmanager
def _served_app(upstream_server: FakeUpstream) -> Iterator[LocalApp]:
    settings = Settings.from_env(
        {
            **os.environ,
            "DEFAULT_PROVIDER": "echo",
            "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
            "ECHO_DELAY_MS": "20",
            "CANCEL_POLL_MS": "50",
            "UPSTREAM_MAX_RETRIES": "0",
            "MAX_MESSAGE_CHARS": "2000",
        }
    )
    store = DynamoStreamStore(settings.streams_table)
    with serve(create_app(settings, store=store)) as url:
        yield LocalApp(url, store, upstream_server)


@pytest.fixture
def app(local_app: LocalApp) -> LocalApp:
    local_app.upstream.reset()
    return local_app
