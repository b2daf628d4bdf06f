"""moto's DynamoDB server with DynamoDB's write atomicity: the backend serves one request at a time.

DynamoDB applies each write to an item atomically: a conditional write is checked against
the item as the previous write left it. So of a cancel (condition ``status = active``) and a
stream's end (``status = active AND no cancel``) racing on one record, exactly one wins, and
the loser gets ``ConditionalCheckFailedException``. moto's threaded server checks and applies
them without a lock: in a test of 300 such races, both writes succeeded twice (a cancel
answered 200 for a stream recorded ``complete``). Serializing the backend (the handler threads
still read and write their sockets in parallel) makes the local DynamoDB as strict as AWS.

- ``AtomicMotoServer``: a drop-in ``ThreadedMotoServer`` (in the test process).
- ``python -m tests.fakes.moto_atomic -H 127.0.0.1 -p PORT``: ``moto_server`` in its own process.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server, run_simple

__all__ = ["AtomicMotoServer", "serialized_app"]


class _Serialized:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))  # the body too: it is computed lazily


def serialized_app() -> _Serialized:
    return _Serialized(DomainDispatcherApplication(create_backend_app))


class AtomicMotoServer(ThreadedMotoServer):
    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address, self._port, serialized_app(), True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    run_simple(args.host, args.port, serialized_app(), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
