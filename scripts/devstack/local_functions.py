"""Lambda functions of the template, run locally: each in its own process environments.

- ``FunctionSpec``/``template_functions``: what the template says of each function: its
  code directory and handler, ``Timeout``, ``MemorySize`` and environment variables
  (resolved as ``iam.py`` resolves intrinsics; ``Globals`` aside, which the local stack's
  own environment replaces).
- ``ProcessFunction``: a function whose invocations each take an environment from its
  ``Pool`` (``environments.py``): ``lambda_runtime.py`` in a child process with the function's
  environment variables and its own IAM identity's credentials. An invocation that outlives
  the function's timeout ends as Lambda ends it: the environment is killed and the
  invocation fails with ``Task timed out after N seconds``.
- ``InProcessFunction``: a Python callable run in a thread: the fast single-process mode, and
  what tests substitute for a route.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scripts.devstack.environments import LogSink, Pool, ProcessEnv, print_sink, python_path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = Path(__file__).resolve().parent / "lambda_runtime.py"
INIT_TIMEOUT_S = 30.0  # Lambda gives the init phase 10 s; a loaded 2-core machine needs more
Handler = Callable[[dict[str, Any], Any], Any]


class FunctionError(Exception):
    """The invocation failed: the handler raised, timed out, or its environment died."""


class Function(Protocol):
    name: str

    async def invoke(self, event: dict[str, Any], timeout_s: float | None = None) -> Any: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str  # the local function name (WORKER_FUNCTION_NAME for the worker)
    code_dir: Path
    handler: str  # module.function
    timeout_s: float
    memory_mb: int
    env: dict[str, str] = field(default_factory=dict)  # the function's own variables, resolved

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.name}"


def template_functions(template: Mapping[str, Any], names: Any) -> dict[str, FunctionSpec]:
    """Every ``AWS::Serverless::Function`` of the template (``names``: an ``iam.LocalNames``)."""
    from scripts.devstack.iam import Resolver, function_name

    resolver = Resolver(template, names)
    defaults = (template.get("Globals") or {}).get("Function") or {}
    specs = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        variables = (props.get("Environment") or {}).get("Variables") or {}
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=function_name(template, logical_id, names.env),
            code_dir=ROOT / props["CodeUri"],
            handler=props["Handler"],
            timeout_s=float(props.get("Timeout", defaults.get("Timeout", 3))),
            memory_mb=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
            env={k: str(v) for k, v in resolver.resolve(variables).items()},
        )
    return specs


class HandlerEnv(ProcessEnv):
    """One environment of a handler function: ``lambda_runtime.py`` in a child process."""

    async def start(self) -> None:
        read_fd, write_fd = os.pipe()
        self.env["TOKENRELAY_RUNTIME_FD"] = str(write_fd)
        self.pass_fds = (write_fd,)
        try:
            await self.spawn(stdin=True)
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        self.answers = asyncio.StreamReader(limit=64 * 1024 * 1024)
        self._pipe, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(self.answers), os.fdopen(read_fd, "rb")
        )
        try:
            first = await asyncio.wait_for(self._answer(), INIT_TIMEOUT_S)
        except TimeoutError:
            await self.stop(0)
            raise FunctionError(f"{self.name}: init did not finish within {INIT_TIMEOUT_S:.0f} s") from None
        if "init_error" in first:
            raise FunctionError(f"{self.name}: init failed: {first['init_error']['errorMessage']}")

    async def stop(self, grace_s: float = 5.0) -> None:
        await super().stop(grace_s)
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            pipe.close()

    async def _answer(self) -> dict[str, Any]:
        line = await self.answers.readline()
        if not line:
            assert self.proc is not None
            code = await self.proc.wait()
            from scripts.devstack.environments import how_it_ended

            raise FunctionError(f"{self.name}: the environment died ({how_it_ended(code)})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def invoke(self, spec: FunctionSpec, event: dict[str, Any], timeout_s: float) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        invocation = {
            "request_id": str(uuid.uuid4()),
            "deadline_ms": int((time.time() + timeout_s) * 1000),
            "function_name": spec.name,
            "arn": spec.arn,
            "memory_mb": spec.memory_mb,
            "event": event,
        }
        self.proc.stdin.write(json.dumps(invocation).encode() + b"\n")
        await self.proc.stdin.drain()
        try:
            answer = await asyncio.wait_for(self._answer(), timeout_s)
        except TimeoutError:
            await self.stop(0)  # Lambda stops the environment of a timed-out invocation
            raise FunctionError(f"{spec.name}: Task timed out after {timeout_s:.2f} seconds") from None
        if "error" in answer:
            error = answer["error"]
            raise FunctionError(f"{spec.name}: {error['errorType']}: {error['errorMessage']}")
        return answer.get("result")


class ProcessFunction:
    def __init__(
        self,
        spec: FunctionSpec,
        env: Mapping[str, str],
        *,
        sink: LogSink = print_sink,
        max_envs: int = 10,
        idle_timeout_s: float = 300.0,
        queue_timeout_s: float = 10.0,
        cpu_share: bool = False,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.env = dict(env)  # the stack's environment, the function's variables and credentials
        self.sink = sink
        self.cpu_share = cpu_share
        self.pool: Pool[HandlerEnv] = Pool(
            spec.logical_id.removesuffix("Function").lower(),
            self._start,
            max_envs=max_envs,
            idle_timeout_s=idle_timeout_s,
            queue_timeout_s=queue_timeout_s,
        )

    async def _start(self, name: str) -> HandlerEnv:
        layer = ROOT / "layers" / "core"
        env = {**self.env, "PYTHONPATH": python_path(self.env, layer, self.spec.code_dir)}
        cpu = None
        if self.cpu_share:
            from scripts.devstack.cpu_share import CpuShare

            cpu = CpuShare.for_memory(name, self.spec.memory_mb)
        argv = [sys.executable, str(RUNTIME), self.spec.handler]
        environment = HandlerEnv(name, argv, env=env, cwd=str(self.spec.code_dir), sink=self.sink, cpu=cpu)
        await environment.start()
        return environment

    async def invoke(self, event: dict[str, Any], timeout_s: float | None = None) -> Any:
        async with self.pool.lease() as environment:
            return await environment.invoke(self.spec, event, timeout_s or self.spec.timeout_s)

    async def close(self) -> None:
        await self.pool.close()


class InProcessFunction:
    """A Python callable as a function: run in a worker thread of this process."""

    def __init__(self, name: str, handler: Handler, timeout_s: float = 900.0, threads: int = 32) -> None:
        self.name, self.handler, self.timeout_s = name, handler, timeout_s
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix=f"lambda-{name}")

    async def invoke(self, event: dict[str, Any], timeout_s: float | None = None) -> Any:
        from scripts.devstack.lambdas import LambdaContext

        context = LambdaContext(self.name, timeout_s or self.timeout_s)
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.handler, event, context)

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
