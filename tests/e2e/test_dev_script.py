"""The newcomer's path: `scripts/dev`, then the curl command it prints, then Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import websockets

from tests.fakes.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


async def websocket_chat(url: str) -> str:
    """The WebSocket command the script prints, done by a client."""
    text = ""
    async with websockets.connect(url, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "chat", "message": "Hello over WebSocket"}))
        async with asyncio.timeout(20):
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "text":
                    text += msg["content"]
                elif msg["type"] in ("done", "cancelled", "error"):
                    assert msg["type"] == "done", msg
                    return text


def test_dev_script_prints_working_curl_and_stops_on_ctrl_c() -> None:
    http_port, ddb_port, ws_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_"))}
    env.update(HTTP_PORT=str(http_port), DDB_PORT=str(ddb_port), WS_PORT=str(ws_port), ECHO_DELAY_MS="30")
    env["HTTPAPI_PORT"] = str(free_port())
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "dev")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        assert proc.stdout is not None
        output, deadline = "", time.monotonic() + 120
        while "Press Ctrl-C" not in output:
            assert time.monotonic() < deadline and proc.poll() is None, output
            output += proc.stdout.readline()
        curl = re.search(r"^\s+(curl -N .*)$", output, re.M)
        assert curl, output
        started = time.monotonic()
        # run the printed command as a newcomer would, reading its output as it arrives
        with subprocess.Popen(
            curl.group(1), shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        ) as reader:
            assert reader.stdout is not None
            arrivals = [(time.monotonic() - started, line) for line in reader.stdout if line.startswith("data:")]
        texts = [line for _, line in arrivals if '"text"' in line]
        assert len(texts) >= 8 and '"status":"complete"' in arrivals[-1][1]
        assert arrivals[-2][0] - arrivals[1][0] > 0.15  # tokens arrive one by one (30 ms apart), not at once
        assert httpx.get(f"http://127.0.0.1:{http_port}/health").json()["dependencies"]["dynamodb"] == "ok"
        assert f"ws://127.0.0.1:{ws_port}" in output
        assert asyncio.run(websocket_chat(f"ws://127.0.0.1:{ws_port}")) == "You said: Hello over WebSocket"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # never leave the stack running behind the test
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    for port in (http_port, ddb_port, ws_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"port {port} still served after Ctrl-C")


def _start_dev() -> tuple[subprocess.Popen[str], dict[str, int], str]:
    ports = {"HTTP_PORT": free_port(), "DDB_PORT": free_port(), "WS_PORT": free_port(), "HTTPAPI_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_"))}
    env.update({k: str(v) for k, v in ports.items()})
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "dev")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    output, deadline = "", time.monotonic() + 120
    while "Press Ctrl-C" not in output:
        assert time.monotonic() < deadline and proc.poll() is None, output
        output += proc.stdout.readline()
    return proc, ports, output


def _finish(proc: subprocess.Popen[str], ports: dict[str, int]) -> str:
    try:
        rest, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    for port in ports.values():
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"port {port} still served after the stack stopped")
    return rest


def _pid_of(argument: str) -> int:
    """The one process of this stack whose command line holds ``argument`` (its unique port)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and argument in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(entry.name)
        except OSError:
            continue
    raise AssertionError(f"no process with {argument!r}")


def test_dev_script_names_a_component_that_died_and_how() -> None:
    proc, ports, _ = _start_dev()
    try:
        gateway = _pid_of(f"gateway.py --port {ports['WS_PORT']} ")
        os.kill(gateway, signal.SIGKILL)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    rest = _finish(proc, ports)
    assert proc.returncode != 0
    assert f"dev: the WebSocket gateway (pid {gateway}) was killed by SIGKILL; the stack stops." in rest, rest
    assert "its last lines (.dev/gateway.log)" in rest.lower() and "gateway: WebSocket API at" in rest, rest


def test_dev_script_on_sigterm_says_so_and_stops_everything() -> None:
    proc, ports, _ = _start_dev()
    proc.send_signal(signal.SIGTERM)  # to the script alone, as a service manager sends it: at once, after the banner
    rest = _finish(proc, ports)
    assert "dev: SIGTERM: stopping the front door" in rest and "dev: stopped" in rest, rest
