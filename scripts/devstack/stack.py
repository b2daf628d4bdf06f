"""The local stack, put together as ``template.yaml`` puts it together.

- ``setup``: the template's DynamoDB tables (as the admin identity), and one IAM identity per
  function with exactly its template policy (``iam.py``, ``identities.py``).
- ``front_door``: the StreamFunction behind its local Function URL (``frontdoor.py``).
- ``websocket_functions``: the WebSocket API's routes and the worker, read from the
  template's ``AWS::ApiGatewayV2::Route`` → integration → function chain, each function in
  its own process environments (``local_functions.py``) for the gateway (``gateway.py``).

Each environment gets the stack's environment (what ``scripts/dev`` or a test sets), the
function's own template variables where the stack sets none (``STREAM_TIMEOUT_S``,
``WORKER_DEADLINE_MARGIN_MS``...), and its own identity's credentials, never the admin's.
``TOKENRELAY_TEMPLATE`` names another template to run the stack from (the mutation test).

How environments run (``LambdaSettings.from_env``): ``LAMBDA_CONCURRENCY`` (10) environments per
function at most; ``LAMBDA_QUEUE_S`` (10) a request waits for one before Lambda's 429;
``LAMBDA_IDLE_S`` (300) before an idle one retires; ``LAMBDA_CPU_SHARE=1`` holds each to
Lambda's CPU share for its ``MemorySize`` (``cpu_share.py``).

    python scripts/devstack/stack.py setup --admin .dev/admin.json --out .dev/identities.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script: scripts.devstack.* from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.devstack.environments import LogSink, print_sink
from scripts.devstack.iam import LocalNames, function_policies
from scripts.devstack.identities import Authorizer, Identity, load, provision, save
from scripts.devstack.local_functions import FunctionSpec, ProcessFunction, template_functions
from scripts.devstack.tables import TEMPLATE, create_tables, load_template

NOT_INHERITED = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN")


def template_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("TOKENRELAY_TEMPLATE") or TEMPLATE)


@dataclass(frozen=True)
class LambdaSettings:
    max_envs: int = 10
    queue_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    cpu_share: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LambdaSettings:
        env = os.environ if env is None else env
        return cls(
            max_envs=int(env.get("LAMBDA_CONCURRENCY") or cls.max_envs),
            queue_timeout_s=float(env.get("LAMBDA_QUEUE_S") or cls.queue_timeout_s),
            idle_timeout_s=float(env.get("LAMBDA_IDLE_S") or cls.idle_timeout_s),
            cpu_share=(env.get("LAMBDA_CPU_SHARE") or "0").lower() in ("1", "true", "yes", "on"),
        )


def local_names(env: Mapping[str, str], stage: str = "local", api_id: str = "local") -> LocalNames:
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    return LocalNames(env=dict(env), region=region, api_id=api_id, parameters={"WebSocketStageName": stage})


def setup(
    endpoint: str,
    admin: Mapping[str, str],
    env: Mapping[str, str],
    *,
    prefix: str = "",
    template: Path | None = None,
    stage: str = "local",
) -> dict[str, Identity]:
    """Create the template's tables (named from ``env``) and one identity per function."""
    import boto3

    data = load_template(template or template_path(env))
    names = local_names(env, stage)
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=names.region,
        aws_access_key_id=admin["access_key_id"],
        aws_secret_access_key=admin["secret_access_key"],
    )
    try:
        create_tables(client, data, env)
    finally:
        client.close()
    return provision(endpoint, admin, function_policies(data, names), prefix, names.region)


def function_env(spec: FunctionSpec, identity: Identity | None, env: Mapping[str, str]) -> dict[str, str]:
    """What one environment of ``spec`` runs with: its template variables, the stack's, its key
    (None: no AWS credentials at all, for a test's function that never calls AWS)."""
    merged = {**spec.env, **{k: v for k, v in env.items() if k not in NOT_INHERITED}}
    if identity is None:
        return {k: v for k, v in merged.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    return {**merged, **identity.env()}


def front_door(
    identities: Mapping[str, Identity],
    env: Mapping[str, str],
    *,
    lambdas: LambdaSettings | None = None,
    sink: LogSink = print_sink,
    template: Path | None = None,
    linger_s: float | None = None,
) -> Any:
    """The StreamFunction behind its local Function URL (a ``frontdoor.FrontDoor``)."""
    from scripts.devstack.frontdoor import FrontDoor

    lambdas = lambdas or LambdaSettings.from_env(env)
    spec = template_functions(load_template(template or template_path(env)), local_names(env))["StreamFunction"]
    grace = float(env.get("RESUME_GRACE_S") or 30)
    return FrontDoor(
        function_env(spec, identities["StreamFunction"], env),
        code_dir=spec.code_dir,
        sink=sink,
        max_envs=lambdas.max_envs,
        idle_timeout_s=lambdas.idle_timeout_s,
        queue_timeout_s=lambdas.queue_timeout_s,
        linger_s=grace + 5 if linger_s is None else linger_s,
        memory_mb=spec.memory_mb,
        cpu_share=lambdas.cpu_share,
        timeout_s=spec.timeout_s,
        function_name=spec.name,
    )


def template_routes(template: Mapping[str, Any]) -> dict[str, str]:
    """``{route key: function logical id}`` of the WebSocket API, from its routes and integrations."""
    resources = template["Resources"]
    routes = {}
    for resource in resources.values():
        if resource.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        target = re.search(r"integrations/\$\{(\w+)\}", resource["Properties"]["Target"]["Fn::Sub"])
        assert target is not None, resource
        uri = resources[target.group(1)]["Properties"]["IntegrationUri"]["Fn::Sub"]
        function = re.search(r"\$\{(\w+)\.Arn\}", uri)
        assert function is not None, uri
        routes[resource["Properties"]["RouteKey"]] = function.group(1)
    return routes


def websocket_functions(
    identities: Mapping[str, Identity],
    env: Mapping[str, str],
    gateway_url: str,
    *,
    stage: str = "local",
    lambdas: LambdaSettings | None = None,
    sink: LogSink = print_sink,
    template: Path | None = None,
) -> tuple[dict[str, ProcessFunction], dict[str, ProcessFunction]]:
    """The gateway's routes and its Invoke API's functions, each in its own processes."""
    lambdas = lambdas or LambdaSettings.from_env(env)
    data = load_template(template or template_path(env))
    specs = template_functions(data, local_names(env, stage))
    here = {"AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": gateway_url, "AWS_ENDPOINT_URL_LAMBDA": gateway_url}
    stack_env = {**env, **here}
    routes_by_function = template_routes(data)
    made: dict[str, ProcessFunction] = {}

    def function(logical_id: str, queue_timeout_s: float) -> ProcessFunction:
        if logical_id not in made:
            spec = specs[logical_id]
            made[logical_id] = ProcessFunction(
                spec,
                function_env(spec, identities[logical_id], stack_env),
                sink=sink,
                max_envs=lambdas.max_envs,
                idle_timeout_s=lambdas.idle_timeout_s,
                queue_timeout_s=queue_timeout_s,
                cpu_share=lambdas.cpu_share,
            )
        return made[logical_id]

    routes = {key: function(fn, lambdas.queue_timeout_s) for key, fn in routes_by_function.items()}
    # Everything else is invoked through the Invoke API: the worker. Lambda queues async events
    # beyond the concurrency limit (up to the template's MaximumEventAgeInSeconds, 60).
    others = [
        fn for fn in specs if fn not in routes_by_function.values() and fn not in ("StreamFunction", "ApiFunction")
    ]
    functions = {specs[fn].name: function(fn, 60.0) for fn in others}
    return routes, functions


def gateway_from_env(identities_path: str, config: Any) -> Any:
    """``gateway.py --identities``: the WebSocket functions in processes, IAM enforced."""
    from scripts.devstack.gateway import Gateway

    identities = load(identities_path)
    url = f"http://{config.host}:{config.port}"
    routes, functions = websocket_functions(identities, dict(os.environ), url, stage=config.stage)
    config.route_keys = tuple(k for k in routes if not k.startswith("$"))
    if functions:
        config.worker_function_name = next(iter(functions))
    return Gateway(config, routes=routes, functions=functions, authorizer=Authorizer(identities.values()))


def front_door_from_env(identities_path: str) -> Any:
    """``frontdoor.py --identities``."""
    return front_door(load(identities_path), dict(os.environ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("setup", help="tables and one IAM identity per function")
    create.add_argument("--admin", required=True, help="the credentials file dynamodb.py wrote")
    create.add_argument("--out", required=True, help="where to write the identities (mode 0600)")
    create.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    with open(args.admin, encoding="utf-8") as f:
        ready = json.load(f)
    identities = setup(ready["endpoint"], ready["admin"], dict(os.environ), stage=args.stage)
    save(identities, args.out)
    functions = ", ".join(identities)
    print(f"stack: tables created; one IAM identity per function ({functions}) from {template_path()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
