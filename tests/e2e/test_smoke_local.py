"""`scripts/smoke --local` against `scripts/dev`, as CI runs it: every check passes, a failing one exits 1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("health", "sse", "cancel", "resume", "http-api", "ws-chat", "ws-cancel", "openai", "metrics")


@pytest.fixture(scope="module")
def dev() -> Iterator[dict[str, str]]:
    """scripts/dev on free ports; its ports as the environment scripts/smoke reads."""
    ports = {name: str(free_port()) for name in ("HTTP_PORT", "WS_PORT", "HTTPAPI_PORT", "DDB_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_", "METRICS_"))}
    env.update(ports)
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "dev")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        output, deadline = "", time.monotonic() + 180
        while "Press Ctrl-C" not in output:
            assert time.monotonic() < deadline and proc.poll() is None, output
            output += proc.stdout.readline()
        assert "scripts/smoke --local" in output  # the banner says how to check it
        yield {**env, **ports}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise


def smoke(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "smoke"), "--local", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_smoke_local_passes_every_check_against_scripts_dev(dev: dict[str, str]) -> None:
    result = smoke(dev)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    passed = [m[1] for line in lines if (m := re.match(r"PASS  (\S+)", line))]
    assert passed == list(CHECKS), result.stdout
    assert lines[-1].startswith(f"smoke: {len(CHECKS)} of {len(CHECKS)} checks passed")
    cancel = next(line for line in lines if line.startswith("PASS  cancel"))
    assert "record cancelled" in cancel


def test_smoke_local_fails_loudly_when_a_check_fails(dev: dict[str, str]) -> None:
    closed = {**dev, "HTTPAPI_PORT": str(free_port())}  # nothing listens: the HTTP API path is down
    result = smoke(closed, "--only", "health,http-api")
    assert result.returncode == 1, result.stdout
    assert re.search(r"^PASS  health ", result.stdout, re.M)
    assert re.search(r"^FAIL  http-api .*ConnectError", result.stdout, re.M), result.stdout
    assert result.stdout.splitlines()[-1].startswith("smoke: 1 of 2 checks passed")
