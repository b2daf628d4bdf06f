"""Run a uvicorn server in a background thread for the length of a ``with`` block.

Shared by the local WebSocket gateway (when tests embed it) and the tests' own servers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


@contextmanager
def threaded_server(
    config: uvicorn.Config, startup_timeout_s: float = 10.0, stop_timeout_s: float = 15.0
) -> Iterator[None]:
    """Start ``config`` under uvicorn in a daemon thread; stop it when the block exits."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{config.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {config.port}")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=stop_timeout_s)
