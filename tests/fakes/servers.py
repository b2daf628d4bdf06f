"""Run a real uvicorn server for an ASGI app on 127.0.0.1, in a background thread."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from scripts.devstack.threaded import threaded_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, port: int = 0, startup_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve ``app`` until the block exits; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    with threaded_server(config, startup_timeout_s, stop_timeout_s=10):
        yield f"http://127.0.0.1:{port}"
