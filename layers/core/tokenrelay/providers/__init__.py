"""Provider registry. SDK-backed providers are imported lazily: the
``anthropic`` SDK alone costs about a second of cold start."""

from __future__ import annotations

from ..secrets import ApiKeys
from ..settings import Settings
from .base import Chunk, Finish, Provider, TextChunk

__all__ = ["Chunk", "Finish", "Provider", "ProviderRegistry", "TextChunk"]


class ProviderRegistry:
    """Creates each provider once per execution environment, on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._providers: dict[str, Provider] = {}
        self._keys = ApiKeys(settings)
        self._keys.prefetch()  # keys kept in Secrets Manager: read them now, off the event loop

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            provider = self._create(name)
            if self._settings.tracing_enabled:
                from ..telemetry.tracing import traced

                provider = traced(provider)
            self._providers[name] = provider
        return provider

    def _create(self, name: str) -> Provider:
        s = self._settings
        if name == "echo":
            from .echo import EchoProvider

            return EchoProvider(delay_s=s.echo_delay_s)
        if name == "openai":
            from .openai import OpenAIProvider

            return OpenAIProvider(
                max_retries=s.upstream_max_retries, timeout_s=s.upstream_timeout_s, api_key=self._keys.key(name)
            )
        if name == "anthropic":
            from .anthropic import AnthropicProvider

            return AnthropicProvider(
                max_retries=s.upstream_max_retries, timeout_s=s.upstream_timeout_s, api_key=self._keys.key(name)
            )
        if name == "bedrock":
            from .bedrock import BedrockProvider

            return BedrockProvider(
                region=s.bedrock_region, max_retries=s.upstream_max_retries, timeout_s=s.upstream_timeout_s
            )
        raise KeyError(name)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
