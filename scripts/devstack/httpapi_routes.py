"""An API Gateway HTTP API's route table and its Lambda payload, as AWS builds them.

Pure functions, used by ``httpapi.py``:

- ``routes_from_template``: every ``HttpApi`` event of every function in the template
  (``Method`` and ``Path``; ``ANY``; ``{param}`` matches one segment, ``{name+}`` the
  rest of the path, at least one segment).
- ``select``: the route API Gateway picks for a request, most specific first: an exact
  method before ``ANY``, a literal segment before ``{param}`` before ``{name+}``. None is
  API Gateway's ``404 {"message":"Not Found"}`` (an HTTP API has no 405).
- ``event``: the payload format 2.0 event (lower-case headers, duplicates joined with
  commas; cookies in ``cookies``; the body base64-encoded unless its type is text: on AWS
  only ``text/*``, ``application/json``, ``application/xml`` and ``application/javascript``
  arrive as text, a missing ``Content-Type`` and form posts arrive base64-encoded).
- ``response``: the HTTP answer to a 2.0 result (``statusCode``, ``headers``, ``cookies``,
  ``body``, ``isBase64Encoded``; a result without ``statusCode`` is a 200 JSON body).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
LITERAL, PARAM, GREEDY = 0, 1, 2


@dataclass(frozen=True)
class HttpRoute:
    method: str  # GET, POST..., or ANY
    path: str  # as declared: /chat/stream/{stream_id}
    function: str  # the logical id of the function it invokes

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> list[tuple[int, str]]:
        kinds = []
        for part in self.path.strip("/").split("/") if self.path != "/" else []:
            if part.startswith("{") and part.endswith("+}"):
                kinds.append((GREEDY, part[1:-2]))
            elif part.startswith("{") and part.endswith("}"):
                kinds.append((PARAM, part[1:-1]))
            else:
                kinds.append((LITERAL, part))
        return kinds

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route serves ``method path``, else None."""
        if self.method not in ("ANY", method):
            return None
        parts = path.strip("/").split("/") if path != "/" else []
        params: dict[str, str] = {}
        for i, (kind, name) in enumerate(self.segments):
            if kind == GREEDY:
                rest = parts[i:]
                if not rest or not all(rest):
                    return None
                params[name] = "/".join(rest)
                return params
            if i >= len(parts) or not parts[i]:
                return None
            if kind == LITERAL and parts[i] != name:
                return None
            if kind == PARAM:
                params[name] = parts[i]
        return params if len(parts) == len(self.segments) else None

    def specificity(self) -> tuple[Any, ...]:
        return (tuple(kind for kind, _ in self.segments), self.method == "ANY")


def routes_from_template(template: Mapping[str, Any], api_id: str | None = None) -> list[HttpRoute]:
    """Every HttpApi event of the template's functions (of the API ``api_id`` if given)."""
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            if api_id is not None and props.get("ApiId") not in ({"Ref": api_id}, api_id):
                continue
            method = str(props.get("Method", "ANY")).upper()
            routes.append(
                HttpRoute("ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method, props["Path"], logical_id)
            )
    return routes


def select(routes: Iterable[HttpRoute], method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
    found = [(route, params) for route in routes if (params := route.match(method, path)) is not None]
    if not found:
        return None
    return min(found, key=lambda item: item[0].specificity())


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in TEXT_TYPES


@dataclass(frozen=True)
class Request:
    method: str
    raw_path: str  # as sent, percent-encoded
    raw_query: str
    headers: Sequence[tuple[str, str]]  # as sent, in order
    body: bytes
    source_ip: str


def event(
    route: HttpRoute, params: Mapping[str, str], request: Request, api_id: str, stage: str = "$default"
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway sends to the route's function."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-port", "443")
    headers.setdefault("x-forwarded-proto", "https")
    headers["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    request_id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode()
    out: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": api_id,
            "domainName": headers.get("host", f"{api_id}.execute-api.us-east-1.amazonaws.com"),
            "domainPrefix": api_id,
            "http": {
                "method": request.method,
                "path": unquote(request.raw_path),
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route.key,
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        out["cookies"] = cookies
    if query:
        out["queryStringParameters"] = query
    if params:
        out["pathParameters"] = {name: unquote(value) for name, value in params.items()}
    if request.body:
        if is_text(headers.get("content-type")):
            out["body"] = request.body.decode("utf-8", errors="replace")
        else:
            out["body"], out["isBase64Encoded"] = base64.b64encode(request.body).decode(), True
    return out


def response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of the HTTP answer to a 2.0 result."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    status = int(result["statusCode"])
    headers = [(str(k).lower(), str(v)) for k, v in (result.get("headers") or {}).items()]
    headers += [("set-cookie", str(c)) for c in result.get("cookies") or []]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return status, headers, raw
