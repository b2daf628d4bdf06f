"""What ``scripts/dev`` adds to the app: the demo page (a mount) and CORS. Never used in Lambda."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI

__all__ = ["add_dev_extras"]


def add_dev_extras(app: FastAPI, env: Mapping[str, str]) -> None:
    """Local development only (scripts/dev sets these; Lambda does not).

    ``DEMO_DIR`` serves the built demo page (web/dist) at /demo/. ``CORS_ALLOW_ORIGINS``
    (comma-separated) adds CORS with the Function URL's policy; never set it in Lambda,
    where the Function URL adds CORS itself and doubled headers make browsers refuse.
    """
    demo_dir = env.get("DEMO_DIR")
    if demo_dir:
        from starlette.staticfiles import StaticFiles

        app.mount("/demo", StaticFiles(directory=demo_dir, html=True), name="demo")
    origins = [o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()]
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "last-event-id", "authorization", "x-client-id"],
            expose_headers=["x-stream-id", "retry-after"],
            max_age=600,
        )
