"""The ASGI app instance that uvicorn (``run.sh``) and Mangum (``handler.py``) serve.

Settings, the DynamoDB client and the provider registry are created here once
per execution environment, at cold start.
"""

from api import create_app

app = create_app()
