"""The stress suite (``TOKENRELAY_HEAVY=1``; a full ``scripts/test`` runs it): its stack is in
``stack.py``. Seeds are printed; ``TOKENRELAY_STRESS_SEED=<n>`` replays a run's choices;
``TOKENRELAY_STRESS_APP_ROOT=<checkout>`` runs another tree's app (to see what it loses)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stress.stack import cpu_hogs, dynamodb


@pytest.fixture(scope="package")
def stress_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stress")


@pytest.fixture(scope="package")
def endpoint(stress_dir: Path) -> Iterator[str]:
    with dynamodb(stress_dir) as url:
        yield url


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
