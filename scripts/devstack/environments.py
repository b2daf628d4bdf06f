"""Execution environments as Lambda runs them: one process each, one request at a time.

- ``ProcessEnv``: one environment, a child process with the function's code, environment
  variables and credentials. Its stdout and stderr are its log: every line goes to a sink
  (the terminal of ``scripts/dev``, a test's capture) and the last ones are kept, so that
  an environment that dies says which it was, how (exit code or signal) and what it said
  last, at ERROR. Optionally held to Lambda's CPU share for its memory size (``cpu_share.py``).
- ``Pool``: the environments of one function. ``lease()`` hands out an idle environment
  (warm) or starts a new one (a real cold start); each serves one request at a time. At
  most ``max_envs`` run at once, as a function's concurrency limit: a request beyond it
  waits up to ``queue_timeout_s`` for one to free up, then is ``Throttled`` (AWS throttles
  at once: ``queue_timeout_s=0``). Idle environments retire after ``idle_timeout_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger("tokenrelay.environments")
LogSink = Callable[[str, str], None]  # (environment name, line)
LAST_LINES = 40


def print_sink(name: str, line: str) -> None:
    """Each line on stderr, prefixed with the environment's name (what ``scripts/dev`` shows)."""
    sys.stderr.write(f"[{name}] {line}\n")
    sys.stderr.flush()


def how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class ProcessEnv:
    """One execution environment: a child process and its log."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str,
        sink: LogSink = print_sink,
        cpu: Any = None,  # cpu_share.CpuShare, to hold the process to Lambda's CPU share
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.argv, self.env, self.cwd, self.sink, self.cpu = list(argv), dict(env), cwd, sink, cpu
        self.pass_fds = tuple(pass_fds)
        self.proc: asyncio.subprocess.Process | None = None
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self.started_at = 0.0
        self.last_used = time.monotonic()
        self.stopping = False
        self._readers: list[asyncio.Task[None]] = []

    async def spawn(self, stdin: bool = False) -> None:
        self.started_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=self.pass_fds,
            preexec_fn=self._in_child,
            start_new_session=True,  # a terminal's Ctrl-C goes to the stack, which stops us in order
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        loop = asyncio.get_running_loop()
        self._readers = [loop.create_task(self._read(self.proc.stdout)), loop.create_task(self._read(self.proc.stderr))]
        self._watcher = loop.create_task(self._watch())

    def _in_child(self) -> None:
        """After fork, before exec: die with the parent (no orphans), join the CPU share cgroup."""
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
        if self.cpu is not None:
            self.cpu.enter()

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.last_lines.append(text)
            try:
                self.sink(self.name, text)
            except Exception:  # a sink must never take the environment down
                log.exception("log sink failed")

    async def _watch(self) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if not self.stopping:
            tail = "\n".join(f"    {line}" for line in self.last_lines) or "    (no output)"
            log.error(
                "environment %s exited unexpectedly (%s); its last lines:\n%s", self.name, how_it_ended(code), tail
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM (the process may finish what it is doing), then SIGKILL after ``grace_s``."""
        self.stopping = True
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                self.proc.kill()  # it may have exited since: ProcessLookupError, below
                await self.proc.wait()
        except ProcessLookupError:
            await self.proc.wait()  # it exited between the check and the signal
        if self.cpu is not None:
            self.cpu.release()


class Throttled(Exception):
    """Every environment of the function is busy and none freed up in time."""


@dataclass
class PoolStats:
    cold_starts: int = 0
    invocations: int = 0
    throttles: int = 0
    peak: int = 0  # most environments alive at once


E = TypeVar("E", bound=ProcessEnv)


class Pool(Generic[E]):
    def __init__(
        self,
        name: str,
        start: Callable[[str], Awaitable[E]],
        *,
        max_envs: int = 10,
        idle_timeout_s: float = 300.0,
        queue_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._start = start  # starts and readies a new environment with the given name
        self.max_envs, self.idle_timeout_s, self.queue_timeout_s = max_envs, idle_timeout_s, queue_timeout_s
        self.stats = PoolStats()
        self.busy: set[E] = set()
        self.idle: list[E] = []
        self._starting = 0
        self._lingering: dict[asyncio.Task[None], E] = {}
        self._freed = asyncio.Condition()
        self._numbers = itertools.count(1)
        self._reaper: asyncio.Task[None] | None = None

    @property
    def size(self) -> int:
        return len(self.busy) + len(self.idle) + self._starting + len(self._lingering)

    async def acquire(self) -> E:
        deadline = time.monotonic() + self.queue_timeout_s
        async with self._freed:
            while True:
                self.idle = [e for e in self.idle if e.alive]
                if self.idle:
                    env = self.idle.pop()  # the most recently used: the warmest
                    break
                if self.size < self.max_envs:
                    env = await self._cold_start()
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stats.throttles += 1
                    raise Throttled(f"{self.name}: all {self.max_envs} environments are busy")
                try:
                    await asyncio.wait_for(self._freed.wait(), left)
                except TimeoutError:
                    continue
        self.busy.add(env)
        self.stats.invocations += 1
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())
        return env

    async def _cold_start(self) -> E:
        self._starting += 1
        self.stats.peak = max(self.stats.peak, self.size)
        name = f"{self.name}-{next(self._numbers)}"
        try:
            self._freed.release()  # others may take warm environments while this one starts
            try:
                env = await self._start(name)
            finally:
                await self._freed.acquire()
        finally:
            self._starting -= 1
        self.stats.cold_starts += 1
        return env

    async def release(self, env: E, *, linger_s: float = 0.0, until: Coroutine[Any, Any, None] | None = None) -> None:
        """Back to idle; with ``linger_s``, the environment is still busy with work the client left
        behind: it serves again once ``until`` says that work is done, or retires if that does not
        come within ``linger_s`` (or there is no ``until``)."""
        self.busy.discard(env)
        env.last_used = time.monotonic()
        if linger_s > 0 and env.alive:
            task = asyncio.get_running_loop().create_task(self._linger(env, linger_s, until))
            self._lingering[task] = env
            task.add_done_callback(lambda t: self._lingering.pop(t, None))
            return
        if until is not None:
            until.close()
        if env.alive:
            self.idle.append(env)
        async with self._freed:
            self._freed.notify()

    async def _linger(self, env: E, linger_s: float, until: Coroutine[Any, Any, None] | None) -> None:
        done = False
        try:
            if until is not None:
                await asyncio.wait_for(until, linger_s)
                done = True
            else:
                await asyncio.sleep(linger_s)
        except TimeoutError:
            pass
        if done and env.alive:
            env.last_used = time.monotonic()
            self.idle.append(env)
        else:
            await env.stop()
        async with self._freed:
            self._freed.notify()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[E]:
        env = await self.acquire()
        try:
            yield env
        finally:
            await self.release(env)

    async def _reap(self) -> None:
        while self.busy or self.idle:
            await asyncio.sleep(min(1.0, self.idle_timeout_s))
            now = time.monotonic()
            stale = [e for e in self.idle if now - e.last_used > self.idle_timeout_s]
            for env in stale:
                self.idle.remove(env)
            await asyncio.gather(*(e.stop() for e in stale))

    async def close(self) -> None:
        everyone = [*self.busy, *self.idle, *self._lingering.values()]
        self.busy.clear()
        self.idle.clear()
        for task in list(self._lingering):
            task.cancel()
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*(e.stop() for e in everyone), return_exceptions=True)


TEST_LAYER = "TOKENRELAY_TEST_LAYER"


def python_path(env: Mapping[str, str], *paths: object) -> str:
    """An environment's ``PYTHONPATH``: its layers and code (``paths``), after the test layer the
    stack's environment may name (``TOKENRELAY_TEST_LAYER``: a directory of hooks a test turns on
    by variable, found first as a Lambda layer's ``python/`` would be; ``tests/fakes/layer``).
    ``scripts/dev`` never sets it."""
    layer = env.get(TEST_LAYER)
    return os.pathsep.join([*([layer] if layer else []), *(str(p) for p in paths)])


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a new process: this one's, with ``extra`` on top."""
    return {**os.environ, **extra}
