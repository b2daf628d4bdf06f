"""Buffered entry point: the same FastAPI app behind API Gateway, through Mangum.

This is what ``sam local start-api`` serves. API Gateway buffers the whole
response, so SSE arrives in one piece; stream through the Function URL instead.
"""

from __future__ import annotations

from mangum import Mangum

from app import app

handler = Mangum(app, lifespan="off")
