"""A function for the local HTTP API: invocations in processes running ``lambda_runtime.py``.

What the HTTP API (``httpapi.py``) needs of a function is only this: ``await invoke(event,
timeout_s)`` returns the handler's result or raises (the handler raised, timed out, or its
environment died or could not start), one invocation at a time per execution environment;
and ``close()``. ``LocalFunction`` is the thinnest such function: an environment is a child
process speaking ``lambda_runtime.py``'s JSON lines; an idle one is reused (warm, module
state kept), else a new one starts (a cold start), up to ``max_envs``, past which an
invocation waits. A timed-out invocation's environment is killed, as Lambda stops it.
Idle environments are not retired and nothing is throttled: the local stack's environment
pool (``environments.py``) does that, and can stand in for this class unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

MAX_ANSWER = 64 * 1024 * 1024  # an answer line: Lambda's 6 MB result, JSON-escaped
INIT_TIMEOUT_S = 60.0  # Lambda allows 10 s of init; a loaded 2-core machine needs more


class FunctionError(Exception):
    """The invocation failed: the handler raised, timed out, or its environment died."""


class HandlerProcess:
    """One execution environment: ``lambda_runtime.py`` in a child process."""

    def __init__(
        self, proc: asyncio.subprocess.Process, answers: asyncio.StreamReader, pipe: asyncio.BaseTransport
    ) -> None:
        self.proc, self.answers, self.pipe = proc, answers, pipe

    @classmethod
    async def start(cls, argv: Sequence[str], env: Mapping[str, str]) -> HandlerProcess:
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                env={**env, "TOKENRELAY_RUNTIME_FD": str(write_fd)},
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        answers = asyncio.StreamReader(limit=MAX_ANSWER)
        pipe = os.fdopen(read_fd, "rb")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(answers), pipe)
        self = cls(proc, answers, transport)
        try:
            first = await asyncio.wait_for(self._answer(), INIT_TIMEOUT_S)
        except (TimeoutError, FunctionError) as exc:
            await self.stop()
            raise FunctionError(f"init failed: {exc or 'timed out'}") from None
        if "init_error" in first:
            await self.stop()
            raise FunctionError(f"init failed: {first['init_error']['errorMessage']}")
        return self

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def _answer(self) -> dict[str, Any]:
        line = await self.answers.readline()
        if not line:
            raise FunctionError(f"the environment exited ({await self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def invoke(self, event: Mapping[str, Any], timeout_s: float, env: Mapping[str, str]) -> Any:
        assert self.proc.stdin is not None
        name = env.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        invocation = {
            "event": event,
            "request_id": str(uuid.uuid4()),
            "deadline_ms": int((time.time() + timeout_s) * 1000),
            "function_name": name,
            "arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            "memory_mb": int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")),
        }
        self.proc.stdin.write(json.dumps(invocation).encode() + b"\n")
        try:
            await self.proc.stdin.drain()
            answer = await asyncio.wait_for(self._answer(), timeout_s)
        except TimeoutError:
            await self.stop()  # Lambda stops the environment of a timed-out invocation
            raise FunctionError(f"{name}: Task timed out after {timeout_s:.2f} seconds") from None
        except (ConnectionError, FunctionError) as exc:
            await self.stop()
            raise FunctionError(f"{name}: {exc}") from None
        if "error" in answer:
            raise FunctionError(f"{name}: {answer['error']['errorType']}: {answer['error']['errorMessage']}")
        return answer.get("result")

    async def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()
        self.pipe.close()


class LocalFunction:
    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], max_envs: int = 10) -> None:
        self.name, self.argv, self.env, self.max_envs = name, list(argv), dict(env), max_envs
        self.idle: list[HandlerProcess] = []
        self.every: set[HandlerProcess] = set()
        self.cold_starts = 0
        self._starting = 0
        self._free = asyncio.Condition()

    async def invoke(self, event: Mapping[str, Any], timeout_s: float) -> Any:
        env = await self._acquire()
        try:
            return await env.invoke(event, timeout_s, self.env)
        finally:
            async with self._free:
                if env.alive:
                    self.idle.append(env)
                else:
                    self.every.discard(env)
                self._free.notify()

    async def _acquire(self) -> HandlerProcess:
        async with self._free:
            while not self.idle and len(self.every) + self._starting >= self.max_envs:
                await self._free.wait()
            if self.idle:
                return self.idle.pop()  # the most recently used: the warmest
            self._starting += 1
        env = None
        try:
            env = await HandlerProcess.start(self.argv, self.env)
            self.cold_starts += 1
            return env
        finally:
            async with self._free:
                self._starting -= 1
                if env is not None:
                    self.every.add(env)
                self._free.notify()

    async def close(self) -> None:
        every, self.every, self.idle = self.every, set(), []
        for env in every:
            await env.stop()
