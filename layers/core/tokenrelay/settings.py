"""Deployment settings, read once from the environment at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ._env import (
    env_bool,
    env_float,
    env_int,
    log_level,
    parse_allowed_models,
    parse_model_aliases,
    protection,
    under_stress,
    upstream,
)
from .catalog import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PRICES,
    Capabilities,
    Price,
    capabilities_from_env,
    prices_from_env,
    provider_default,
)
from .errors import RequestInvalid

__all__ = ["DEFAULT_MODELS", "KEY_VARS", "SECRET_VARS", "Settings", "parse_allowed_models", "parse_model_aliases"]

DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "echo": ("echo-1",),
    "openai": ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1", "gpt-4o", "o4-mini"),
    "anthropic": ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"),
    # Bedrock model ids as ConverseStream takes them (an inference profile id, or a foundation model id).
    "bedrock": ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "amazon.nova-lite-v1:0"),
}
KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# In Lambda the keys live in AWS Secrets Manager; these hold the secrets' ARNs (tokenrelay.secrets).
SECRET_VARS = {"openai": "OPENAI_API_KEY_SECRET_ARN", "anthropic": "ANTHROPIC_API_KEY_SECRET_ARN"}


@dataclass(frozen=True)
class Settings:
    streams_table: str = "tokenrelay-streams"
    default_provider: str = "echo"
    configured_providers: frozenset[str] = frozenset({"echo"})
    allowed_models: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    max_message_chars: int = 32_000
    max_messages: int = 100
    max_image_bytes: int = 3_750_000  # per image, decoded (Bedrock's limit); 0: images refused
    max_images: int = 20  # per request (Bedrock's limit)
    max_tokens_limit: int = 4_096
    default_max_tokens: int = 1_024
    cancel_poll_s: float = 0.25
    stream_timeout_s: float = 840.0
    stream_ttl_s: int = 86_400
    ping_s: float = 15.0
    echo_delay_s: float = 0.03
    upstream_max_retries: int = 2  # TokenRelay's own, before the first text (providers/resilient.py)
    upstream_timeout_s: float = 60.0  # the SDKs' read timeout: a backstop behind the stall timeout
    upstream_retry_budget_s: float = 10.0
    upstream_backoff_s: float = 0.25
    upstream_connect_timeout_s: float = 5.0
    upstream_first_chunk_s: float = 60.0
    upstream_stall_s: float = 30.0
    fallback_model: tuple[str, str] | None = None  # (provider, model), tried once retries are spent
    deadline_margin_s: float = 5.0  # SSE: end this long before the Lambda invocation's deadline
    finish_wait_s: float = 2.0  # the terminal event waits at most this for the terminal state write
    finish_timeout_s: float = 30.0  # then the state and output log writes are retried this long at most
    stream_buffer_bytes: int = 65_536  # text a run queues for a slow reader before it pauses the upstream
    sse_write_timeout_s: float = 30.0  # an SSE client that takes no bytes for this long is gone
    body_read_timeout_s: float = 10.0  # the whole request body must arrive within this (408)
    model_aliases: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # What each model can do (catalog.capabilities): the shipped table with the deployment's overrides.
    model_capabilities: Mapping[tuple[str, str], Capabilities] = field(
        default_factory=lambda: dict(DEFAULT_CAPABILITIES)
    )
    # What each model's tokens cost (catalog.prices): the shipped table with the deployment's overrides.
    model_prices: Mapping[tuple[str, str], Price] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    bedrock_region: str | None = None
    metrics_enabled: bool = False
    tracing_enabled: bool = False
    metrics_namespace: str = "TokenRelay"
    service_name: str = "tokenrelay"
    version: str = "0.1.0"
    api_key_secrets: Mapping[str, str] = field(default_factory=dict)  # provider -> Secrets Manager ARN
    secrets_max_age_s: int = 300
    log_level: str = "INFO"
    log_json: bool = False
    # Resume (PROTOCOL section 5): on only with an output log table and a grace period > 0.
    output_log_table: str = ""
    resume_grace_s: float = 30.0
    log_flush_s: float = 0.25
    log_flush_bytes: int = 4096
    resume_poll_s: float = 0.2
    # Protection (docs/security.md): API keys, per-key limits (with auth off, per client if set).
    auth_mode: str = "off"
    api_keys_table: str = ""
    rate_limits_table: str = ""
    api_key_cache_s: float = 10.0
    auth_off_rpm: int = 0
    auth_off_concurrency: int = 0

    @property
    def resume_enabled(self) -> bool:
        return bool(self.output_log_table) and self.resume_grace_s > 0

    @property
    def auth_enabled(self) -> bool:
        return self.auth_mode == "api_key"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secrets = {p: env[var].strip() for p, var in SECRET_VARS.items() if env.get(var, "").strip()}
        configured = {"echo"} | {p for p, var in KEY_VARS.items() if env.get(var)} | set(secrets)
        if env_bool(env, "BEDROCK_ENABLED", False):  # IAM-authenticated: no key, an explicit switch
            configured.add("bedrock")
        allowed = dict(DEFAULT_MODELS)
        if env.get("ALLOWED_MODELS"):
            allowed = parse_allowed_models(env["ALLOWED_MODELS"])
        aliases = parse_model_aliases(env.get("MODEL_ALIASES", ""))
        for alias, (provider, model) in aliases.items():
            if model not in allowed.get(provider, ()):
                raise ValueError(f"MODEL_ALIASES: {alias!r} points at {provider}/{model}, which is not allowed")
        default = env.get("DEFAULT_PROVIDER") or next(
            (p for p in ("openai", "anthropic", "bedrock") if p in configured), "echo"
        )
        if default not in configured:
            raise ValueError(f"DEFAULT_PROVIDER: {default!r} is not configured (set its API key or key secret)")
        if default not in allowed:
            raise ValueError(f"DEFAULT_PROVIDER: {default!r} has no models in ALLOWED_MODELS")
        return cls(
            streams_table=env.get("STREAMS_TABLE", cls.streams_table),
            default_provider=default,
            configured_providers=frozenset(configured),
            allowed_models=allowed,
            max_message_chars=env_int(env, "MAX_MESSAGE_CHARS", cls.max_message_chars, 1),
            max_messages=env_int(env, "MAX_MESSAGES", cls.max_messages, 1),
            max_image_bytes=env_int(env, "MAX_IMAGE_BYTES", cls.max_image_bytes, 0),
            max_images=env_int(env, "MAX_IMAGES", cls.max_images, 0),
            max_tokens_limit=env_int(env, "MAX_TOKENS_LIMIT", cls.max_tokens_limit, 1),
            default_max_tokens=env_int(env, "DEFAULT_MAX_TOKENS", cls.default_max_tokens, 1),
            cancel_poll_s=env_int(env, "CANCEL_POLL_MS", 250, 10) / 1000,
            stream_timeout_s=env_float(env, "STREAM_TIMEOUT_S", cls.stream_timeout_s, 1.0),
            stream_ttl_s=env_int(env, "STREAM_TTL_S", cls.stream_ttl_s, 60),
            ping_s=env_float(env, "SSE_PING_S", cls.ping_s, 1.0),
            echo_delay_s=env_int(env, "ECHO_DELAY_MS", 30, 0) / 1000,
            upstream_max_retries=env_int(env, "UPSTREAM_MAX_RETRIES", cls.upstream_max_retries, 0),
            upstream_timeout_s=env_float(env, "UPSTREAM_TIMEOUT_S", cls.upstream_timeout_s, 1.0),
            model_aliases=aliases,
            model_capabilities=capabilities_from_env(env),
            model_prices=prices_from_env(env),
            bedrock_region=env.get("BEDROCK_REGION") or None,
            # EMF lines on stdout become metrics in Lambda; locally they would only be noise.
            # X-Ray subsegments around provider calls: in Lambda, unless Powertools' switch turns them off.
            tracing_enabled=bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
            and not env_bool(env, "POWERTOOLS_TRACE_DISABLED", False),
            metrics_enabled=env_bool(env, "METRICS_ENABLED", bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))),
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or cls.metrics_namespace,
            service_name=env.get("POWERTOOLS_SERVICE_NAME") or cls.service_name,
            version=env.get("TOKENRELAY_VERSION", cls.version),
            api_key_secrets=secrets,
            secrets_max_age_s=env_int(env, "SECRETS_MAX_AGE_S", cls.secrets_max_age_s, 0),
            log_level=log_level(env),
            log_json=env_bool(env, "LOG_JSON", bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))),
            output_log_table=env.get("OUTPUT_LOG_TABLE", "").strip(),
            resume_grace_s=env_float(env, "RESUME_GRACE_S", cls.resume_grace_s, 0.0),
            # 1 s: a quarter of the writes of 250 ms, what keeps the SSE bill under $0.05 per 1k
            # streams (docs/cost.md); a resumed reader following a live stream lags up to 1.2 s.
            log_flush_s=env_int(env, "OUTPUT_LOG_FLUSH_MS", 1000, 10) / 1000,
            log_flush_bytes=env_int(env, "OUTPUT_LOG_FLUSH_BYTES", cls.log_flush_bytes, 256),
            resume_poll_s=env_int(env, "RESUME_POLL_MS", 200, 20) / 1000,
            **upstream(env, allowed, configured),
            **under_stress(env),
            **protection(env),
        )

    def capabilities(self, provider: str, model: str) -> Capabilities:
        """What ``provider``/``model`` can do: its table entry, else its provider's default."""
        return self.model_capabilities.get((provider, model)) or provider_default(provider, model)

    def price(self, provider: str, model: str) -> Price | None:
        """What ``provider``/``model``'s tokens cost; None: not in the price table."""
        return self.model_prices.get((provider, model))

    def resolve_model(self, provider: str, model: str | None) -> str:
        """Check ``provider``/``model`` against this deployment; return the model to use."""
        if provider not in self.allowed_models and provider not in self.configured_providers:
            known = ", ".join(sorted(self.configured_providers & set(self.allowed_models)))
            raise RequestInvalid("provider", f"unknown provider {provider!r}; available: {known}")
        if provider not in self.configured_providers:
            raise RequestInvalid("provider", f"provider {provider!r} is not configured on this deployment")
        models = self.allowed_models.get(provider, ())
        if not models:
            raise RequestInvalid("provider", f"provider {provider!r} has no allowed models on this deployment")
        if model is None:
            return models[0]
        if model not in models:
            raise RequestInvalid(
                "model", f"model {model!r} is not allowed for provider {provider!r}; allowed: {', '.join(models)}"
            )
        return model
