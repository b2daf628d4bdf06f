"""The floors of the cold-start benchmark: the least a Lambda function doing the same job can do.

- ``FLOOR_APP``: a bare Starlette + httpx relay. ``POST /chat/stream`` opens the upstream's
  streaming chat completion and relays each token as an SSE event; ``GET /health`` answers
  at once (no store). Started exactly as the HTTP function is: ``run.sh`` (a copy of
  ``functions/http/run.sh``) under uvicorn, in the same kind of environment, at the same CPU share.
- ``FLOOR_WORKER``: a bare handler: boto3 and httpx imported at init; an invocation reads the
  upstream and posts the first token to ``@connections`` at once, the rest in one more post,
  then ``done``.
(Phase A also prototyped issue 19's first lever here; the product does it now, and
``coldstart.py --baseline REF`` measures it against the tree before.)

``code_dir(kind, parent)`` writes one of them as a function's code directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTTP_CODE = ROOT / "functions" / "http"

FLOOR_APP = """
import json
import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

UPSTREAM = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
HEADERS = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
client = httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5))


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def stream(request: Request) -> StreamingResponse:
    asked = await request.json()
    body = {"model": "bench", "messages": [{"role": "user", "content": asked.get("message", "")}],
            "stream": True, "max_tokens": asked.get("max_tokens", 16)}

    async def relay():
        async with client.stream("POST", UPSTREAM, json=body, headers=HEADERS) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    text = choices[0].get("delta", {}).get("content")
                    if text:
                        yield "event: text\\ndata: " + json.dumps({"text": text}) + "\\n\\n"
        yield "event: done\\ndata: {}\\n\\n"

    return StreamingResponse(relay(), media_type="text/event-stream")


app = Starlette(routes=[Route("/health", health), Route("/chat/stream", stream, methods=["POST"])])
"""

FLOOR_WORKER = """
import json
import os

import boto3
import httpx

UPSTREAM = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
HEADERS = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
http = httpx.Client(timeout=httpx.Timeout(60, connect=5))


def handler(event, context):
    endpoint = None if os.environ.get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") else event["endpoint"]
    api = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
    connection = event["connection_id"]
    body = {"model": "bench", "messages": [{"role": "user", "content": "bench"}],
            "stream": True, "max_tokens": event.get("max_tokens", 16)}
    rest = []
    with http.stream("POST", UPSTREAM, json=body, headers=HEADERS) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            text = choices[0].get("delta", {}).get("content")
            if not text:
                continue
            if not rest:
                api.post_to_connection(ConnectionId=connection, Data=json.dumps({"type": "text", "content": text}))
            rest.append(text)
    api.post_to_connection(ConnectionId=connection, Data=json.dumps({"type": "text", "content": "".join(rest[1:])}))
    api.post_to_connection(ConnectionId=connection, Data=json.dumps({"type": "done"}))
    return {"tokens": len(rest)}
"""


def code_dir(kind: str, parent: Path) -> Path:
    """A function's code directory: ``floor`` (the bare app) or ``worker-floor`` (the bare
    handler, ``floor_worker.handler``)."""
    out = parent / kind
    if out.exists():  # written for an earlier memory size of the same run
        return out
    out.mkdir(parents=True)
    if kind == "worker-floor":
        (out / "floor_worker.py").write_text(FLOOR_WORKER)
        return out
    run = (HTTP_CODE / "run.sh").read_text()
    if kind == "floor":
        (out / "app.py").write_text(FLOOR_APP)
    else:
        raise ValueError(kind)
    (out / "run.sh").write_text(run)
    shutil.copymode(HTTP_CODE / "run.sh", out / "run.sh")
    return out
