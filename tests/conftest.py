"""Shared fixtures: the fake OpenAI/Anthropic upstream (``tests/fakes/upstream.py``)."""

from tests.fakes.upstream import upstream, upstream_server

__all__ = ["upstream", "upstream_server"]
