"""The local stack as the Lambda benchmarks (issue 19) run it: the functions at Lambda's CPU share.

Everything comes from ``scripts/devstack`` (the same front door, gateway, process environments
and cgroups as ``scripts/dev``); this module only puts it together for a benchmark:

- ``local_aws(meter=...)``: moto with IAM enforced (``metered_dynamodb.py``, which is
  ``scripts/devstack/dynamodb.py`` plus, with ``meter``, one JSON line per DynamoDB call
  with the item sizes DynamoDB bills by), and an API key in the template's keys table:
  the template's default ``AuthMode`` is ``api_key``, so a stream checks a key and takes
  its rate limits, as deployed.
- ``template_for_memory``: a copy of ``template.yaml`` whose functions have another
  ``MemorySize`` (each environment's CPU share follows it).
- ``lambda_vars``: what Lambda sets in every environment (``AWS_LAMBDA_FUNCTION_NAME``...), so
  the functions take their deployed paths: JSON logs, EMF metrics, X-Ray subsegments.
- ``Starts``: wraps a ``Pool``'s start to note, for each environment, when it was spawned,
  when it was ready (init done) and the CPU it had used by then.
- ``LogMeter``: the log sink of every environment: lines and bytes per function (what
  CloudWatch Logs would ingest), each line's arrival time, the EMF documents.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, ROOT / "layers" / "core"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from scripts.devstack.local_aws import LocalAws as LocalAws  # noqa: E402  (ls.LocalAws for the benchmarks)
from scripts.devstack.local_aws import local_aws as devstack_local_aws  # noqa: E402
from scripts.devstack.stack import LambdaSettings, setup  # noqa: E402

KEYS_TABLE = "tokenrelay-api-keys"  # the template's ApiKeysTable, named as stack.setup names it
UPSTREAM_MODEL = "bench"
BENCH_LAMBDAS = LambdaSettings(max_envs=64, queue_timeout_s=120.0, idle_timeout_s=900.0, cpu_share=True)


@contextmanager
def local_aws(meter: Path | None = None) -> Iterator[LocalAws]:
    """moto with IAM enforced, in its own process; with ``meter``, each DynamoDB call logged there."""
    env = {**os.environ, **({"TOKENRELAY_DDB_METER": str(meter)} if meter else {})}
    with devstack_local_aws(HERE / "metered_dynamodb.py", env) as aws:
        yield aws


def template_for_memory(memory_mb: int, out_dir: Path) -> Path:
    """A copy of template.yaml whose functions (Globals) have ``memory_mb`` of memory."""
    text = (ROOT / "template.yaml").read_text()
    new, count = re.subn(r"(?m)^(    MemorySize: )\d+$", rf"\g<1>{memory_mb}", text)
    if count != 1:
        raise RuntimeError(f"template.yaml: expected one Globals MemorySize, found {count}")
    path = out_dir / f"template-{memory_mb}.yaml"
    path.write_text(new)
    return path


def deployed_globals(template: Path | None = None) -> dict[str, str]:
    """The template's Globals variables as a deployment with default parameters has them
    (tables, ``AUTH_MODE``, ``RESUME_GRACE_S``, metrics, JSON logs, X-Ray...)."""
    from scripts.devstack.iam import Resolver
    from scripts.devstack.stack import local_names
    from scripts.devstack.tables import load_template

    data = load_template(template or ROOT / "template.yaml")
    variables = data["Globals"]["Function"]["Environment"]["Variables"]
    resolved = Resolver(data, local_names(dict(os.environ))).resolve(variables)
    return {k: str(v) for k, v in resolved.items() if str(v) != ""}


def stack_env(aws: LocalAws, upstream_port: int, **extra: str) -> dict[str, str]:
    """The stack's environment: this process's (no provider or AWS settings of its own), the
    template's Globals as deployed, the local AWS, the openai provider against the bench upstream."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_", "LITELLM"))}
    for name in ("ALLOWED_MODELS", "DEFAULT_PROVIDER", "AUTH_MODE", "LOG_LEVEL", "PYTHONPATH"):
        env.pop(name, None)
    env.update(deployed_globals())
    env.update(aws.env())
    env.update(
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        DEFAULT_PROVIDER="openai",
        ALLOWED_MODELS=f"openai:{UPSTREAM_MODEL}",
        # X-Ray: the SDK is imported and used as deployed; with no trace header it records nothing
        AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
    )
    env.update(extra)
    return env


def lambda_vars(function_name: str, memory_mb: int) -> dict[str, str]:
    """What Lambda sets in each environment of a function (the python3.12 runtime's reserved variables)."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
    }


def identities_for(aws: LocalAws, env: Mapping[str, str], template: Path, prefix: str) -> dict[str, Any]:
    """One IAM identity per function of ``template`` (its tables created), as ``scripts/dev`` does."""
    return setup(aws.endpoint, aws.admin, dict(env), prefix=prefix, template=template)


def create_key(aws: LocalAws) -> str:
    """A key in the template's keys table, with limits no benchmark reaches (but limits: their writes count)."""
    import boto3

    from tokenrelay.protection import new_key
    from tokenrelay.stores.dynamodb import DynamoApiKeyStore

    client = boto3.client(
        "dynamodb",
        endpoint_url=aws.endpoint,
        region_name=aws.region,
        aws_access_key_id=aws.admin["access_key_id"],
        aws_secret_access_key=aws.admin["secret_access_key"],
    )
    token, key = new_key("bench", rpm=1_000_000, concurrency=1000)
    asyncio.run(DynamoApiKeyStore(KEYS_TABLE, client).put(key))
    return token


@dataclass
class Start:
    env: Any  # environments.ProcessEnv
    spawned: float  # time.monotonic()
    ready: float
    cpu_at_ready: float  # CPU-seconds of the environment's cgroup


class Starts:
    """Wraps ``pool._start``: each new environment's spawn and ready times, and its CPU at ready."""

    def __init__(self, pool: Any) -> None:
        self.records: list[Start] = []
        start = pool._start

        async def timed(name: str) -> Any:
            env = await start(name)
            ready = time.monotonic()
            cpu = env.cpu.usage_s() if env.cpu is not None else 0.0
            self.records.append(Start(env, env.started_at, ready, cpu))
            return env

        pool._start = timed


def function_of(env_name: str) -> str:
    """``worker-12`` -> ``worker``: the function an environment belongs to."""
    return env_name.rsplit("-", 1)[0]


@dataclass
class LogMeter:
    """A ``LogSink``: what each function printed (CloudWatch Logs ingests each line as an event)."""

    keep_lines: bool = False
    lines: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    emf_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    timed: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic, env name, line)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, env_name: str, line: str) -> None:
        size = len(line.encode()) + 1
        function = function_of(env_name)
        with self._lock:
            self.lines[function] += 1
            self.bytes[function] += size
            if line.startswith("{") and '"_aws"' in line:
                self.emf_bytes[function] += size
            if self.keep_lines:
                self.timed.append((time.monotonic(), env_name, line))

    def since(self, t: float, env_name: str) -> list[str]:
        with self._lock:
            return [line for at, name, line in self.timed if name == env_name and at >= t]

    def before(self, t: float, env_name: str) -> list[str]:
        with self._lock:
            return [line for at, name, line in self.timed if name == env_name and at < t]


def quiet_logs() -> None:
    import logging

    for name in ("werkzeug", "botocore", "tokenrelay.frontdoor", "tokenrelay.environments", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
