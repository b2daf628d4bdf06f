"""What each model can do (``capabilities``): a table shipped for the default models,
overridable per deployment, read by request validation and shown on ``/v1/models``."""

from .capabilities import (
    CAPABILITY_FIELDS,
    DEFAULT_CAPABILITIES,
    Capabilities,
    capabilities_from_env,
    parse_capabilities,
    provider_default,
)

__all__ = [
    "CAPABILITY_FIELDS",
    "DEFAULT_CAPABILITIES",
    "Capabilities",
    "capabilities_from_env",
    "parse_capabilities",
    "provider_default",
]
