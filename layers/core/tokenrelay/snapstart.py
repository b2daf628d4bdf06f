"""What a SnapStart restore must refresh, for each function's restore hook.

Lambda SnapStart (``template.yaml``: the StreamFunction's published version, behind its ``live``
alias) runs init once, snapshots the environment, and restores every new environment from it.
Whatever init made is then shared by every restored environment:

- **pooled connections**: the DynamoDB clients' (the readiness check's GetItem opened one) are
  dead after a restore, though their sockets look open: ``after_restore`` closes them, and each
  client reconnects at its next call. The providers' HTTP sessions are opened by the first
  request, after the restore, so the snapshot holds none.
- **random state**: ``random``'s module-level generator (retry jitter, backoff) is reseeded from
  ``os.urandom``; the rate limiter draws from ``random.SystemRandom``; stream ids come from
  ``secrets`` and ``uuid4`` (``os.urandom``), which a restore does not repeat.
- **credentials**: with SnapStart, Lambda hands the functions container credentials
  (``AWS_CONTAINER_CREDENTIALS_FULL_URI``), which boto3 refreshes by itself
  (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-activate.html#snapstart-credentials).

The HTTP function runs behind the Lambda Web Adapter, a separate process: the adapter (1.1.0+)
calls ``POST /_lwa/after-restore`` (``AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH``) after a restore and
before any traffic, and refuses outside requests to that path.
"""

from __future__ import annotations

import logging
import random

__all__ = ["after_restore"]

log = logging.getLogger("tokenrelay")


def after_restore() -> None:
    """Refresh what a restored environment must not share with the others (see module docstring)."""
    from .stores.dynamodb import close_connections

    random.seed()  # from os.urandom
    closed = close_connections()
    log.info("restored from a SnapStart snapshot: random reseeded, %d DynamoDB clients' connections closed", closed)
