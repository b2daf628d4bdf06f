"""Reading settings from the environment: each variable parsed and checked, with a message
that names it (``settings.Settings.from_env``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "AUTH_MODES",
    "LOG_LEVELS",
    "env_bool",
    "env_float",
    "env_int",
    "log_level",
    "parse_allowed_models",
    "parse_fallback_model",
    "parse_model_aliases",
    "protection",
    "under_stress",
    "upstream",
]

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


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in ("true", "false"):
        raise ValueError(f"{name}: expected true or false, got {env[name]!r}")
    return raw == "true"


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
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


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
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


def log_level(env: Mapping[str, str]) -> str:
    raw = (env.get("POWERTOOLS_LOG_LEVEL") or env.get("LOG_LEVEL") or "INFO").strip().upper()
    if raw not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return raw


def protection(env: Mapping[str, str]) -> dict[str, Any]:
    """AUTH_MODE and the limits. Unset, AUTH_MODE is ``api_key`` inside Lambda (a deployed
    stack is never open by omission) and ``off`` elsewhere; ``api_key`` needs API_KEYS_TABLE."""
    raw = env.get("AUTH_MODE", "").strip().lower()
    mode = raw or ("api_key" if env.get("AWS_LAMBDA_FUNCTION_NAME") else "off")
    if mode not in AUTH_MODES:
        raise ValueError(f"AUTH_MODE: expected one of {', '.join(AUTH_MODES)}, got {env['AUTH_MODE']!r}")
    keys_table = env.get("API_KEYS_TABLE", "").strip()
    if mode == "api_key" and not keys_table:
        raise ValueError("AUTH_MODE=api_key needs API_KEYS_TABLE (the DynamoDB table of API keys)")
    cache_s = env_float(env, "API_KEY_CACHE_S", 10.0, 0.0)
    if cache_s > 30:
        raise ValueError(f"API_KEY_CACHE_S: must be <= 30 (how long a revoked key may still work), got {cache_s}")
    return {
        "auth_mode": mode,
        "api_keys_table": keys_table,
        "rate_limits_table": env.get("RATE_LIMITS_TABLE", "").strip(),
        "api_key_cache_s": cache_s,
        "auth_off_rpm": env_int(env, "AUTH_OFF_RPM", 0, 0),
        "auth_off_concurrency": env_int(env, "AUTH_OFF_CONCURRENCY", 0, 0),
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


def upstream(
    env: Mapping[str, str], allowed: Mapping[str, tuple[str, ...]], configured: Collection[str]
) -> dict[str, Any]:
    """Upstream fault tolerance (docs/faults.md): retries, fallback, timeouts, deadline margin."""
    return {
        "upstream_retry_budget_s": env_float(env, "UPSTREAM_RETRY_BUDGET_S", 10.0, 0.0),
        "upstream_backoff_s": env_int(env, "UPSTREAM_BACKOFF_MS", 250, 1) / 1000,
        "upstream_connect_timeout_s": env_float(env, "UPSTREAM_CONNECT_TIMEOUT_S", 5.0, 0.1),
        "upstream_first_chunk_s": env_float(env, "UPSTREAM_FIRST_CHUNK_S", 60.0, 0.1),
        "upstream_stall_s": env_float(env, "UPSTREAM_STALL_S", 30.0, 0.1),
        "fallback_model": parse_fallback_model(env.get("FALLBACK_MODEL", ""), allowed, configured),
        "deadline_margin_s": env_float(env, "DEADLINE_MARGIN_S", 5.0, 0.0),
    }


def under_stress(env: Mapping[str, str]) -> dict[str, Any]:
    """Bounds that hold when DynamoDB or a client is slow (docs/faults.md, "Under stress")."""
    return {
        "finish_wait_s": env_float(env, "FINISH_WAIT_S", 2.0, 0.0),
        "finish_timeout_s": env_float(env, "FINISH_TIMEOUT_S", 30.0, 1.0),
        "stream_buffer_bytes": env_int(env, "STREAM_BUFFER_BYTES", 65_536, 1024),
        "sse_write_timeout_s": env_float(env, "SSE_WRITE_TIMEOUT_S", 30.0, 1.0),
        "body_read_timeout_s": env_float(env, "BODY_READ_TIMEOUT_S", 10.0, 0.1),
    }
