"""``GET /`` (home.py): the demo page where it is served, a small open index elsewhere."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.staticfiles import StaticFiles

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.protection import MemoryKeyStore
from tokenrelay import Settings
from tokenrelay.protection import Authenticator, Guard
from tokenrelay_http import create_app

ON = Settings(auth_mode="api_key", api_keys_table="keys", echo_delay_s=0.0)


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test")  # type: ignore[arg-type]


async def test_root_in_lambda_is_an_open_index_with_links_not_a_404() -> None:
    keys = MemoryKeyStore()
    app = create_app(ON, store=MemoryStreamStore(), guard=Guard(ON, Authenticator(keys)))
    async with client(app) as http:
        as_json = await http.get("/")
        as_html = await http.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        health = await http.get("/health")
    assert as_json.status_code == 200 and keys.gets == 0  # open: no key asked for
    assert as_json.json() == {
        "service": "TokenRelay",
        "version": ON.version,
        "links": {"docs": "/docs", "health": "/health", "openapi": "/openapi.json"},
        "auth": "api_key",
    }
    assert as_html.status_code == 200 and as_html.headers["content-type"].startswith("text/html")
    for link in ('href="docs"', 'href="health"', 'href="openapi.json"', "Authorization: Bearer"):
        assert link in as_html.text
    assert health.json()["auth"] == "api_key"
    assert "/" not in app.openapi()["paths"]  # not part of the API


async def test_root_where_the_demo_is_served_redirects_to_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>demo</title>")
    app = create_app(Settings(echo_delay_s=0.0), store=MemoryStreamStore())
    app.mount("/demo", StaticFiles(directory=tmp_path, html=True), name="demo")  # what DEMO_DIR does
    async with client(app) as http:
        root = await http.get("/")
        followed = await http.get("/", follow_redirects=True)
    assert root.status_code == 307 and root.headers["location"] == "demo/"
    assert followed.status_code == 200 and followed.url.path == "/demo/" and "<title>demo</title>" in followed.text
