"""The HTTP function for resume tests (PROTOCOL section 5), as AWS runs it.

``producer`` and ``other`` are the same local Function URL (``tests/fakes/local_stack.py``):
each request gets its own execution environment (a process running ``run.sh``), so a resume
or a cancel never lands in the environment still producing the stream, exactly as on AWS.
An environment whose client dropped is never handed another request (it may still be
generating, during the grace period). The output log table is ``template.yaml``'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from scripts.devstack.tables import create_table, table_spec
from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack
from tests.fakes.upstream import FakeUpstream
from tokenrelay.stores.dynamodb import DynamoStreamStore

OUTPUT_LOG_TABLE = "tokenrelay-output-log-e2e"
GRACE_S = 5.0
FLUSH_MS = 250

RESUME_ENV = {
    "DEFAULT_PROVIDER": "echo",
    "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
    "ECHO_DELAY_MS": "20",
    "CANCEL_POLL_MS": "50",
    "UPSTREAM_MAX_RETRIES": "0",
    "OUTPUT_LOG_TABLE": OUTPUT_LOG_TABLE,
    "RESUME_GRACE_S": str(GRACE_S),
    "OUTPUT_LOG_FLUSH_MS": str(FLUSH_MS),
    "RESUME_POLL_MS": "100",
}


def create_output_log_table(client: Any) -> None:
    """The ``OutputLogTable`` of ``template.yaml``."""
    create_table(client, table_spec("OutputLogTable"), OUTPUT_LOG_TABLE)


@dataclass
class ResumeStack:
    producer: str
    other: str
    store: DynamoStreamStore
    upstream: FakeUpstream
    ddb: Any  # boto3 DynamoDB client (the admin's), to look at the output log
    stack: FunctionStack

    def log_items(self, stream_id: str) -> list[dict[str, Any]]:
        response = self.ddb.query(
            TableName=OUTPUT_LOG_TABLE,
            KeyConditionExpression="stream_id = :id",
            ExpressionAttributeValues={":id": {"S": stream_id}},
            ConsistentRead=True,
        )
        return list(response["Items"])


@contextmanager
def resume_stack(aws: LocalAws, upstream: FakeUpstream) -> Iterator[ResumeStack]:
    ddb = boto3.client("dynamodb", endpoint_url=aws.endpoint)
    create_output_log_table(ddb)
    with function_stack(aws, {**upstream.env, **RESUME_ENV}, name="resume") as stack:
        store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
        try:
            yield ResumeStack(stack.http, stack.http, store, upstream, ddb, stack)
        finally:
            store.close()
            ddb.close()
