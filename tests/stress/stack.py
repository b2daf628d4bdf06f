"""The stress suite's stack, every part a separate process as it is in AWS:

- DynamoDB: moto's server with the tables of ``template.yaml``, its writes atomic as
  DynamoDB's are (``tests/fakes/moto_atomic.py``);
- the HTTP app: ``tests.stress.chaos_app`` under uvicorn, twice (``producer``, where streams
  start, and ``other``, where resumes, cancels and replays land, as a second Lambda
  instance), each with the DynamoDB faults of its phase (``TOKENRELAY_DDB_CHAOS``);
- the providers: the real OpenAI and Anthropic SDKs against the fake upstream
  (``tests/fakes/upstream.py``, in the test process, so each upstream request's end is seen);
- CPU load: ``HOGS`` processes that spin for as long as the module runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from scripts.devstack.tables import create_tables
from tests.fakes.servers import free_port
from tests.fakes.stacks import app_process
from tests.fakes.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
# The checkout whose app runs: this one, or (to measure what an older tree loses) another.
APP_ROOT = Path(os.environ.get("TOKENRELAY_STRESS_APP_ROOT") or ROOT)
HOGS = 2
TABLES = {
    "STREAMS_TABLE": "tokenrelay-streams",
    "OUTPUT_LOG_TABLE": "tokenrelay-output-log",
    "CONNECTIONS_TABLE": "tokenrelay-connections",
}
AWS = {
    "AWS_ACCESS_KEY_ID": "stress",
    "AWS_SECRET_ACCESS_KEY": "stress-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
APP_ENV = {
    **TABLES,
    "DEFAULT_PROVIDER": "openai",
    "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
    "UPSTREAM_MAX_RETRIES": "0",
    "RESUME_GRACE_S": "15",
    "LOG_LEVEL": "WARNING",
    "METRICS_ENABLED": "false",
    "AUTH_MODE": "off",
}
# What each phase does to DynamoDB. The record's create is spared the failures: a stream whose
# record cannot be created never starts (a 503, in the fault matrix), and the suite is about
# the streams that did.
SLOW = "delay_ms=0-25,stall_rate=0.03,stall_s=1.2"
FAILING = "throttle_rate=0.25,error_rate=0.1,spare=PutItem@tokenrelay-streams"


@contextmanager
def process(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(env or os.environ), cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def cpu_hogs(count: int = HOGS) -> Iterator[list[int]]:
    """``count`` processes that each keep a core busy (pure Python spin), until the block ends."""
    with ExitStack() as stack:
        pids = []
        for _ in range(count):
            proc = stack.enter_context(process([sys.executable, "-c", "while True: pass"], Path(os.devnull)))
            pids.append(proc.pid)
        yield pids


@contextmanager
def dynamodb(log_dir: Path) -> Iterator[str]:
    """moto's server in its own process, with the template's tables; its endpoint."""
    port = free_port()
    command = [sys.executable, "-m", "tests.fakes.moto_atomic", "-H", "127.0.0.1", "-p", str(port)]
    endpoint = f"http://127.0.0.1:{port}"
    with process(command, log_dir / "dynamodb.log"):
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        client = boto3.client("dynamodb", endpoint_url=endpoint, **_credentials())
        create_tables(client, env=TABLES)
        client.close()
        yield endpoint


def _credentials() -> dict[str, str]:
    return {
        "region_name": AWS["AWS_REGION"],
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
    }


@dataclass
class Instances:
    producer: str
    other: str
    pids: dict[str, int]
    logs: dict[str, Path]
    ddb: Any  # a boto3 client of the test's own (no faults): records and log items as they are
    extra: dict[str, str] = field(default_factory=dict)

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs.values())

    def open_fds(self, name: str) -> int:
        return len(os.listdir(f"/proc/{self.pids[name]}/fd"))


@contextmanager
def instances(endpoint: str, upstream: FakeUpstream, log_dir: Path, chaos: str, **env: str) -> Iterator[Instances]:
    """The producer and the other instance, each with DynamoDB faults ``chaos`` (seeded apart)."""
    base = {**AWS, **APP_ENV, **upstream.env, "AWS_ENDPOINT_URL_DYNAMODB": endpoint, **env}
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: log_dir / f"{name}.log" for name in ("producer", "other")}
    with ExitStack() as stack:
        urls = {}
        for seed, name in enumerate(logs, 1):
            spec = f"{chaos},seed={seed}" if chaos else ""
            app_env = {**base, "TOKENRELAY_DDB_CHAOS": spec}
            urls[name] = stack.enter_context(
                app_process(app_env, logs[name], module="tests.stress.chaos_app:app", on_start=procs, root=APP_ROOT)
            )
        ddb = boto3.client("dynamodb", endpoint_url=endpoint, **_credentials())
        stack.callback(ddb.close)
        pids = {name: proc.pid for name, proc in zip(logs, procs, strict=True)}
        yield Instances(urls["producer"], urls["other"], pids, logs, ddb)
