"""The stack's DynamoDB (moto's server, IAM enforced) in a child process, for code that starts its
own: the tests (``tests/fakes/local_stack.py``) and the benchmarks (``scripts/benchmarks``).

``server`` is a script that prints one JSON line once it listens (``dynamodb.py`` does:
``{"endpoint", "region", "admin"}``) and then nothing more.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DYNAMODB = Path(__file__).resolve().parent / "dynamodb.py"


@dataclass(frozen=True)
class LocalAws:
    endpoint: str
    region: str
    admin: dict[str, str]

    def env(self) -> dict[str, str]:
        """A process's AWS settings with the admin key: set-up and reads, never a function's."""
        return {
            "AWS_ENDPOINT_URL_DYNAMODB": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.admin["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.admin["secret_access_key"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@contextmanager
def local_aws(server: Path = DYNAMODB, env: Mapping[str, str] | None = None) -> Iterator[LocalAws]:
    """Run ``server`` on a free port until the block exits (moto's settings are per process)."""
    proc = subprocess.Popen(
        [sys.executable, str(server), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=None if env is None else dict(env),
    )
    try:
        assert proc.stdout is not None
        with proc.stdout:  # one line, then nothing more
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{server.name} exited ({proc.wait()})")
        ready = json.loads(line)
        yield LocalAws(ready["endpoint"], ready["region"], ready["admin"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
