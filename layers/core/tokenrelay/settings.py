"""Deployment settings, read once from the environment at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

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
    upstream_max_retries: int = 2
    upstream_timeout_s: float = 60.0
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

    @property
    def resume_enabled(self) -> bool:
        return bool(self.output_log_table) and self.resume_grace_s > 0

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
