"""End-to-end fixtures: the local stack as strict as AWS, the fake upstream.

``local_aws``: moto's DynamoDB server enforcing IAM per access key (this process holds the
admin key, for set-up and for reading records as an operator would). ``local_app``: the
HTTP function behind the local Function URL, one request per process environment, each
with the StreamFunction's own identity (``tests/fakes/local_stack.py``). Environments
stay warm for the session; a test fails if any function was refused a call (AccessDenied).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from scripts.devstack.tables import create_tables
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.environ import environ
from tests.fakes.local_stack import FunctionStack, LocalAws, LogCapture, function_stack, local_aws
from tests.fakes.upstream import FakeUpstream
from tokenrelay.stores.dynamodb import DynamoStreamStore

AWS_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "STREAMS_TABLE": "tokenrelay-streams-e2e",
}
APP_ENV = {
    "DEFAULT_PROVIDER": "echo",
    "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
    "ECHO_DELAY_MS": "20",
    "CANCEL_POLL_MS": "50",
    "UPSTREAM_MAX_RETRIES": "0",
    "MAX_MESSAGE_CHARS": "2000",
    "LOG_JSON": "true",  # what Lambda ships to CloudWatch: every line the function prints
    "METRICS_ENABLED": "true",
    "LOG_LEVEL": "DEBUG",
}


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalAws]:
    """moto in server mode, IAM enforced, with the tables of template.yaml; this process's AWS env pointed at it."""
    with local_aws() as local:
        with environ({**AWS_ENV, **local.env()}, remove=["AWS_PROFILE", "AWS_SESSION_TOKEN"]):
            # boto3's default session keeps the credentials it first resolved (an earlier test's):
            # a new one reads the admin key just set
            boto3.setup_default_session()
            client = boto3.client("dynamodb", endpoint_url=local.endpoint)
            create_tables(client, env=os.environ)
            client.close()
            yield local


@pytest.fixture(scope="session")
def dynamodb_endpoint(aws: LocalAws) -> str:
    return aws.endpoint


@dataclass
class LocalApp:
    url: str
    store: DynamoStreamStore  # the admin's view of the streams table
    upstream: FakeUpstream
    stack: FunctionStack
    aws: LocalAws
    bedrock: FakeBedrock | None = None  # with every provider (``providers_app``)

    @property
    def streams_table(self) -> str:
        return self.store.table_name

    @property
    def logs(self) -> LogCapture:
        return self.stack.logs

    async def record(self, stream_id: str) -> Any:
        return await self.store.get(stream_id)


@pytest.fixture(scope="session")
def local_app(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[LocalApp]:
    with function_stack(aws, {**upstream_server.env, **APP_ENV}, name="e2e") as stack:
        store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
        yield LocalApp(stack.http, store, upstream_server, stack, aws)
        store.close()


@contextmanager
def providers_app(
    aws: LocalAws, upstream: FakeUpstream, bedrock: FakeBedrock, env: Mapping[str, str], name: str
) -> Iterator[LocalApp]:
    """A Function URL whose providers all talk to fakes: OpenAI and Anthropic to ``upstream``,
    Bedrock to ``bedrock``; ``env`` on top."""
    full = {**upstream.env, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.url, "BEDROCK_ENABLED": "true", **env}
    with function_stack(aws, full, name=name) as stack:
        store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
        yield LocalApp(stack.http, store, upstream, stack, aws, bedrock)
        store.close()


@contextmanager
def fresh(app: LocalApp) -> Iterator[LocalApp]:
    """``app`` for one test: its fakes reset, and no AWS call of its functions denied meanwhile."""
    app.upstream.reset()
    if app.bedrock is not None:
        app.bedrock.reset()
    mark = app.logs.mark()
    yield app
    app.stack.assert_no_access_denied(mark)


@pytest.fixture
def app(local_app: LocalApp) -> Iterator[LocalApp]:
    with fresh(local_app) as fresh_app:
        yield fresh_app
