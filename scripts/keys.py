"""Create, list and revoke TokenRelay API keys (docs/security.md).

    scripts/keys create --name NAME [--rpm 60] [--concurrency 5] [--tpm 0] [--daily-usd 0]
                        [--models openai:gpt-4o-mini anthropic:*]
    scripts/keys list [--json]
    scripts/keys revoke KEY_ID

``create`` prints the token (``trk_<key_id>_<secret>``) once, alone on stdout, so
``TOKEN=$(scripts/keys create --name me)`` works; only its SHA-256 is stored. ``list``
never prints a secret or a hash. ``revoke`` takes effect on every instance within
``API_KEY_CACHE_S`` (10 s by default; at most 30).

Where: ``--table``, else ``API_KEYS_TABLE``, else (with ``--local``) ``tokenrelay-api-keys``.
``--local`` is the DynamoDB of ``scripts/dev`` (moto on ``127.0.0.1:$DDB_PORT``, its fake
credentials); otherwise boto3's own configuration applies: your AWS credentials and
region, or ``AWS_ENDPOINT_URL_DYNAMODB``. On AWS the table is the stack output
``ApiKeysTableName``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from tokenrelay.protection import model_pattern_ok, new_key
from tokenrelay.stores import ApiKey
from tokenrelay.stores.dynamodb import DynamoApiKeyStore

LOCAL_TABLE = "tokenrelay-api-keys"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/keys", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", help="the API keys table (default: $API_KEYS_TABLE)")
    parser.add_argument("--local", action="store_true", help="the DynamoDB of scripts/dev (moto on $DDB_PORT)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print its token once")
    create.add_argument("--name", required=True, help="who or what the key is for (shown by list)")
    create.add_argument("--rpm", type=int, default=60, help="requests per minute, 0 = no limit (default: 60)")
    create.add_argument("--concurrency", type=int, default=5, help="streams at once, 0 = no limit (default: 5)")
    create.add_argument("--tpm", type=int, default=0, help="tokens per minute, 0 = no budget (default: 0)")
    create.add_argument(
        "--daily-usd", type=float, default=0.0, help="dollars per UTC day (price table), 0 = no budget (default: 0)"
    )
    create.add_argument(
        "--models", nargs="+", metavar="PROVIDER:MODEL", help="allowed models, e.g. openai:gpt-4o-mini anthropic:*"
    )
    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = commands.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id")
    return parser


def _local_env() -> None:
    """The DynamoDB of scripts/dev, as its admin: moto enforces IAM, and only the admin key it
    made at start (in .dev/admin.json) may write API keys, as only an operator may on AWS."""
    port = os.environ.get("DDB_PORT") or "8010"
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{port}"
    default = Path(__file__).resolve().parents[1] / ".dev" / "admin.json"
    admin_file = Path(os.environ.get("TOKENRELAY_ADMIN_FILE") or default)
    try:
        admin = json.loads(admin_file.read_text())["admin"]
    except (OSError, ValueError, KeyError):
        raise SystemExit(f"keys: no local admin key in {admin_file}: start scripts/dev first") from None
    os.environ["AWS_ACCESS_KEY_ID"] = admin["access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = admin["secret_access_key"]
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


def _row(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "rpm": key.rpm,
        "concurrency": key.concurrency,
        "tpm": key.tpm,
        "daily_usd": key.daily_usd,
        "models": list(key.models) if key.models else None,
        "created_at": _when(key.created_at),
        "revoked_at": _when(key.revoked_at) if key.revoked_at is not None else None,
    }


def _models(args: argparse.Namespace) -> list[str]:
    return [m.strip() for spec in args.models or () for m in spec.split(",") if m.strip()]


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


async def _run(args: argparse.Namespace, store: DynamoApiKeyStore, out: TextIO, err: TextIO) -> int:
    if args.command == "create":
        models = _models(args)
        token, key = new_key(
            args.name,
            rpm=args.rpm,
            concurrency=args.concurrency,
            models=models or None,
            tpm=args.tpm,
            daily_usd=args.daily_usd,
        )
        await store.put(key)
        print(f"keys: created {key.key_id} ({key.name}); the token is shown once, here:", file=err)
        print(token, file=out)
        return 0
    if args.command == "list":
        keys = await store.list_keys()
        if args.json:
            for key in keys:
                print(json.dumps(_row(key)), file=out)
            return 0
        print(f"{'KEY_ID':<18}{'STATUS':<9}{'RPM':>5}{'CONC':>6}  {'CREATED':<21}NAME / MODELS", file=out)
        for key in keys:
            status = "revoked" if key.revoked else "active"
            allowed = f" [{', '.join(key.models)}]" if key.models else ""
            line = f"{key.key_id:<18}{status:<9}{key.rpm:>5}{key.concurrency:>6}  {_when(key.created_at):<21}"
            print(f"{line}{key.name}{allowed}", file=out)
        return 0
    revoked = await store.revoke(args.key_id)
    if revoked is None:
        print(f"keys: no key {args.key_id!r}", file=err)
        return 1
    print(f"keys: {revoked.key_id} ({revoked.name}) revoked at {_when(revoked.revoked_at or 0)}", file=out)
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "create":
        if args.rpm < 0 or args.concurrency < 0 or args.tpm < 0 or not args.daily_usd >= 0:
            parser.error("--rpm, --concurrency, --tpm and --daily-usd must be >= 0 (0 = no limit)")
        bad = [m for m in _models(args) if not model_pattern_ok(m)]
        if bad:
            parser.error(f"--models: expected provider:model or provider:*, got {bad[0]!r}")
    if args.local:
        _local_env()
    table = args.table or os.environ.get("API_KEYS_TABLE") or (LOCAL_TABLE if args.local else None)
    if not table:
        parser.error("which table? --table NAME, API_KEYS_TABLE, or --local (the stack output ApiKeysTableName)")
    from tokenrelay.errors import StoreUnavailable

    store = DynamoApiKeyStore(table)
    try:
        return asyncio.run(_run(args, store, out, err))
    except StoreUnavailable as exc:
        print(f"keys: {exc}", file=err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
