"""Providers: one chat request in, an async stream of chunks out (``base.Provider``).

A new provider is a module here (its SDK's stream -> content chunks, ``ALIVE``, ``Usage``, ``Finish``,
its errors -> ``tokenrelay.errors``) and one branch of ``ProviderRegistry._create``.
SDK-backed providers are imported when created: the ``anthropic`` SDK alone costs about a
second of cold start, so only the providers a deployment configures are ever imported, and
``ProviderRegistry.prepare()`` creates the default one (and the fallback's) at init (Lambda's init
phase, and a SnapStart snapshot, carry them), so that the first request imports and builds nothing.

What ``get`` hands out for an SDK-backed provider is a ``ResilientProvider``
(``resilient.py``): retries, the fallback model and timeouts, the same for every
provider. The SDK clients are built with their own retries off (``max_retries=0``)
so the two never multiply; ``UPSTREAM_MAX_RETRIES`` is the wrapper's.
"""

from __future__ import annotations

from ..settings import Settings
from ._secrets import ApiKeys, parse_secret
from ._traced import TracedProvider, traced
from .base import (
    ALIVE,
    Alive,
    Chunk,
    Finish,
    PartChunk,
    Provider,
    ReasoningChunk,
    TextChunk,
    ToolArgs,
    ToolEnd,
    ToolStart,
)
from .resilient import ResilientProvider, RetryPolicy, UpstreamReport, reporting, track_upstream, with_upstream

__all__ = [
    "ALIVE",
    "Alive",
    "ApiKeys",
    "Chunk",
    "Finish",
    "PartChunk",
    "Provider",
    "ProviderRegistry",
    "ResilientProvider",
    "ReasoningChunk",
    "RetryPolicy",
    "TextChunk",
    "ToolArgs",
    "ToolEnd",
    "ToolStart",
    "TracedProvider",
    "UpstreamReport",
    "parse_secret",
    "reporting",
    "traced",
    "track_upstream",
    "with_upstream",
]


class ProviderRegistry:
    """Creates each provider once per execution environment: the default one (and the fallback's)
    in ``prepare()``, at init; any other on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._providers: dict[str, Provider] = {}  # what get() hands out
        self._inner: dict[str, Provider] = {}  # the providers themselves (traced), for get() and fallbacks
        self._raw: dict[str, Provider] = {}  # the same, untraced
        self._policy = RetryPolicy.from_settings(settings)
        self._keys = ApiKeys(settings)
        self._keys.prefetch()  # keys kept in Secrets Manager: read them now, off the event loop

    def prepare(self) -> None:
        """Create the default provider (what a request naming none gets) and the fallback's now:
        import their SDKs, build their clients and load what the SDKs import at their first call.
        Another configured provider is created by its first request: importing every configured
        SDK would put all of them (``anthropic`` alone: 1.2 CPU-s at 512 MB) on every cold start
        that needs one. Each process's HTTP session is still opened by its first request."""
        import encodings.idna  # noqa: F401  (a host name is IDNA-encoded at the first connection)

        import anyio._backends._asyncio  # noqa: F401  (the SDKs' async library loads its backend at first use)

        names = {self._settings.default_provider}
        if self._settings.fallback_model is not None:
            names.add(self._settings.fallback_model[0])
        for name in sorted(names):
            self.get(name)
            prepare = getattr(self._raw.get(name), "prepare", None)
            if prepare is not None:
                prepare()

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            provider = inner = self._provider(name)
            if name != "echo":  # offline and deterministic: nothing to retry or time out
                fallback = self._settings.fallback_model
                provider = ResilientProvider(inner, self._policy, fallback=fallback, lookup=self._provider)
            self._providers[name] = provider
        return provider

    def _provider(self, name: str) -> Provider:
        provider = self._inner.get(name)
        if provider is None:
            provider = self._raw[name] = self._create(name)
            if self._settings.tracing_enabled:
                provider = traced(provider)
            self._inner[name] = provider
        return provider

    def _create(self, name: str) -> Provider:
        s = self._settings
        if name == "echo":
            from .echo import EchoProvider

            return EchoProvider(delay_s=s.echo_delay_s)
        if name == "openai":
            from .openai import OpenAIProvider

            return OpenAIProvider(
                max_retries=0,
                timeout_s=s.upstream_timeout_s,
                api_key=self._keys.key(name),
                connect_timeout_s=s.upstream_connect_timeout_s,
            )
        if name == "anthropic":
            from .anthropic import AnthropicProvider

            return AnthropicProvider(
                max_retries=0,
                timeout_s=s.upstream_timeout_s,
                api_key=self._keys.key(name),
                connect_timeout_s=s.upstream_connect_timeout_s,
            )
        if name == "bedrock":
            from .bedrock import BedrockProvider

            return BedrockProvider(
                region=s.bedrock_region,
                max_retries=0,
                timeout_s=s.upstream_timeout_s,
                connect_timeout_s=s.upstream_connect_timeout_s,
            )
        raise KeyError(name)

    async def aclose(self) -> None:
        providers = {id(p): p for p in (*self._inner.values(), *self._providers.values())}
        self._providers.clear()
        self._inner.clear()
        self._raw.clear()
        for provider in providers.values():
            await provider.aclose()
