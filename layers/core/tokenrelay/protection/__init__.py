"""Protection: API keys, per-key limits and admission, the same for every transport.

    _keys     the token format, how secrets are checked, who a caller is (``Principal``)
    _limits   requests per minute and concurrent streams, atomic in DynamoDB
    _guard    ``Guard``: every refusal (401, 403, 429) made and counted in one place

The records and store protocols are in ``tokenrelay.stores`` (``api_keys``, ``rate_limits``).
"""

from ._guard import ANONYMOUS, Guard, Refusal
from ._keys import (
    MAX_CACHE_S,
    REFUSAL_FLOOR_S,
    TOKEN_PREFIX,
    Authenticator,
    Principal,
    hash_secret,
    model_pattern_ok,
    new_key,
    parse_token,
)
from ._limits import CONCURRENCY_RETRY_AFTER_S, LEASE_MARGIN_S, RateLimiter, rpm_key, slot_key

__all__ = [
    "ANONYMOUS",
    "CONCURRENCY_RETRY_AFTER_S",
    "LEASE_MARGIN_S",
    "MAX_CACHE_S",
    "REFUSAL_FLOOR_S",
    "TOKEN_PREFIX",
    "Authenticator",
    "Guard",
    "Principal",
    "RateLimiter",
    "Refusal",
    "hash_secret",
    "model_pattern_ok",
    "new_key",
    "parse_token",
    "rpm_key",
    "slot_key",
]
