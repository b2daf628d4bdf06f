"""The HTTP app (``functions/http/app.py``) with DynamoDB faults from ``TOKENRELAY_DDB_CHAOS``.

Served by uvicorn in its own process (``tests.stress.chaos_app:app``): the faults are
installed on boto3's default session before the app creates its clients, so every store
of the app (streams, output log, leases) goes through them (``tests/fakes/dynamo_chaos.py``).
"""

from tests.fakes.dynamo_chaos import install_from_env

chaos = install_from_env()

from app import app  # noqa: E402

__all__ = ["app", "chaos"]
