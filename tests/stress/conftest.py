"""The stress suite (``TOKENRELAY_HEAVY=1``; a full ``scripts/test`` runs it): its stack is in
``stack.py``, one for the package, its environments warm from test to test. Seeds are printed;
``TOKENRELAY_STRESS_SEED=<n>`` replays a run's choices."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack, local_aws
from tests.fakes.upstream import FakeUpstream
from tests.stress.stack import STRESS_LAMBDAS, cpu_hogs, stack_env


@pytest.fixture(scope="package")
def aws() -> Iterator[LocalAws]:
    with local_aws() as local:
        yield local


@pytest.fixture(scope="package")
def stress_stack(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[FunctionStack]:
    """The stack as scripts/dev runs it, with its Function URL (the WebSocket API: ``serve_gateway``)."""
    with function_stack(aws, stack_env(upstream_server), name="stress", lambdas=STRESS_LAMBDAS) as stack:
        yield stack
        stack.assert_no_access_denied()


@pytest.fixture(scope="package")
def hogs() -> Iterator[list[int]]:
    """CPU load for every stress test: as many spinning processes as the machine has cores (2 here)."""
    with cpu_hogs() as pids:
        yield pids


@pytest.fixture
def rng() -> random.Random:
    seed = int(os.environ.get("TOKENRELAY_STRESS_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"stress seed: {seed} (TOKENRELAY_STRESS_SEED={seed} replays it)")
    return random.Random(seed)
