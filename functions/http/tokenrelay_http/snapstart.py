"""The Web Adapter's SnapStart restore hook: ``POST $AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH``.

The adapter (1.1.0+) runs the app as its own process, so the app never sees the runtime's
SnapStart hooks; after a restore, and before any traffic, the adapter POSTs to this path and
fails the restore unless it gets a 2xx. It refuses requests from outside to the path (403).
``tokenrelay.snapstart.after_restore`` does the work. Outermost middleware: no key, no body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tokenrelay.snapstart import after_restore

__all__ = ["RestoreHookMiddleware"]


class RestoreHookMiddleware:
    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        status = 405 if scope["method"] != "POST" else 204
        if status == 204:
            after_restore()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
