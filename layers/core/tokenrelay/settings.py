"""Deployment settings, read once from the environment at cold start."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import RequestInvalid

DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "echo": ("echo-1",),
    "openai": ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1", "gpt-4o"),
    "anthropic": ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-6"),
    # Bedrock model ids as ConverseStream takes them (an inference profile id, or a foundation model id).
    "bedrock": ("us.anthropic.claude-haiku-4-5-20251001-v1:0", "amazon.nova-lite-v1:0"),
}
KEY_VARS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# In Lambda the keys live in AWS Secrets Manager; these hold the secrets' ARNs (tokenrelay.secrets).
SECRET_VARS = {"openai": "OPENAI_API_KEY_SECRET_ARN", "anthropic": "ANTHROPIC_API_KEY_SECRET_ARN"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
AUTH_MODES = ("api_key", "off")


def parse_allowed_models(spec: str) -> dict[str, tuple[str, ...]]:
    """Parse ``provider:model,model;provider:model`` into a mapping.

    The first model listed for a provider is its default.
    """
    out: dict[str, tuple[str, ...]] = {}
    for part in spec.split(";"):
        part = part.strip()
        if not part:
            continue
        provider, sep, models = part.partition(":")
        names = tuple(m.strip() for m in models.split(",") if m.strip())
        if not sep or not provider.strip() or not names:
            raise ValueError(f"ALLOWED_MODELS: expected 'provider:model[,model...]', got {part!r}")
        out[provider.strip()] = names
    return out


def parse_model_aliases(spec: str) -> dict[str, tuple[str, str]]:
    """Parse ``alias=provider/model,alias=provider/model`` into ``{alias: (provider, model)}``."""
    out: dict[str, tuple[str, str]] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        alias, sep, target = part.partition("=")
        provider, slash, model = target.strip().partition("/")
        if not sep or not alias.strip() or not slash or not provider.strip() or not model.strip():
            raise ValueError(f"MODEL_ALIASES: expected 'alias=provider/model', got {part!r}")
        out[alias.strip()] = (provider.strip(), model.strip())
    return out


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in ("true", "false"):
        raise ValueError(f"{name}: expected true or false, got {env[name]!r}")
    return raw == "true"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _log_level(env: Mapping[str, str]) -> str:
    raw = (env.get("POWERTOOLS_LOG_LEVEL") or env.get("LOG_LEVEL") or "INFO").strip().upper()
    if raw not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def _protection(env: Mapping[str, str]) -> dict[str, Any]:
    """AUTH_MODE and the limits. Unset, AUTH_MODE is ``api_key`` inside Lambda (a deployed
    stack is never open by omission) and ``off`` elsewhere; ``api_key`` needs API_KEYS_TABLE."""
    raw = env.get("AUTH_MODE", "").strip().lower()
    mode = raw or ("api_key" if env.get("AWS_LAMBDA_FUNCTION_NAME") else "off")
    if mode not in AUTH_MODES:
        raise ValueError(f"AUTH_MODE: expected one of {', '.join(AUTH_MODES)}, got {env['AUTH_MODE']!r}")
    keys_table = env.get("API_KEYS_TABLE", "").strip()
    if mode == "api_key" and not keys_table:
        raise ValueError("AUTH_MODE=api_key needs API_KEYS_TABLE (the DynamoDB table of API keys)")
    cache_s = _float(env, "API_KEY_CACHE_S", 10.0, 0.0)
    if cache_s > 30:
        raise ValueError(f"API_KEY_CACHE_S: must be <= 30 (how long a revoked key may still work), got {cache_s}")
    return {
        "auth_mode": mode,
        "api_keys_table": keys_table,
        "rate_limits_table": env.get("RATE_LIMITS_TABLE", "").strip(),
        "api_key_cache_s": cache_s,
        "auth_off_rpm": _int(env, "AUTH_OFF_RPM", 0, 0),
        "auth_off_concurrency": _int(env, "AUTH_OFF_CONCURRENCY", 0, 0),
    }


def parse_fallback_model(
    spec: str, allowed: Mapping[str, tuple[str, ...]], configured: Collection[str]
) -> tuple[str, str] | None:
    """``FALLBACK_MODEL=provider:model`` (empty: none); it must be configured and on the allow-list."""
    spec = spec.strip()
    if not spec:
        return None
    provider, sep, model = (part.strip() for part in spec.partition(":"))
    if not sep or not provider or not model:
        raise ValueError(f"FALLBACK_MODEL: expected 'provider:model', got {spec!r}")
    if provider not in configured:
        raise ValueError(f"FALLBACK_MODEL: provider {provider!r} is not configured (set its API key or key secret)")
    if model not in allowed.get(provider, ()):
        raise ValueError(f"FALLBACK_MODEL: {provider}:{model} is not in ALLOWED_MODELS")
    return provider, model


def _upstream(
    env: Mapping[str, str], allowed: Mapping[str, tuple[str, ...]], configured: Collection[str]
) -> dict[str, Any]:
    """Upstream fault tolerance (docs/faults.md): retries, fallback, timeouts, deadline margin."""
    return {
        "upstream_retry_budget_s": _float(env, "UPSTREAM_RETRY_BUDGET_S", 10.0, 0.0),
        "upstream_backoff_s": _int(env, "UPSTREAM_BACKOFF_MS", 250, 1) / 1000,
        "upstream_connect_timeout_s": _float(env, "UPSTREAM_CONNECT_TIMEOUT_S", 5.0, 0.1),
        "upstream_first_chunk_s": _float(env, "UPSTREAM_FIRST_CHUNK_S", 60.0, 0.1),
        "upstream_stall_s": _float(env, "UPSTREAM_STALL_S", 30.0, 0.1),
        "fallback_model": parse_fallback_model(env.get("FALLBACK_MODEL", ""), allowed, configured),
        "deadline_margin_s": _float(env, "DEADLINE_MARGIN_S", 5.0, 0.0),
    }


def _under_stress(env: Mapping[str, str]) -> dict[str, Any]:
    """Bounds that hold when DynamoDB or a client is slow (docs/faults.md, "Under stress")."""
    return {
        "finish_wait_s": _float(env, "FINISH_WAIT_S", 2.0, 0.0),
        "finish_timeout_s": _float(env, "FINISH_TIMEOUT_S", 30.0, 1.0),
        "stream_buffer_bytes": _int(env, "STREAM_BUFFER_BYTES", 65_536, 1024),
        "sse_write_timeout_s": _float(env, "SSE_WRITE_TIMEOUT_S", 30.0, 1.0),
        "body_read_timeout_s": _float(env, "BODY_READ_TIMEOUT_S", 10.0, 0.1),
    }


@dataclass(frozen=True)
class Settings:
    streams_table: str = "tokenrelay-streams"
    default_provider: str = "echo"
    configured_providers: frozenset[str] = frozenset({"echo"})
    allowed_models: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    max_message_chars: int = 32_000
    max_messages: int = 100
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
        if _bool(env, "BEDROCK_ENABLED", False):  # IAM-authenticated: no key, an explicit switch
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
            max_message_chars=_int(env, "MAX_MESSAGE_CHARS", cls.max_message_chars, 1),
            max_messages=_int(env, "MAX_MESSAGES", cls.max_messages, 1),
            max_tokens_limit=_int(env, "MAX_TOKENS_LIMIT", cls.max_tokens_limit, 1),
            default_max_tokens=_int(env, "DEFAULT_MAX_TOKENS", cls.default_max_tokens, 1),
            cancel_poll_s=_int(env, "CANCEL_POLL_MS", 250, 10) / 1000,
            stream_timeout_s=_float(env, "STREAM_TIMEOUT_S", cls.stream_timeout_s, 1.0),
            stream_ttl_s=_int(env, "STREAM_TTL_S", cls.stream_ttl_s, 60),
            ping_s=_float(env, "SSE_PING_S", cls.ping_s, 1.0),
            echo_delay_s=_int(env, "ECHO_DELAY_MS", 30, 0) / 1000,
            upstream_max_retries=_int(env, "UPSTREAM_MAX_RETRIES", cls.upstream_max_retries, 0),
            upstream_timeout_s=_float(env, "UPSTREAM_TIMEOUT_S", cls.upstream_timeout_s, 1.0),
            model_aliases=aliases,
            bedrock_region=env.get("BEDROCK_REGION") or None,
            # EMF lines on stdout become metrics in Lambda; locally they would only be noise.
            # X-Ray subsegments around provider calls: in Lambda, unless Powertools' switch turns them off.
            tracing_enabled=bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
            and not _bool(env, "POWERTOOLS_TRACE_DISABLED", False),
            metrics_enabled=_bool(env, "METRICS_ENABLED", bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))),
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or cls.metrics_namespace,
            service_name=env.get("POWERTOOLS_SERVICE_NAME") or cls.service_name,
            version=env.get("TOKENRELAY_VERSION", cls.version),
            api_key_secrets=secrets,
            secrets_max_age_s=_int(env, "SECRETS_MAX_AGE_S", cls.secrets_max_age_s, 0),
            log_level=_log_level(env),
            log_json=_bool(env, "LOG_JSON", bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))),
            output_log_table=env.get("OUTPUT_LOG_TABLE", "").strip(),
            resume_grace_s=_float(env, "RESUME_GRACE_S", cls.resume_grace_s, 0.0),
            log_flush_s=_int(env, "OUTPUT_LOG_FLUSH_MS", 250, 10) / 1000,
            log_flush_bytes=_int(env, "OUTPUT_LOG_FLUSH_BYTES", cls.log_flush_bytes, 256),
            resume_poll_s=_int(env, "RESUME_POLL_MS", 200, 20) / 1000,
            **_upstream(env, allowed, configured),
            **_under_stress(env),
            **_protection(env),
        )

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
