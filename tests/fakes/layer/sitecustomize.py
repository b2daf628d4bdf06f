"""A test layer for the local stack's execution environments: hooks a test turns on by variable.

The stack puts this directory first on every environment's ``PYTHONPATH`` when the stack's
environment names it (``TOKENRELAY_TEST_LAYER``, ``scripts/devstack/environments.py``), as a
Lambda layer's ``python/`` is on the path: Python imports ``sitecustomize`` at start-up,
before the function's code. ``scripts/dev`` and deployments never have it. Each hook changes
only what a test cannot set from outside, and says so:

- ``TOKENRELAY_TEST_FROZEN_CLOCK=<epoch s>``: the rate limiter's clock (``tokenrelay.protection``)
  reads that instant, so a per-minute window never rolls over during a test and its
  ``Retry-After`` is known. Everything else keeps the real time.
"""

from __future__ import annotations

import os

_frozen = os.environ.get("TOKENRELAY_TEST_FROZEN_CLOCK")
if _frozen:
    from tokenrelay.protection import _limits as limits

    _now = float(_frozen)
    _kwdefaults = limits.RateLimiter.__init__.__kwdefaults__
    assert _kwdefaults is not None, "RateLimiter() takes clock= as a keyword"
    _kwdefaults["clock"] = lambda: _now
