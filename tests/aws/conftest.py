"""Fixtures for tests against DynamoDB (moto), tables built from ``template.yaml``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from tests.aws.schema import TableSpec, create_table, table_spec

REGION = "us-east-1"
FAKE_SECRET = "tokenrelay-fake-secret-never-in-messages"
STREAMS_TABLE = "tokenrelay-streams-test"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Fake credentials, a fixed region, and nothing from the developer's own AWS setup."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))


@pytest.fixture
def streams_spec() -> TableSpec:
    return table_spec("StreamsTable")


@pytest.fixture
def dynamodb(aws_env: None, streams_spec: TableSpec) -> Iterator[Any]:
    """A moto-mocked DynamoDB client with the streams table of ``template.yaml``."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, streams_spec, STREAMS_TABLE)
        yield client
        client.close()


@pytest.fixture
def moto_server() -> Iterator[str]:
    """moto in server mode on a free local port: real HTTP, as ``scripts/dev`` runs it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        server._server.server_close()  # type: ignore[union-attr]  # stop() leaves the socket open


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def sam_builds() -> dict[str, Any]:
    """``sam build`` of template.yaml, once per session: ``{"arm64": dir, "host": dir}`` (tests/aws/sam_build.py)."""
    from tests.aws import sam_build

    if not sam_build.AVAILABLE:
        pytest.skip(sam_build.SKIP_REASON)
    if sam_build.HOST_ARCH is None:
        pytest.skip("unknown machine architecture")
    return sam_build.build_all()
