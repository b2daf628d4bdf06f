"""Shared fixtures: the fake OpenAI/Anthropic upstream (``tests/fakes/upstream.py``).

Tests marked ``heavy`` (tests/fuzz, tests/load, tests/stress: minutes of CPU) run only with
``TOKENRELAY_HEAVY=1`` in the environment, which ``.ci/run`` sets; otherwise
they are skipped, so a focused ``pytest tests/...`` stays quick.
"""

import os

import pytest

from tests.fakes.upstream import upstream, upstream_server

__all__ = ["upstream", "upstream_server"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("TOKENRELAY_HEAVY") == "1":
        return
    skip = pytest.mark.skip(reason="heavy suite: set TOKENRELAY_HEAVY=1 to run it")
    for item in items:
        if item.get_closest_marker("heavy") is not None:
            item.add_marker(skip)
