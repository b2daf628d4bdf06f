"""Local Lambda execution environments for one function: processes, one invocation at a time.

``Pool.invoke`` hands an event to an idle environment or starts a new one (a real cold
start: a fresh process imports the function, ``lambda_runtime.py``), up to ``max_envs``
at once; past that, invocations wait for one to be free (Lambda would throttle). An
environment that outlives the invocation's timeout is killed, as Lambda stops a timed-out
one, and the next invocation gets a new one; environments idle for ``idle_s`` are retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tokenrelay.httpapi")
MAX_LINE = 16 * 1024 * 1024  # results up to Lambda's 6 MB, JSON-escaped


class InitError(Exception):
    """The function could not be imported (Lambda: an init error)."""


@dataclass
class Outcome:
    result: Any = None
    error: dict[str, Any] | None = None  # the function raised
    timed_out: bool = False
    size: int = 0  # bytes of the serialized result, as Lambda counts its response payload


class Environment:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.idle_since = time.monotonic()

    @classmethod
    async def start(cls, argv: Sequence[str], env: Mapping[str, str], init_timeout_s: float) -> Environment:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=dict(env), limit=MAX_LINE
        )
        self = cls(proc)
        try:
            first = await asyncio.wait_for(self._read(), init_timeout_s)
        except (TimeoutError, EOFError) as exc:
            await self.stop()
            raise InitError(f"the environment did not start ({type(exc).__name__})") from None
        if "init_error" in first:
            await self.stop()
            raise InitError(f"{first['init_error']['errorType']}: {first['init_error']['errorMessage']}")
        return self

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise EOFError("the environment exited")
        message: dict[str, Any] = json.loads(line)
        message["_size"] = len(line)
        return message

    async def invoke(self, event: Mapping[str, Any], timeout_s: float) -> Outcome:
        assert self.proc.stdin is not None
        deadline_ms = int((time.time() + timeout_s) * 1000)
        request = {"event": event, "request_id": str(uuid.uuid4()), "deadline_ms": deadline_ms}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        try:
            await self.proc.stdin.drain()
            reply = await asyncio.wait_for(self._read(), timeout_s)
        except TimeoutError:
            await self.stop()  # Lambda stops a timed-out environment
            return Outcome(timed_out=True)
        except (EOFError, ConnectionError):
            await self.stop()
            return Outcome(error={"errorType": "Runtime.ExitError", "errorMessage": "the environment exited"})
        if "error" in reply:
            return Outcome(error=reply["error"])
        return Outcome(result=reply["result"], size=reply["_size"])

    async def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


class Pool:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        max_envs: int = 10,
        idle_s: float = 300.0,
        init_timeout_s: float = 60.0,
    ) -> None:
        self.argv, self.env = list(argv), dict(env)
        self.max_envs, self.idle_s, self.init_timeout_s = max_envs, idle_s, init_timeout_s
        self.idle: list[Environment] = []
        self.every: set[Environment] = set()
        self.running = 0  # environments alive, idle or busy
        self.cold_starts = 0
        self._free = asyncio.Condition()
        self._reaper: asyncio.Task[None] | None = None

    async def invoke(self, event: Mapping[str, Any], timeout_s: float) -> Outcome:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())
        env = await self._acquire()
        try:
            return await env.invoke(event, timeout_s)
        finally:
            await self._release(env)

    async def _acquire(self) -> Environment:
        async with self._free:
            while not self.idle and self.running >= self.max_envs:
                await self._free.wait()
            if self.idle:
                return self.idle.pop()  # the most recently used: warm
            self.running += 1
        try:
            env = await Environment.start(self.argv, self.env, self.init_timeout_s)
        except BaseException:
            async with self._free:
                self.running -= 1
                self._free.notify()
            raise
        self.cold_starts += 1
        self.every.add(env)
        return env

    async def _release(self, env: Environment) -> None:
        async with self._free:
            if env.alive:
                env.idle_since = time.monotonic()
                self.idle.append(env)
            else:
                self.running -= 1
                self.every.discard(env)
            self._free.notify()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle_s, 5.0))
            now = time.monotonic()
            async with self._free:
                old = [e for e in self.idle if now - e.idle_since >= self.idle_s]
                self.idle = [e for e in self.idle if e not in old]
                self.running -= len(old)
            for env in old:
                self.every.discard(env)
                await env.stop()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        async with self._free:
            every, self.every, self.idle, self.running = self.every, set(), [], 0
        for env in every:  # busy ones too: the server is going away
            await env.stop()
