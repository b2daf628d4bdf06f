"""Two app instances sharing one DynamoDB, for resume tests (PROTOCOL section 5).

``producer``: the app in this process (real uvicorn, the fake upstream), where streams start.
``other``: the same app in a separate process (``python -m uvicorn app:app``), where
resumes and cancels land, as a second Lambda execution environment would receive them.
Both use the output log table of ``template.yaml``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from api import create_app
from scripts.devstack.tables import create_table, table_spec
from tests.fakes.environ import environ
from tests.fakes.servers import free_port, serve
from tests.fakes.upstream import FakeUpstream
from tokenrelay import Settings
from tokenrelay.stores.dynamodb import DynamoStreamStore

ROOT = Path(__file__).resolve().parents[2]
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
    ddb: Any  # boto3 DynamoDB client, to look at the output log

    def log_items(self, stream_id: str) -> list[dict[str, Any]]:
        response = self.ddb.query(
            TableName=OUTPUT_LOG_TABLE,
            KeyConditionExpression="stream_id = :id",
            ExpressionAttributeValues={":id": {"S": stream_id}},
            ConsistentRead=True,
        )
        return list(response["Items"])


@contextmanager
def other_process(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    paths = [str(ROOT / "layers" / "core"), str(ROOT / "functions" / "http")]
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "app:app"],
        cwd=ROOT / "functions" / "http",
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the second app exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the second app did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@contextmanager
def resume_stack(endpoint: str, upstream: FakeUpstream) -> Iterator[ResumeStack]:
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    create_output_log_table(ddb)
    with environ(upstream.env):  # the SDKs read their keys and base URLs from the environment
        settings = Settings.from_env({**os.environ, **RESUME_ENV})
        store = DynamoStreamStore(settings.streams_table)
        try:
            with serve(create_app(settings, store=store)) as producer, other_process(RESUME_ENV) as other:
                yield ResumeStack(producer, other, store, upstream, ddb)
        finally:
            store.close()
            ddb.close()
