"""Key rejection timing: does a refusal tell whether a key id exists? (docs/security.md)

    .venv/bin/python scripts/benchmarks/key_timing.py [--requests 300] [--root PATH]

Runs moto's DynamoDB server and the HTTP app (``AUTH_MODE=api_key``, its real key store and
cache) under uvicorn in its own process, creates one API key, then sends interleaved
requests, one at a time, to ``POST /chat/stream-simple``:

- ``valid``: the right token (the baseline: a key found in the cache, a stream started);
- ``known id, wrong secret``: the key's id with another secret (refused, 401);
- ``unknown id``: an id that does not exist (refused, 401).

It prints p50 / p90 of each and the ratio of the two refusals' p50: about 1 when refusing
does the same work either way; before issue 14 the known id answered from the cache about
8x faster. ``--root`` runs the app of another checkout (e.g. an older commit's tree) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "layers" / "core", ROOT / "functions" / "http"):
    sys.path.insert(0, str(path))

import boto3  # noqa: E402
import httpx  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from scripts.devstack.tables import create_table, table_spec  # noqa: E402
from tests.fakes.stacks import app_process  # noqa: E402
from tokenrelay.protection import new_key  # noqa: E402
from tokenrelay.stores.dynamodb import DynamoApiKeyStore  # noqa: E402

KEYS_TABLE = "tokenrelay-api-keys-bench"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def measure(url: str, tokens: dict[str, str], requests: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in tokens}
    with httpx.Client(base_url=url, timeout=30) as client:
        for token in tokens.values():  # warm every path once (connection, imports, cache)
            client.post("/chat/stream-simple", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"})
        for _ in range(requests):
            for name, token in tokens.items():
                started = time.perf_counter()
                response = client.post(
                    "/chat/stream-simple", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
                )
                times[name].append((time.perf_counter() - started) * 1000)
                expected = 200 if name == "valid" else 401
                assert response.status_code == expected, (name, response.status_code, response.text)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="of each kind, interleaved")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app runs (default: this one)")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
    }
    os.environ.update(env)
    ddb = boto3.client("dynamodb")
    create_table(ddb, table_spec("ApiKeysTable"), KEYS_TABLE)
    create_table(ddb, table_spec("StreamsTable"), "tokenrelay-streams")
    token, key = new_key("bench", rpm=0, concurrency=0)
    asyncio.run(DynamoApiKeyStore(KEYS_TABLE, client=ddb).put(key))
    wrong = f"trk_{key.key_id}_{secrets.token_urlsafe(32)}"
    unknown = f"trk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    app_env = {
        **env,
        "AUTH_MODE": "api_key",
        "API_KEYS_TABLE": KEYS_TABLE,
        "DEFAULT_PROVIDER": "echo",
        "ECHO_DELAY_MS": "0",
        "LOG_LEVEL": "ERROR",
        "METRICS_ENABLED": "false",
    }
    try:
        with tempfile.TemporaryDirectory() as tmp, app_process(app_env, Path(tmp) / "app.log", root=args.root) as url:
            times = measure(
                url, {"valid": token, "known id, wrong secret": wrong, "unknown id": unknown}, args.requests
            )
    finally:
        ddb.close()
        moto.stop()
    print(f"app: {args.root}; {args.requests} requests of each kind, interleaved, one at a time")
    for name, values in times.items():
        print(f"{name:24} p50 {statistics.median(values):6.2f} ms   p90 {pct(values, 0.9):6.2f} ms")
    ratio = statistics.median(times["known id, wrong secret"]) / statistics.median(times["unknown id"])
    print(f"refusal p50, known id / unknown id: {ratio:.2f} (1.00: the refusal does not tell which ids exist)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
