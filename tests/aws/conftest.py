"""Fixtures for tests against DynamoDB (moto), tables built from ``template.yaml``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.aws.schema import TableSpec, create_table, table_spec
from tests.fakes.local_stack import LocalAws, local_aws

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
    # boto3's default session resolves credentials once and keeps them: a test that sets other
    # keys (the stack's admin key) must not get the ones an earlier test's client resolved.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


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


@pytest.fixture(scope="session")
def local_dynamodb_server() -> Iterator[LocalAws]:
    with local_aws() as aws:
        yield aws


@pytest.fixture
def moto_server(local_dynamodb_server: LocalAws, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local stack's DynamoDB, as ``scripts/dev`` runs it (``scripts/devstack/dynamodb.py``:
    moto's server mode, IAM enforced, writes atomic), real HTTP; this test holds its admin key
    (what an operator's tools use), in the environment."""
    admin = local_dynamodb_server.admin
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin["secret_access_key"])
    return local_dynamodb_server.endpoint


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
