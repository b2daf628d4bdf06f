"""``$disconnect``: mark the connection gone and cancel its active streams (reason ``disconnect``).

API Gateway calls this on a best-effort basis; the worker does not depend on it:
its next post gets ``GoneException`` and it stops the stream then.
"""

from __future__ import annotations

import logging
from typing import Any

from tokenrelay import StoreUnavailable

from . import environment

log = logging.getLogger("tokenrelay.websocket")


async def on_disconnect(event: dict[str, Any], svc: environment.Services) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    try:
        record = await svc.connections.disconnect(connection_id)
        # With resume on, a drop is not a cancel: the worker's next post gets GoneException and
        # the grace period starts there (resume.py).
        if record is not None and record.streams and not svc.settings.resume_enabled:
            await environment.request_cancel_all(svc.streams, record.active_streams, "disconnect")
    except StoreUnavailable as exc:
        log.error("$disconnect %s: %s", connection_id, exc)
    return environment.OK


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return environment.run(on_disconnect(event, environment.services()))
