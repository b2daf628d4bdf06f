"""The WebSocket checks: a chat to its end, and a cancel that stops a stream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import websockets

from .run import CANCEL_BOUND_S, Run, require

TIMEOUT_S = 60.0


async def _receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
    return message


def _connect(run: Run) -> Any:
    url = run.target.websocket_url
    if not run.target.key:  # AUTH_MODE=off: the stream's owner is this client id
        url += ("&" if "?" in url else "?") + f"client_id={run.target.client_id}"
    protocols: Any = run.target.subprotocols() or None  # the key, as a browser sends it
    return websockets.connect(url, open_timeout=30, max_size=None, subprotocols=protocols)


async def ws_chat(run: Run) -> str:
    async with _connect(run) as ws:
        await ws.send(json.dumps({"type": "chat", "request_id": "smoke-chat", **run.short()}))
        kinds: list[str] = []
        text, stream_id = "", ""
        while not kinds or kinds[-1] not in ("done", "cancelled", "error"):
            message = await _receive(ws)
            kinds.append(message["type"])
            stream_id = message.get("stream_id", stream_id)
            text += message.get("content", "") if message["type"] == "text" else ""
            require(message["type"] != "error", f"error: {message}")
    require(kinds[0] == "start" and kinds[-1] == "done" and "text" in kinds, f"messages {kinds}")
    expected = run.expected()
    require(expected is None or text == expected, f"text {text[:80]!r}")
    run.completed[stream_id] = "ws-chat"
    return f"start, {kinds.count('text')} text messages, done"


async def ws_cancel(run: Run) -> str:
    async with _connect(run) as ws:
        await ws.send(json.dumps({"type": "chat", "request_id": "smoke-cancel", **run.long()}))
        stream_id = ""
        while True:
            message = await _receive(ws)
            require(message["type"] not in ("done", "error"), f"ended before the cancel: {message}")
            stream_id = message.get("stream_id", stream_id)
            if message["type"] == "text":
                break
        sent = time.monotonic()
        await ws.send(json.dumps({"type": "cancel", "stream_id": stream_id}))
        while message["type"] not in ("done", "cancelled", "error"):
            message = await _receive(ws)
        took = time.monotonic() - sent
    require(message["type"] == "cancelled", f"ended with {message}, not cancelled")
    require(took <= CANCEL_BOUND_S, f"stopped {took:.2f} s after the cancel, over the {CANCEL_BOUND_S:.0f} s bound")
    run.cancelled[stream_id] = "ws-cancel"
    return f'cancelled {took * 1000:.0f} ms after {{"type":"cancel"}} (bound {CANCEL_BOUND_S:.0f} s)'
