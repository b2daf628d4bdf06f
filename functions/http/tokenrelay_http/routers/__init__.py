"""The app's routers, one per family of routes; ``create_app`` includes them.

    chat       /chat/stream (SSE), /chat/stream-simple, cancel, /health
    resume     GET /chat/stream/{stream_id} (when resume is on)
    openai     /v1: chat completions and models, in OpenAI's shapes
    anthropic  POST /v1/messages, in Anthropic's shapes
    ai_sdk     /api/chat and /api/chat/{chat_id}/stream: the Vercel AI SDK's useChat
    home       GET /
    dev        the demo page and CORS, for scripts/dev only (an app setting, not routes)

A new route goes in one of them (or a new module here, included in ``_app.py``): its
body, its ``openapi_extra`` (``openapi.Operations``), nothing else. A streamed answer is a
``channel.StreamChannel`` around the route's body.
"""
