"""What ``scripts/smoke`` checks: the endpoints of a deployed stack, or of ``scripts/dev``."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    name: str
    function_url: str  # ends with /
    http_api_url: str | None  # ends with /
    websocket_url: str
    key: str | None
    # where metrics arrive: a stack's CloudWatch namespace and service, or scripts/dev's logs
    region: str | None = None
    namespace: str = "TokenRelay"
    service: str | None = None
    log_dir: Path | None = None
    client_id: str = field(default_factory=lambda: f"smoke-{uuid.uuid4().hex[:8]}")

    def headers(self) -> dict[str, str]:
        """Who the smoke run is: its API key, or (AUTH_MODE=off) a client id of its own."""
        if self.key:
            return {"Authorization": f"Bearer {self.key}"}
        return {"X-Client-Id": self.client_id}

    def subprotocols(self) -> list[str]:
        return ["tokenrelay", f"bearer.{self.key}"] if self.key else []


def local(env: dict[str, str] | None = None, key: str | None = None) -> Target:
    """``scripts/dev``'s ports: HTTP_PORT (8000), WS_PORT (8001), HTTPAPI_PORT (8002); logs in .dev/."""
    env = dict(os.environ) if env is None else env
    http, ws, api = env.get("HTTP_PORT", "8000"), env.get("WS_PORT", "8001"), env.get("HTTPAPI_PORT", "8002")
    return Target(
        name="local (scripts/dev)",
        function_url=f"http://127.0.0.1:{http}/",
        http_api_url=f"http://127.0.0.1:{api}/",
        websocket_url=f"ws://127.0.0.1:{ws}",
        key=key,
        log_dir=ROOT / ".dev",
    )


def stack(name: str, region: str | None, key: str | None, session: Any = None) -> Target:
    """A deployed stack, from its CloudFormation outputs and parameters (boto3, your credentials)."""
    import boto3

    session = session or boto3.session.Session(region_name=region)
    found = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])}
    missing = {"StreamFunctionUrl", "HttpApiUrl", "WebSocketUrl"} - set(outputs)
    if missing:
        raise SystemExit(f"smoke: stack {name} has no output {', '.join(sorted(missing))}: is it TokenRelay?")
    return Target(
        name=f"stack {name} ({session.region_name})",
        function_url=outputs["StreamFunctionUrl"].rstrip("/") + "/",
        http_api_url=outputs["HttpApiUrl"].rstrip("/") + "/",
        websocket_url=outputs["WebSocketUrl"],
        key=key,
        region=session.region_name,
        namespace=params.get("MetricsNamespace") or "TokenRelay",
        service=params.get("ServiceName") or name,  # the template's default: the stack name
    )
