"""DynamoDB for the local stack: moto's server mode, enforcing IAM per access key, its writes atomic.

moto's server checks every request's SigV4 signature and its caller's IAM policies once
``INITIAL_NO_AUTH_ACTION_COUNT`` requests have been served (moto's ``core/authorization.py``).
This process starts it with that count at 3: the first three requests, made here before
anything else can connect, create the ``admin`` user (``Action: *``) and its access key.
From then on every request needs a known key, a valid signature and an allowing policy:
the stack's set-up creates one IAM user per function with exactly its template policy
(``identities.py``), using the admin key.

moto evaluates DynamoDB calls against ``Resource: "*"`` only (its ``access_control.py``
has no resource support), which would refuse every statement scoped to a table ARN. Here
the DynamoDB handler authorizes each table a call touches instead, as DynamoDB does: the
table's ARN (``.../index/NAME`` for a Query or Scan of an index), each table of a
``BatchGetItem``/``BatchWriteItem``/``Transact*Items``. A refusal is DynamoDB's own
(HTTP 400 ``AccessDeniedException``, "... is not authorized to perform: dynamodb:X on
resource: ARN ..."), so botocore raises exactly what the functions see on AWS.

DynamoDB applies each write to an item atomically: a conditional write is checked against the
item as the previous write left it, so of a cancel (condition ``status = active``) and a
stream's end (``status = active AND no cancel``) racing on one record exactly one wins. moto's
threaded server checks and applies them without a lock (in 300 such races both writes won
twice), so here its backend serves one request at a time (``Serialized``); the handler threads
still read and write their sockets in parallel.

The tests' DynamoDB faults (throttling, errors, latency, a hang) are injected here, in front of
moto, where every function's own client meets them (``dynamodb_faults.py``).

    python scripts/devstack/dynamodb.py --port 8010 --credentials-out .dev/admin.json

prints one JSON line on stdout when it is ready (``{"endpoint", "region", "admin": {"access_key_id",
"secret_access_key"}}``; with ``--credentials-out`` the admin key goes only to that file), and
serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script: scripts.devstack.* from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SETUP_REQUESTS = 3  # CreateUser, PutUserPolicy, CreateAccessKey of the admin user
ADMIN_USER = "admin"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ACCESS_DENIED = "com.amazon.coral.service#AccessDeniedException"


def table_resources(operation: str, params: dict[str, Any], region: str, account: str) -> list[str]:
    """The ARNs DynamoDB authorizes ``operation`` against (``*`` for account-level calls)."""
    arn = f"arn:aws:dynamodb:{region}:{account}:table/"
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [arn + name for name in params.get("RequestItems", {})]
    if operation in ("TransactGetItems", "TransactWriteItems"):
        names = [next(iter(item.values())).get("TableName", "") for item in params.get("TransactItems", [])]
        return [arn + name for name in dict.fromkeys(names)]
    name = params.get("TableName")
    if not name:
        return ["*"]
    index = params.get("IndexName")
    return [arn + name + (f"/index/{index}" if index else "")]


def enforce_table_resources() -> None:
    """Make moto's DynamoDB authorize each table a call touches, answering as DynamoDB does."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.access_control import IAMRequest

    def authorize(self: Any, resource: str = "*") -> None:
        operation = self._get_action()
        for arn in table_resources(operation, getattr(self, "params", None) or {}, self.region, self.current_account):
            try:
                ActionAuthenticatorMixin._authenticate_and_authorize_action(self, IAMRequest, arn)
            except AccessDeniedError as exc:
                said = re.search(r"<Message>(.*?)</Message>", str(exc.description or ""))
                who = said.group(1) if said else f"not authorized to perform: dynamodb:{operation}"
                raise JsonRESTError(
                    ACCESS_DENIED,
                    f"{who} on resource: {arn} because no identity-based policy allows the dynamodb:{operation} action",
                ) from None

    DynamoHandler._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]


def create_admin(endpoint: str, region: str) -> dict[str, str]:
    """The admin user and its key: the first requests, which moto serves unauthenticated."""
    import boto3

    iam = boto3.client(
        "iam", endpoint_url=endpoint, region_name=region, aws_access_key_id="setup", aws_secret_access_key="setup"
    )
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(UserName=ADMIN_USER, PolicyName="administrator", PolicyDocument=json.dumps(ADMIN_POLICY))
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    iam.close()
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def check_enforced(endpoint: str, region: str) -> None:
    """Refuse to run if moto would serve an unknown key: the stack would be kinder than AWS."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client(
        "dynamodb", endpoint_url=endpoint, region_name=region, aws_access_key_id="AKIANOBODY", aws_secret_access_key="x"
    )
    try:
        client.list_tables()
    except ClientError:
        return
    finally:
        client.close()
    raise RuntimeError("moto served a request from an unknown access key: IAM is not enforced")


class Serialized:
    """A WSGI app that runs one request at a time: DynamoDB's per-item write atomicity, and more."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))  # the body too: moto computes it lazily


def serve(host: str, port: int, region: str) -> Generator[dict[str, Any], None, None]:
    """Run moto with IAM enforced until the generator is closed; yields the ready message."""
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(SETUP_REQUESTS)
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from scripts.devstack.dynamodb_faults import Faults

    settings.INITIAL_NO_AUTH_ACTION_COUNT = SETUP_REQUESTS
    ActionAuthenticatorMixin.request_count = 0
    enforce_table_resources()
    app = Faults(Serialized(DomainDispatcherApplication(create_backend_app)))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="dynamodb", daemon=True)
    thread.start()
    bound_host, bound_port = server.socket.getsockname()[:2]
    endpoint = f"http://{bound_host}:{bound_port}"
    try:
        admin = create_admin(endpoint, region)
        check_enforced(endpoint, region)
        yield {"endpoint": endpoint, "region": region, "admin": admin}
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DDB_PORT") or 8010))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")
    parser.add_argument("--credentials-out", help="also write the ready message here (mode 0600)")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request at INFO
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(args.host, args.port, args.region)
    ready = next(server)
    if args.credentials_out:
        fd = os.open(args.credentials_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(ready, f)
        ready = {k: v for k, v in ready.items() if k != "admin"}  # the key stays out of logs
    print(json.dumps(ready), flush=True)
    print(
        f"dynamodb: moto at {ready['endpoint']}, IAM enforced per access key, writes atomic",
        file=sys.stderr,
        flush=True,
    )
    stop.wait()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
