"""What each model can do (``capabilities``) and what its tokens cost (``prices``): tables
shipped for the default models, overridable per deployment. Capabilities are read by request
validation and shown on ``/v1/models``; prices give each stream its cost."""

from .capabilities import (
    CAPABILITY_FIELDS,
    DEFAULT_CAPABILITIES,
    Capabilities,
    capabilities_from_env,
    parse_capabilities,
    provider_default,
)
from .prices import DEFAULT_PRICES, PRICES_DATE, Price, parse_prices, prices_from_env

__all__ = [
    "CAPABILITY_FIELDS",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PRICES",
    "PRICES_DATE",
    "Price",
    "Capabilities",
    "capabilities_from_env",
    "parse_capabilities",
    "parse_prices",
    "prices_from_env",
    "provider_default",
]
