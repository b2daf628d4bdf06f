"""The OpenAPI document (``GET /openapi.json``): what FastAPI cannot see for itself.

The chat routes read their JSON body by hand (``json_text.loads_strict``, then
``parse_chat_request``) and ``/v1`` is a mounted Starlette app, so FastAPI's own
schema shows no request bodies, no error answers and no ``/v1`` at all.
``document_api`` adds them, built from this deployment's settings (limits,
providers, models), so the document says what this deployment accepts:

- the chat body, field for field the model of ``tokenrelay/requests.py``
  (a unit test keeps the two equal), exactly one of ``message``/``messages``;
- the query of ``GET /chat/stream``, ``Last-Event-ID`` of the resume route;
- every status each route answers, with TokenRelay's error object (OpenAI's
  under ``/v1``), and the media type of each success.

Rules JSON Schema cannot say (a non-empty user turn, the combined length,
control characters, a model that belongs to its provider) are in the
descriptions; the server enforces them with a 400 naming the field.
``tests/fuzz`` generates requests from this document (schemathesis).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from openai_request import list_models
from tokenrelay import Settings

__all__ = ["chat_body_schema", "document_api"]

JSON = "application/json"
TEXT_RULE = "Any Unicode except C0 control characters other than tab, LF and CR, and lone surrogates."


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}  # null counts as absent


def chat_body_schema(settings: Settings) -> dict[str, Any]:
    """PROTOCOL section 1 as JSON Schema, for this deployment."""
    chars = settings.max_message_chars
    providers = sorted(settings.configured_providers & set(settings.allowed_models))
    models = sorted({m for p in providers for m in settings.allowed_models[p]})
    text = {"type": "string", "maxLength": chars, "description": TEXT_RULE}
    turn = {
        "type": "object",
        "additionalProperties": False,
        "required": ["role", "content"],
        "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": text},
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "description": (
            f"Exactly one of message/messages; at least one user turn that is not blank; "
            f"at most {chars} characters in all. Unknown fields are refused."
        ),
        "properties": {
            "message": _nullable({**text, "minLength": 1, "pattern": "\\S"}),
            "messages": _nullable({"type": "array", "minItems": 1, "maxItems": settings.max_messages, "items": turn}),
            "system": _nullable(text),
            "provider": _nullable({"type": "string", "enum": providers}),
            "model": _nullable({"type": "string", "enum": models, "description": "on the provider's allow-list"}),
            "max_tokens": _nullable({"type": "integer", "minimum": 1, "maximum": settings.max_tokens_limit}),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
        },
        "anyOf": [
            {"required": ["message"], "properties": {"message": {"type": "string"}, "messages": {"type": "null"}}},
            {"required": ["messages"], "properties": {"messages": {"type": "array"}, "message": {"type": "null"}}},
        ],
    }


def _completion_body(settings: Settings) -> dict[str, Any]:
    part = {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    }
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant"]},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": part}]},
        },
    }
    stop = {
        "anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "maxItems": 4, "items": {"type": "string"}}]
    }
    return {
        "type": "object",
        "required": ["model", "messages"],
        "description": "OpenAI's Chat Completions request; fields TokenRelay does not relay are refused (docs).",
        "properties": {
            "model": {"type": "string", "enum": [model_id for model_id, _ in list_models(settings)]},
            "messages": {"type": "array", "minItems": 1, "items": message},
            "stream": _nullable({"type": "boolean"}),
            "max_tokens": _nullable({"type": "integer", "minimum": 1, "maximum": settings.max_tokens_limit}),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "stop": _nullable(stop),
        },
    }


_ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string"},
        "field": {"type": "string"},
        "status": {"type": "string"},
        "retryable": {"type": "boolean"},
        "limit": {"type": "integer"},
        "retry_after": {"type": "integer"},
    },
}
_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_WHY = {
    400: "invalid input, naming the field",
    401: "no or an invalid API key (when keys are required)",
    403: "the key may not use this model, or the stream belongs to another client",
    404: "unknown stream or model",
    409: "the stream already ended",
    413: "the body is larger than the limit",
    415: "the body is not application/json",
    429: "a rate or concurrency limit (Retry-After)",
    502: "the upstream refused the request before any text",
    503: "DynamoDB or the upstream is unavailable (retryable)",
    504: "the upstream sent nothing in time (upstream_timeout), or the stream reached its time limit",
}


def _errors(statuses: list[int], schema: dict[str, Any]) -> dict[str, Any]:
    return {str(s): {"description": _WHY[s], "content": {JSON: {"schema": schema}}} for s in statuses}


def _sse_event(names: list[str] | None) -> dict[str, Any]:
    """One Server-Sent Event (OpenAPI before 3.2: the schema of an event stream describes each event)."""
    event: dict[str, Any] = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "string"}, "id": {"type": "string", "pattern": "^[0-9]+$"}},
    }
    if names:
        event["properties"]["event"] = {"enum": names}
        event["properties"]["data"].update(contentMediaType=JSON, contentSchema={"type": "object"})
    return event


STREAM_EVENTS = _sse_event(["start", "message", "usage", "done", "cancelled", "error"])


def _ok(media: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"200": {"description": description, "content": {media: {"schema": schema or {"type": "string"}}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _query(settings: Settings) -> list[dict[str, Any]]:
    body = chat_body_schema(settings)["properties"]
    names = ("message", "system", "provider", "model", "max_tokens", "temperature")
    return [{"name": n, "in": "query", "required": n == "message", "schema": body[n]["anyOf"][0]} for n in names]


def _operations(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    chat = chat_body_schema(settings)
    sse = "text/event-stream: start, message*, usage?, then done | cancelled | error (PROTOCOL section 2)"
    posted = [400, 401, 403, 413, 415, 429, 503]
    ops: dict[tuple[str, str], dict[str, Any]] = {
        ("post", "/chat/stream"): {
            "summary": "Stream a chat answer as Server-Sent Events",
            "requestBody": _body(chat),
            "responses": {**_ok("text/event-stream", sse, STREAM_EVENTS), **_errors(posted, _ERROR)},
        },
        ("get", "/chat/stream"): {
            "summary": "The same, for EventSource (fields in the query)",
            "parameters": _query(settings),
            "responses": {**_ok("text/event-stream", sse, STREAM_EVENTS), **_errors([400, 401, 403, 429, 503], _ERROR)},
        },
        ("post", "/chat/stream-simple"): {
            "summary": "Stream raw text, no framing",
            "requestBody": _body(chat),
            "responses": {**_ok("text/plain", "the answer's text"), **_errors([*posted, 502, 504], _ERROR)},
        },
        ("post", "/chat/stream/{stream_id}/cancel"): {
            "summary": "Cancel a stream, from any instance; the answer says how it ended",
            "responses": {
                **_ok(JSON, "the stream ended cancelled", {"type": "object", "required": ["status", "stream_id"]}),
                "202": {
                    "description": "the cancel is recorded, the stream has not confirmed its end yet",
                    "content": {JSON: {"schema": {"type": "object", "required": ["status", "stream_id"]}}},
                },
                **_errors([401, 403, 404, 409, 503], _ERROR),
            },
        },
        ("get", "/chat/stream/{stream_id}"): {
            "summary": "Resume a stream after message n (Last-Event-ID, or ?last_event_id=n)",
            "parameters": [
                {"name": "stream_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
                {
                    "name": "last_event_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "responses": {**_ok("text/event-stream", sse, STREAM_EVENTS), **_errors([400, 401, 403, 404, 503], _ERROR)},
        },
        ("get", "/health"): {
            "summary": "Version, providers and DynamoDB status",
            "responses": _ok(JSON, "always 200; status degraded when DynamoDB is down", {"type": "object"}),
        },
    }
    v1_errors = [400, 401, 403, 404, 409, 413, 415, 429, 502, 503, 504]
    ops[("post", "/v1/chat/completions")] = {
        "summary": "OpenAI Chat Completions (PROTOCOL section 6; docs/openai-compat.md)",
        "requestBody": _body(_completion_body(settings)),
        "responses": {
            "200": {
                "description": "chat.completion, or chat.completion.chunk events when stream is true",
                "content": {JSON: {"schema": {"type": "object"}}, "text/event-stream": {"schema": _sse_event(None)}},
            },
            **_errors(v1_errors, _OPENAI_ERROR),
        },
    }
    ops[("get", "/v1/models")] = {
        "summary": "The models this deployment serves (provider/model, then aliases)",
        "responses": _ok(JSON, "a list of model objects", {"type": "object", "required": ["object", "data"]}),
    }
    ops[("get", "/v1/models/{model}")] = {
        "summary": "One model",
        "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {**_ok(JSON, "a model object", {"type": "object"}), **_errors([401, 404], _OPENAI_ERROR)},
    }
    return ops


def document_api(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` include what the module docstring lists (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            paths = schema.setdefault("paths", {})
            for (method, path), operation in _operations(settings).items():
                if path.startswith("/v1/") or path in paths:  # a route that exists (resume is optional)
                    paths.setdefault(path, {}).setdefault(method, {}).update(operation)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
