"""One request per route of the app, for the tests that walk every route on every path."""

from __future__ import annotations

from typing import Any


def sample_request(method: str, path: str, stream_id: str) -> dict[str, Any]:
    """One request each route answers with a success or a 4xx of its own (never a routing 404)."""
    url = path.replace("{stream_id}", stream_id).replace("{model+}", "echo/echo-1").replace("{chat_id}", "sample-chat")
    bodies: dict[str, Any] = {
        "/chat/stream": {"message": "hi"},
        "/chat/stream-simple": {"message": "hi"},
        "/v1/chat/completions": {"model": "echo/echo-1", "messages": [{"role": "user", "content": "hi"}]},
        "/v1/messages": {"model": "echo/echo-1", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
        f"/chat/stream/{stream_id}/cancel": None,  # a finished stream: 409, from the app
        "/api/chat": {
            "id": "sample-chat",
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        },
    }
    if method == "POST":
        assert url in bodies, f"no sample request for POST {path}: add one here"
        return {"method": method, "url": url, "json": bodies[url]}
    return {"method": method, "url": url, "params": {"message": "hi"} if url == "/chat/stream" else None}
