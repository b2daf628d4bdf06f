"""The stress suite's stack: the local stack as ``scripts/dev`` runs it, every part its own process.

- DynamoDB: the stack's (``scripts/devstack/dynamodb.py``: IAM enforced per access key, writes
  atomic as DynamoDB's are), with the tables of ``template.yaml``. The faults of each phase
  (slow, failing, hung) are injected by its server for the functions' own access keys
  (``scripts/devstack/dynamodb_faults.py``): each function meets them with its own client,
  retries and timeouts, and the test's own reads (the operator's) see DynamoDB as it is.
- The HTTP function: the local Function URL, one request per StreamFunction environment with
  its own identity (``frontdoor.py``), up to ``STRESS_LAMBDAS.max_envs`` at once. A stream's
  resume, cancel and replay always land in another environment than its producer's, as on
  AWS: what two app instances stood for before.
- The WebSocket functions and the worker, each in their own environments (``gateway.py``).
- The providers: the real OpenAI and Anthropic SDKs against the fake upstream
  (``tests/fakes/upstream.py``, in the test process, so each upstream request's end is seen).
- CPU load: ``HOGS`` processes that spin for as long as the package runs.

Environments stay warm for the whole package (``stress_stack``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from scripts.devstack.dynamodb_faults import set_faults
from scripts.devstack.stack import LambdaSettings
from tests.fakes.local_stack import FunctionStack, LocalAws
from tests.fakes.upstream import FakeUpstream

HOGS = 2
TABLES = {
    "STREAMS_TABLE": "tokenrelay-streams",
    "OUTPUT_LOG_TABLE": "tokenrelay-output-log",
    "CONNECTIONS_TABLE": "tokenrelay-connections",
}
APP_ENV = {
    **TABLES,
    "DEFAULT_PROVIDER": "openai",
    "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
    "UPSTREAM_MAX_RETRIES": "0",
    # Short, so that a dropped stream's environment is free again soon (the front door waits for
    # its end); every stream here is generated within it, and resumes come within it too.
    "RESUME_GRACE_S": "2",
    "LOG_LEVEL": "WARNING",
    "METRICS_ENABLED": "false",
    "AUTH_MODE": "off",
    "WORKER_FUNCTION_NAME": "tokenrelay-worker",
    "WS_FLUSH_MS": "20",
}
# Lambda's concurrency for the suite: every stream, and every resume, cancel and replay of it,
# in an environment of its own. A request past it waits for one (LAMBDA_QUEUE_S) instead of
# getting Lambda's 429: the tests size their waves to stay under it.
STRESS_LAMBDAS = LambdaSettings(max_envs=48, queue_timeout_s=120.0, idle_timeout_s=900.0)
# What each phase does to DynamoDB (``dynamodb_faults.Chaos``). The record's create is spared
# the failures: a stream whose record cannot be created never starts (a 503, in the fault
# matrix), and the suite is about the streams that did.
SLOW: dict[str, Any] = {"delay_ms": [0, 25], "stall_rate": 0.03, "stall_s": 1.2}
FAILING: dict[str, Any] = {"throttle_rate": 0.25, "error_rate": 0.1, "spare": ["PutItem@tokenrelay-streams"]}


@contextmanager
def process(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(env or os.environ))
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


@dataclass
class Instances:
    """What a stress test drives: the Function URL (``producer``, where streams start; ``other``,
    where resumes, cancels and replays go: the same URL, each request its own environment), the
    stack, and a DynamoDB client of the test's own (the operator's: no faults)."""

    producer: str
    other: str
    aws: LocalAws
    functions: FunctionStack
    ddb: Any
    mark: int = 0  # where this test's part of the stack's output starts
    extra: dict[str, str] = field(default_factory=dict)

    def log_text(self) -> str:
        return "\n".join(self.functions.logs.since(self.mark))

    def chaos(self, spec: Mapping[str, Any] | None, seed: int = 0) -> None:
        """DynamoDB faults for every function of the stack (None: none)."""
        callers = [identity.access_key_id for identity in self.functions.identities.values()]
        set_faults(self.aws.endpoint, chaos={**spec, "seed": seed, "callers": callers} if spec else None)

    def environments(self) -> dict[int, int]:
        """Open files of each environment of this test's Function URL alive now, by pid (its uvicorn)."""
        pool = self.functions.fronts.get(self.producer, self.functions.front).pool
        out = {}
        for env in [*pool.idle, *pool.busy]:
            if env.proc is not None and env.alive:
                try:
                    out[env.proc.pid] = len(os.listdir(f"/proc/{env.proc.pid}/fd"))
                except FileNotFoundError:
                    pass
        return out


@contextmanager
def instances(
    aws: LocalAws, functions: FunctionStack, chaos: Mapping[str, Any] | None, seed: int = 0, url: str = ""
) -> Iterator[Instances]:
    """This test's view of the package's stack, with DynamoDB faults ``chaos`` while it lasts."""
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=aws.endpoint,
        region_name=aws.region,
        aws_access_key_id=aws.admin["access_key_id"],
        aws_secret_access_key=aws.admin["secret_access_key"],
    )
    url = url or functions.http
    stack = Instances(url, url, aws, functions, ddb, functions.logs.mark())
    stack.chaos(chaos, seed)
    try:
        yield stack
    finally:
        stack.chaos(None)
        ddb.close()


def stack_env(upstream: FakeUpstream) -> dict[str, str]:
    return {**APP_ENV, **upstream.env}
