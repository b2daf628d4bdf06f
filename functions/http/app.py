"""The ASGI app instance that uvicorn (``run.sh``) and Mangum (``handler.py``) serve.

Settings, the DynamoDB clients and the provider registry are created here once
per execution environment, at cold start.
"""

from tokenrelay import Settings
from tokenrelay.telemetry.logging import configure
from tokenrelay_http import create_app

settings = Settings.from_env()
configure(settings)  # JSON logs (Powertools Logger) in Lambda; plain text locally
app = create_app(settings)
if settings.tracing_enabled:
    from tokenrelay.telemetry.tracing import TraceHeaderMiddleware

    app.add_middleware(TraceHeaderMiddleware)  # the Web Adapter forwards the trace id as a header
