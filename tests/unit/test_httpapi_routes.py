"""The local HTTP API's route table and payload 2.0 events (scripts/devstack/httpapi_routes.py)."""

from __future__ import annotations

import base64
import json

import pytest

from scripts.devstack.httpapi_routes import HttpRoute, Request, event, response, routes_from_template, select
from scripts.devstack.tables import load_template

ROUTES = [
    HttpRoute("GET", "/items/{id}", "Fn"),
    HttpRoute("GET", "/items/special", "Fn"),
    HttpRoute("ANY", "/items/{id}", "Any"),
    HttpRoute("GET", "/files/{path+}", "Fn"),
    HttpRoute("POST", "/chat/stream/{stream_id}/cancel", "Fn"),
]


@pytest.mark.parametrize(
    ("method", "path", "key", "params"),
    [
        ("GET", "/items/42", "GET /items/{id}", {"id": "42"}),
        ("GET", "/items/special", "GET /items/special", {}),  # a literal beats a parameter
        ("DELETE", "/items/42", "ANY /items/{id}", {"id": "42"}),  # an exact method beats ANY
        ("GET", "/files/a/b/c.txt", "GET /files/{path+}", {"path": "a/b/c.txt"}),
        ("POST", "/chat/stream/abc/cancel", "POST /chat/stream/{stream_id}/cancel", {"stream_id": "abc"}),
    ],
)
def test_select_picks_the_most_specific_route(method: str, path: str, key: str, params: dict[str, str]) -> None:
    found = select(ROUTES, method, path)
    assert found is not None
    assert (found[0].key, found[1]) == (key, params)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/items"),  # a parameter needs its segment
        ("GET", "/items/"),  # an empty segment is no value
        ("GET", "/items/1/2"),  # {id} is one segment
        ("GET", "/files"),  # {path+} needs at least one segment
        ("GET", "/chat/stream/abc/cancel"),  # no 405 on an HTTP API: another method is no route
        ("GET", "/nothing"),
    ],
)
def test_select_finds_no_route_where_api_gateway_answers_404(method: str, path: str) -> None:
    assert select(ROUTES, method, path) is None


def test_routes_from_template_are_the_api_functions_http_api_events() -> None:
    template = load_template()
    routes = routes_from_template(template, "HttpApi")
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
    declared = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()}
    assert {(r.method, r.path) for r in routes} == declared
    assert {r.function for r in routes} == {"ApiFunction"}
    assert routes_from_template(template, "NoSuchApi") == []


def request(**kw: object) -> Request:
    fields: dict[str, object] = {
        "method": "GET",
        "raw_path": "/items/a%20b",
        "raw_query": "x=1&x=2&y=",
        "headers": [("Host", "api.local"), ("X-Dup", "1"), ("x-dup", "2"), ("Cookie", "a=1; b=2")],
        "body": b"",
        "source_ip": "127.0.0.1",
    }
    fields.update(kw)
    return Request(**fields)  # type: ignore[arg-type]


def test_event_is_payload_format_2_0_as_api_gateway_builds_it() -> None:
    route, params = select(ROUTES, "GET", "/items/a%20b") or (None, None)
    assert route is not None and params is not None
    e = event(route, params, request(), "api123")
    assert e["version"] == "2.0" and e["routeKey"] == "GET /items/{id}" == e["requestContext"]["routeKey"]
    assert e["rawPath"] == "/items/a%20b" and e["requestContext"]["http"]["path"] == "/items/a b"
    assert e["pathParameters"] == {"id": "a b"}
    assert e["rawQueryString"] == "x=1&x=2&y=" and e["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert e["headers"]["x-dup"] == "1,2" and "cookie" not in e["headers"]  # lower-case, joined
    assert e["cookies"] == ["a=1", "b=2"]
    assert e["headers"]["x-forwarded-proto"] == "https" and e["headers"]["x-amzn-trace-id"].startswith("Root=1-")
    assert e["requestContext"]["stage"] == "$default" and e["requestContext"]["apiId"] == "api123"
    assert "body" not in e and e["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "encoded"),
    [
        ("application/json", False),
        ("application/json; charset=utf-8", False),
        ("text/plain", False),
        ("application/xml", False),
        (None, True),  # no Content-Type: binary, as on AWS
        ("application/x-www-form-urlencoded", True),
        ("application/octet-stream", True),
    ],
)
def test_event_body_is_base64_unless_its_type_is_text(content_type: str | None, encoded: bool) -> None:
    headers = [("content-type", content_type)] if content_type else []
    e = event(ROUTES[0], {"id": "1"}, request(method="POST", headers=headers, body=b'{"a": 1}'), "api")
    assert e["isBase64Encoded"] is encoded
    assert (base64.b64decode(e["body"]) if encoded else e["body"].encode()) == b'{"a": 1}'


def test_response_maps_status_headers_cookies_and_base64_body() -> None:
    status, headers, body = response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "image/png"},
            "cookies": ["s=1; Path=/"],
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )
    assert (status, body) == (201, b"\x89PNG")
    assert headers == [("content-type", "image/png"), ("set-cookie", "s=1; Path=/")]


def test_response_without_status_code_is_a_200_json_body() -> None:
    status, headers, body = response({"hello": "world"})
    assert status == 200 and ("content-type", "application/json") in headers
    assert json.loads(body) == {"hello": "world"}


def test_an_encoded_slash_stays_inside_its_segment_and_is_decoded_once() -> None:
    found = select(ROUTES, "GET", "/items/a%2Fb%2520")
    assert found is not None and found[0].key == "GET /items/{id}"
    e = event(found[0], found[1], request(raw_path="/items/a%2Fb%2520"), "api")
    assert e["pathParameters"] == {"id": "a/b%20"} and e["rawPath"] == "/items/a%2Fb%2520"
