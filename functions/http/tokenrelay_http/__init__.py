"""TokenRelay's HTTP function, as a package (the function's code directory is its root in Lambda).

    _app.py      create_app: the composition (stores, runs, middleware, error handlers, routers)
    routers/     chat, resume, openai (/v1), home, dev: each an APIRouter (or an app setting)
    channel.py   the one channel every streamed answer goes through (body, ping, disconnect)
    runs.py      this process's runs: start, confirm a cancel, stop at shutdown
    auth.py      who is calling (AuthMiddleware), before any route
    body.py      the body's cap and read timeout, strict JSON, the query of GET /chat/stream
    errors.py    error answers: TokenRelay's shape, or OpenAI's under /v1
    openapi.py   what each route says of itself in /openapi.json
    deadline.py  the Lambda invocation's deadline, as a request sees it
    openai_request.py  an OpenAI Chat Completions request -> a ChatRequest

The entry points sit beside the package: ``app.py`` (uvicorn, ``run.sh``) and ``handler.py``
(Mangum, the HTTP API).
"""

from ._app import create_app

__all__ = ["create_app"]
