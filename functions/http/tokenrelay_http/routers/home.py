"""``GET /``: what someone who opens the base URL wants, instead of a bare 404.

Where the demo page is served (``scripts/dev`` mounts ``web/dist`` at ``/demo``), a
redirect to it: the newcomer's next step. Elsewhere (a deployed Function URL), a small
index naming the service and version, with links to ``docs`` (the interactive API
reference), ``health`` and ``openapi.json``, and a line on how to present an API key:
HTML for a browser, JSON for anything else. Links are relative, so they hold under a
path prefix. Open, like ``/health``: it says nothing that a 401 would not.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount

from tokenrelay import Settings

__all__ = ["router"]

LINKS = {"docs": "API reference (try each route)", "health": "health", "openapi.json": "OpenAPI schema"}


def _serves_demo(app: Any) -> bool:
    return any(isinstance(route, Mount) and route.path == "/demo" for route in app.routes)


def _page(settings: Settings) -> str:
    items = "".join(f'<li><a href="{h}">{escape(text)}</a> <code>/{h}</code></li>' for h, text in LINKS.items())
    auth = (
        "<p>Every stream route needs an API key: <code>Authorization: Bearer trk_…</code>.</p>"
        if settings.auth_enabled
        else "<p>AUTH_MODE=off: the stream routes are open.</p>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>TokenRelay</title>'
        '<link rel="icon" href="data:,"></head>'
        '<body style="font-family:system-ui,sans-serif;max-width:40em;margin:2em auto">'
        f"<h1>TokenRelay <small>{escape(settings.version)}</small></h1>"
        "<p>Streams LLM answers token by token: <code>POST /chat/stream</code> (SSE), the WebSocket API, "
        "and OpenAI's Chat Completions at <code>/v1</code>.</p>"
        f"<ul>{items}</ul>{auth}</body></html>"
    )


def router(settings: Settings) -> APIRouter:
    routes = APIRouter()

    @routes.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        if _serves_demo(request.app):
            return RedirectResponse("demo/", status_code=307)
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(_page(settings))
        return JSONResponse(
            {
                "service": "TokenRelay",
                "version": settings.version,
                "links": {name.removesuffix(".json"): f"/{name}" for name in LINKS},
                "auth": settings.auth_mode,
            }
        )

    return routes
