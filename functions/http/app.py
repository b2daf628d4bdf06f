"""The ASGI app instance that uvicorn (``run.sh``) and Mangum (``handler.py``) serve.

Settings, the DynamoDB clients and the configured providers (their SDKs and clients) are
created here once per execution environment, at init: Lambda's init phase (and a SnapStart
snapshot) carries them, and the first request imports and builds nothing.
"""

import anyio._backends._asyncio  # noqa: F401  (anyio loads its backend at its first use: the first stream)

from tokenrelay import ProviderRegistry, Settings
from tokenrelay.telemetry.logging import configure
from tokenrelay_http import create_app

settings = Settings.from_env()
configure(settings)  # JSON logs (Powertools Logger) in Lambda; plain text locally
providers = ProviderRegistry(settings)
providers.prepare()
app = create_app(settings, providers=providers)
if settings.tracing_enabled:
    from tokenrelay.telemetry.tracing import TraceHeaderMiddleware

    app.add_middleware(TraceHeaderMiddleware)  # the Web Adapter forwards the trace id as a header
