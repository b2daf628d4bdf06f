"""``scripts/ws-chat``: lines in, answers out, readable when piped (issue 20: ``python -m
websockets`` printed ANSI escapes into a pipe). Run as a user runs it, against the local gateway."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.test_websocket_e2e import Stack, stack  # noqa: F401  (fixture)
from tests.fakes.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def ws_chat(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "ws-chat"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_ws_chat_piped_prints_each_answer_readably_without_escapes(stack: Stack) -> None:  # noqa: F811
    run = ws_chat(stack.url, "--wait", "30", stdin="Hello over WebSocket\n\nand a second line\n")
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout + run.stderr  # no ANSI escapes into a pipe
    lines = run.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines if line.startswith("[")] == ["[start", "[usage:", "[done:"] * 2
    assert "You said: Hello over WebSocket" in lines and "You said: and a second line" in lines
    assert lines[-1].startswith("[done: stop, 6 tokens, ")


def test_ws_chat_json_lines_in_and_out(stack: Stack) -> None:  # noqa: F811
    request = json.dumps({"type": "chat", "message": "one two", "provider": "echo"})
    run = ws_chat(stack.url, "--json", stdin=request + "\n")
    assert run.returncode == 0, run.stderr
    messages = [json.loads(line) for line in run.stdout.splitlines()]
    assert messages[0]["type"] == "start" and messages[-1]["type"] == "done"
    assert "".join(m["content"] for m in messages if m["type"] == "text") == "You said: one two"
    assert sum(m["tokens"] for m in messages if m["type"] == "text") == messages[-1]["completion_tokens"]
    assert {m["request_id"] for m in messages} == {"r1"}


def test_ws_chat_error_answer_is_shown_and_fails_the_exit_code(stack: Stack) -> None:  # noqa: F811
    run = ws_chat(stack.url, stdin=json.dumps({"type": "chat", "message": "x", "model": "nope"}) + "\n")
    assert run.returncode == 1
    assert "[error invalid_request (model): " in run.stdout


def test_ws_chat_nothing_listening_says_so_and_exits_1() -> None:
    run = ws_chat(f"ws://127.0.0.1:{free_port()}", stdin="hi\n")
    assert run.returncode == 1
    assert "ws-chat: cannot connect to ws://127.0.0.1:" in run.stderr
