"""Set process environment variables for a block, and put every one back after it.

The SDKs, boto3 and the WebSocket functions read their endpoints and settings from
``os.environ`` themselves, so session-scoped stacks set them there, not on a client.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def environ(values: Mapping[str, str], *, remove: Iterable[str] = ()) -> Iterator[None]:
    removed = list(remove)
    saved = {k: os.environ.get(k) for k in [*values, *removed]}
    for key in removed:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
