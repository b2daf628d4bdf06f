"""``@connections``: API Gateway's management API over the connections the gateway holds.

``POST`` sends the body to the client as one text frame (binary if it is not
UTF-8), ``GET`` describes the connection, ``DELETE`` closes it (``$disconnect``
follows). An unknown or closed connection answers 410 ``GoneException``, a body
over 128 KB 413 ``PayloadTooLargeException``, as in AWS. ``post_delay_s`` in
the gateway's config slows each post down, to mimic a post's cost in AWS.

With an ``Authorizer`` (``identities.py``), each call must be signed by an identity whose
policies allow ``execute-api:ManageConnections`` on
``arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/@connections/ID``, as API Gateway
requires; otherwise 403 ``ForbiddenException``, logged at ERROR.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from scripts.devstack.apigw_events import Peer
from scripts.devstack.lambdas import ACCOUNT_ID, REGION, aws_error, request_url

MAX_PAYLOAD = 128 * 1024  # API Gateway: 128 KB per message


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Connection:
    def __init__(self, websocket: WebSocket, peer: Peer) -> None:
        self.websocket = websocket
        self.peer = peer
        self.last_active = time.time()
        self.open = False
        self.lock = asyncio.Lock()

    async def send(self, data: bytes) -> None:
        async with self.lock:
            try:
                await self.websocket.send_text(data.decode())
            except UnicodeDecodeError:
                await self.websocket.send_bytes(data)


class ManagementApi:
    def __init__(self, connections: dict[str, Connection], stats: Any, config: Any, authorizer: Any = None) -> None:
        self.connections = connections
        self.stats = stats  # gateway.Stats
        self.config = config  # gateway.GatewayConfig (read on every request: tests change it)
        self.authorizer = authorizer  # identities.Authorizer, or None: anyone may call

    async def handle(self, request: Request) -> Response:
        connection_id = request.path_params["connection_id"]
        data = await request.body()
        if self.authorizer is not None:
            from scripts.devstack.identities import Denied

            resource = (
                f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.config.api_id}/{self.config.stage}"
                f"/{request.method}/@connections/{connection_id}"
            )
            try:
                self.authorizer.authorize(
                    request.method,
                    request_url(request),
                    request.headers,
                    data,
                    "execute-api:ManageConnections",
                    resource,
                )
            except Denied as exc:
                code = "ForbiddenException" if exc.code == "AccessDeniedException" else exc.code
                return aws_error(exc.status, code, exc.message)
        if request.method == "POST":
            if len(data) > MAX_PAYLOAD:
                return aws_error(413, "PayloadTooLargeException", "Message too long")
            if self.config.post_delay_s:
                await asyncio.sleep(self.config.post_delay_s)
        connection = self.connections.get(connection_id)
        if connection is None or not connection.open:
            return self._gone(connection_id)
        if request.method == "GET":
            peer = connection.peer
            return JSONResponse(
                {
                    "connectedAt": _iso(peer.connected_at_ms / 1000),
                    "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
                    "lastActiveAt": _iso(connection.last_active),
                }
            )
        if request.method == "DELETE":
            connection.open = False
            await connection.websocket.close(1000)
            return Response(status_code=204)
        try:
            await connection.send(data)
        except Exception:  # closed under us
            return self._gone(connection_id)
        self.stats.posts += 1
        self.stats.posted_bytes += len(data)
        self.stats.max_post_bytes = max(self.stats.max_post_bytes, len(data))
        return Response(status_code=200)

    def _gone(self, connection_id: str) -> Response:
        self.stats.gone += 1
        return aws_error(410, "GoneException", f"connection {connection_id} is gone")
