"""The TypeScript client itself (web/dist/lib, unchanged) in Chromium, against the
HTTP app under uvicorn (what the Function URL runs) and the local WebSocket gateway."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.conftest import Stack

PROMPT = "one two three four five six seven eight"
EXPECTED = f"You said: {PROMPT}"
LIB = "/demo/lib/index.js"


@pytest.fixture
def lib_page(page: Any, stack: Stack) -> Any:
    page.goto(stack.demo_url())
    page.evaluate(f"async () => {{ window.relay = await import('{LIB}'); }}")
    return page


RECORDER = """
  const log = [];
  const handlers = {
    onStart: (e) => log.push(['start', e]),
    onText: (e) => log.push(['text', e]),
    onUsage: (e) => log.push(['usage', e]),
    onDone: (e) => log.push(['done', e]),
    onCancelled: (e) => log.push(['cancelled', e]),
    onError: (e) => log.push(['error', e]),
  };
"""


def check_stream(log: list[list[Any]], result: dict[str, Any]) -> None:
    kinds = [kind for kind, _ in log]
    assert kinds[0] == "start" and kinds[-2:] == ["usage", "done"], kinds
    texts = [event for kind, event in log if kind == "text"]
    assert "".join(t["text"] for t in texts) == EXPECTED
    assert [t["seq"] for t in texts] == list(range(1, len(texts) + 1))
    assert result["type"] == "done" and result["completion_tokens"] == len(EXPECTED.split())
    assert result["stream_id"] == log[0][1]["stream_id"]


@pytest.mark.timeout(30)
def test_stream_chat_over_fetch_against_the_http_app(lib_page: Any, stack: Stack) -> None:
    log, result = lib_page.evaluate(
        f"""async ([base, prompt]) => {{ {RECORDER}
            const result = await relay.streamChat(base, {{ message: prompt }}, handlers);
            return [log, result];
        }}""",
        [stack.http, PROMPT],
    )
    check_stream(log, result)
    assert len([k for k, _ in log if k == "text"]) == len(EXPECTED.split())  # one SSE message per token


@pytest.mark.timeout(30)
def test_stream_chat_event_source_against_the_http_app(lib_page: Any, stack: Stack) -> None:
    log, result = lib_page.evaluate(
        f"""async ([base, prompt]) => {{ {RECORDER}
            const result = await relay.streamChatEventSource(base, {{ message: prompt, provider: 'echo' }}, handlers);
            return [log, result];
        }}""",
        [stack.http, PROMPT],
    )
    check_stream(log, result)


@pytest.mark.timeout(30)
def test_socket_routes_concurrent_streams_to_their_own_handlers(lib_page: Any, stack: Stack) -> None:
    a, b = lib_page.evaluate(
        """async ([ws, prompt]) => {
            const socket = new relay.TokenRelaySocket(ws);
            const run = async (message) => {
                let text = ''; const seqs = [];
                const handle = socket.send({ message }, { onText: (e) => { text += e.text; seqs.push(e.seq); } });
                const result = await handle.result;
                return { text, seqs, result, streamId: handle.streamId, requestId: handle.requestId };
            };
            const out = await Promise.all([run(prompt), run('alpha beta gamma')]);
            socket.close();
            return out;
        }""",
        [stack.ws, PROMPT],
    )
    assert a["text"] == EXPECTED and b["text"] == "You said: alpha beta gamma"
    for run in (a, b):
        assert run["result"]["type"] == "done" and run["result"]["stream_id"] == run["streamId"]
        assert run["seqs"] == list(range(1, len(run["seqs"]) + 1))
    assert a["streamId"] != b["streamId"] and a["requestId"] != b["requestId"]


@pytest.mark.timeout(30)
def test_cancel_endpoint_answers_404_for_unknown_and_409_for_finished_streams(lib_page: Any, stack: Stack) -> None:
    unknown, finished = lib_page.evaluate(
        """async (base) => {
            const unknown = await relay.cancelStream(base, 'no-such-stream');
            const done = await relay.streamChat(base, { message: 'hi' });
            return [unknown, await relay.cancelStream(base, done.stream_id)];
        }""",
        stack.http,
    )
    assert unknown["ok"] is False and unknown["httpStatus"] == 404
    assert finished["ok"] is False and finished["httpStatus"] == 409 and finished["code"] == "stream_finished"


@pytest.mark.timeout(30)
def test_abort_signal_stops_the_stream_and_cancels_it_on_the_server(lib_page: Any, stack: Stack) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(300))
    result, texts = lib_page.evaluate(
        """async ([base, prompt]) => {
            const abort = new AbortController();
            let texts = 0;
            const result = await relay.streamChat(base, { message: prompt }, {
                onText: () => { texts += 1; if (texts === 5) abort.abort(); },
            }, { signal: abort.signal });
            return [result, texts];
        }""",
        [stack.http, long_prompt],
    )
    assert result["type"] == "cancelled" and result["reason"] == "client" and texts == 5
    record = stack.record(result["stream_id"], "cancelled")
    assert record.completion_tokens is not None and record.completion_tokens < 300


@pytest.mark.timeout(30)
def test_socket_reconnects_after_the_gateway_drops_the_connection(lib_page: Any, stack: Stack) -> None:
    lib_page.evaluate(
        """async (ws) => {
            window.statuses = [];
            window.socket = new relay.TokenRelaySocket(ws, {
                backoff: { initialMs: 100 }, onStatus: (s) => window.statuses.push(s),
            });
            const first = await window.socket.send({ message: 'before' }).result;
            if (first.type !== 'done') throw new Error(JSON.stringify(first));
        }""",
        stack.ws,
    )
    assert list(stack.gateway.connections) != []
    for connection_id in list(stack.gateway.connections):  # API Gateway closes a connection: DELETE @connections
        stack.drop_connection(connection_id)
    deadline = time.monotonic() + 5
    while "reconnecting" not in lib_page.evaluate("window.statuses") and time.monotonic() < deadline:
        time.sleep(0.05)
    result = lib_page.evaluate(
        """async () => {
            let text = '';
            const onText = (e) => { text += e.text; };
            const result = await window.socket.send({ message: 'after' }, { onText }).result;
            window.socket.close();
            return { result, text, statuses: window.statuses };
        }"""
    )
    assert result["result"]["type"] == "done" and result["text"] == "You said: after"
    statuses = result["statuses"]
    assert statuses[:2] == ["connecting", "open"] and "reconnecting" in statuses and statuses[-1] == "closed"
    assert statuses.count("open") == 2
