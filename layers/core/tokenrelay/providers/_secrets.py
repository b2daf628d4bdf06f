"""Provider API keys from AWS Secrets Manager, read with Powertools Parameters.

In Lambda no key sits in an environment variable: the template passes the ARN
of each key's secret (``OPENAI_API_KEY_SECRET_ARN``, ``ANTHROPIC_API_KEY_SECRET_ARN``)
and grants ``secretsmanager:GetSecretValue`` on exactly those ARNs. The key is
read here, cached for ``SECRETS_MAX_AGE_S`` (Powertools' ``max_age``), and given
to the SDK client explicitly. Locally, with no ARN set, ``key()`` returns None
and the SDK reads its own ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` as before.

``prefetch()`` reads every configured secret in a background thread at cold
start, so the first stream of a provider does not wait on Secrets Manager and
the event loop never blocks on it (``key()`` then hits the cache).

A secret's value is the key itself, or a JSON object holding it under
``api_key`` (the console's key/value form). Values are never logged and never
put in an error message: failures name the provider and the exception type only.
botocore logs whole response bodies at DEBUG (``botocore.parsers``): a filter
drops those of Secrets Manager, whatever level an operator turns on.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from ..errors import Rejected, Unavailable
from ..settings import Settings

__all__ = ["ApiKeys", "Fetch", "parse_secret"]

log = logging.getLogger("tokenrelay.secrets")
PREFETCH_WAIT_S = 10.0
JSON_KEYS = ("api_key", "apiKey", "API_KEY", "key")

Fetch = Callable[[str, int], str]  # (secret id, max age in seconds) -> secret string


def _powertools_fetch(secret_id: str, max_age_s: int) -> str:
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=max_age_s)
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def parse_secret(raw: str) -> str:
    """The API key in a secret string: the string itself, or ``api_key`` of a JSON object."""
    text = raw.strip()
    if text.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("secret is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("secret JSON is not an object")
        for name in JSON_KEYS:
            if isinstance(data.get(name), str) and data[name].strip():
                return str(data[name]).strip()
        values = [v for v in data.values() if isinstance(v, str) and v.strip()]
        if len(values) == 1:
            return str(values[0]).strip()
        raise ValueError(f"secret JSON has no {JSON_KEYS[0]!r} string")
    if not text:
        raise ValueError("secret is empty")
    return text


class _DropSecretBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return False
        return not any(marker in text for marker in _SECRET_MARKERS)


_SECRET_MARKERS = ("SecretString", "SecretBinary")
_WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.httpchecksum")


def _guard_wire_logs() -> None:
    """Keep botocore's DEBUG dumps of GetSecretValue responses out of every log (idempotent)."""
    for name in _WIRE_LOGGERS:
        wire = logging.getLogger(name)
        if not any(isinstance(f, _DropSecretBodies) for f in wire.filters):
            wire.addFilter(_DropSecretBodies())


class ApiKeys:
    """API keys of the providers configured through a secret, read once and cached."""

    def __init__(self, settings: Settings, fetch: Fetch | None = None) -> None:
        self._secrets = dict(settings.api_key_secrets)
        self._max_age_s = settings.secrets_max_age_s
        self._fetch = fetch or _powertools_fetch
        self._prefetch: threading.Thread | None = None
        if self._secrets:
            _guard_wire_logs()

    def __repr__(self) -> str:  # never show a value, even by accident
        return f"ApiKeys(providers={sorted(self._secrets)})"

    def prefetch(self) -> None:
        """Read every configured secret in a daemon thread (errors are retried by ``key()``)."""
        if not self._secrets or self._prefetch is not None:
            return

        def work() -> None:
            for provider in list(self._secrets):
                try:
                    self._read(provider)
                except Exception as exc:
                    log.warning("prefetch of the %s API key failed: %s", provider, type(exc).__name__)

        self._prefetch = threading.Thread(target=work, name="tokenrelay-secrets", daemon=True)
        self._prefetch.start()

    def key(self, provider: str) -> str | None:
        """The key for ``provider``, or None when it has no secret (the SDK reads its env var).

        Raises ``Unavailable`` when the secret cannot be read, ``Rejected`` when it holds no key.
        """
        if provider not in self._secrets:
            return None
        thread = self._prefetch
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(PREFETCH_WAIT_S)
        return self._read(provider)

    def _read(self, provider: str) -> str:
        try:
            raw = self._fetch(self._secrets[provider], self._max_age_s)
        except Exception as exc:
            log.error("could not read the %s API key secret: %s", provider, type(exc).__name__)
            raise Unavailable(f"{provider}: the API key could not be read") from None
        try:
            return parse_secret(raw)
        except ValueError as exc:
            log.error("the %s API key secret is unusable: %s", provider, exc)
            raise Rejected(f"{provider}: the API key secret holds no key") from None
