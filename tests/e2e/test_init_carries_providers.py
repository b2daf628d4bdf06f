"""Issue 19, lever 1: init imports and builds what the first request needs, so Lambda's init
phase (and a SnapStart snapshot) carries it.

Each check runs a function's entry module in a fresh interpreter, as Lambda's init does, with
the deployed defaults (API keys, resume, EMF metrics, X-Ray), the ``openai`` provider
configured against the fake upstream and moto's DynamoDB; then it serves the first request
and lists the modules that request imported: none.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream
from tokenrelay.protection import new_key
from tokenrelay.stores.dynamodb import DynamoApiKeyStore

ROOT = Path(__file__).resolve().parents[2]

HTTP_FIRST_REQUEST = r"""
import asyncio, json, os, sys

import httpx  # the test's client, imported before the snapshot

import app  # functions/http/app.py: Lambda's init phase

async def main() -> None:
    transport = httpx.ASGITransport(app=app.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://function") as client:
        ready = await client.get("/health")  # the Web Adapter's readiness check ends init
        before = set(sys.modules)
        headers = {"authorization": "Bearer " + os.environ["TEST_TOKEN"]}
        body = {"message": "hello", "provider": "openai", "model": "gpt-4o-mini"}
        response = await client.post("/chat/stream", json=body, headers=headers)
        new = sorted(set(sys.modules) - before)
    print(json.dumps({"ready": ready.status_code, "status": response.status_code, "body": response.text, "new": new}))

asyncio.run(main())
"""

WORKER_INIT = r"""
import json, sys

import boto3

import worker  # functions/websocket/worker.py: Lambda's init phase
from tokenrelay_ws import environment

svc = environment.services()
registry = environment.providers(svc.settings)
provider = registry._raw["openai"]
loader = boto3.DEFAULT_SESSION._session.get_component("data_loader")  # what boto3 loaded: models, rules
print(json.dumps({
    "sdk": "openai" in sys.modules,
    "chat_resource": "openai.resources.chat.completions" in sys.modules,
    "client": provider._client is not None,
    "poster_model": any("apigatewaymanagementapi" in str(key) for key in loader._cache),
}))
"""


def deployed_env(aws: LocalAws, upstream: FakeUpstream, token: str) -> dict[str, str]:
    """The function's variables as the template deploys them, pointed at the local stack."""
    return {
        **os.environ,
        **aws.env(),
        **upstream.env,
        "AWS_LAMBDA_FUNCTION_NAME": "tokenrelay-stream",  # in Lambda: EMF metrics, JSON logs, X-Ray
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        "AUTH_MODE": "api_key",
        "API_KEYS_TABLE": "tokenrelay-api-keys",
        "RATE_LIMITS_TABLE": "tokenrelay-rate-limits",
        "DEFAULT_PROVIDER": "openai",
        "ALLOWED_MODELS": "openai:gpt-4o-mini",
        "UPSTREAM_MAX_RETRIES": "0",
        "TEST_TOKEN": token,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "layers" / "core"), str(ROOT / "functions" / "http"), str(ROOT / "functions" / "websocket")]
        ),
    }


def run_script(script: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def make_key() -> str:
    token, key = new_key("first-request", rpm=0, concurrency=0)
    asyncio.run(DynamoApiKeyStore("tokenrelay-api-keys").put(key))
    return token


def test_the_http_functions_first_request_imports_nothing(aws: LocalAws, upstream: FakeUpstream) -> None:
    env = deployed_env(aws, upstream, make_key())
    result = run_script(HTTP_FIRST_REQUEST, env, ROOT / "functions" / "http")
    assert result["ready"] == 200
    assert result["status"] == 200, result["body"][:500]
    assert "event: done" in result["body"], result["body"][-500:]  # a whole stream from the upstream
    assert len(upstream.requests) == 1
    assert result["new"] == [], f"the first request imported {result['new']}"


def test_the_workers_init_builds_the_configured_provider(aws: LocalAws, upstream: FakeUpstream) -> None:
    env = deployed_env(aws, upstream, "")
    env["AWS_LAMBDA_FUNCTION_NAME"] = "tokenrelay-worker"
    result = run_script(WORKER_INIT, env, ROOT / "functions" / "websocket")
    assert result == {"sdk": True, "chat_resource": True, "client": True, "poster_model": True}
