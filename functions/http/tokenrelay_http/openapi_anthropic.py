"""What ``POST /v1/messages`` says of itself in ``/openapi.json`` (docs/anthropic-compat.md).

The body as JSON Schema, only as strict as ``anthropic_request`` is (``tests/fuzz`` sends
what it calls invalid and expects a 4xx), and Anthropic's error object for every status.
"""

from __future__ import annotations

from typing import Any

from tokenrelay import Settings

from .openai_request import list_models
from .openapi import JSON, _body, _nullable, _sse_event

__all__ = ["messages_operation"]

_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
_WHY = {
    400: "invalid_request_error: invalid input, naming the field",
    401: "authentication_error: no or an invalid API key (x-api-key or Authorization: Bearer)",
    403: "permission_error: the key may not use this model",
    404: "not_found_error: unknown model",
    409: "cancelled_error: cancelled (POST /chat/stream/{id}/cancel) before any output",
    413: "request_too_large: the body is larger than the limit",
    429: "rate_limit_error: the key's or the provider's rate limit",
    502: "api_error: the provider refused the request",
    503: "api_error: DynamoDB is unavailable",
    504: "timeout_error: the provider sent nothing in time, or the stream reached its time limit",
    529: "overloaded_error: the provider is unavailable",
}
EVENTS = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
]


def _body_schema(settings: Settings) -> dict[str, Any]:
    block = {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}
    content = {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": block}]}
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"enum": ["user", "assistant"]}, "content": content},
    }
    tool = {
        "type": "object",
        "required": ["name", "input_schema"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "input_schema": {"type": "object"},
        },
    }
    return {
        "type": "object",
        "required": ["model", "max_tokens", "messages"],
        "description": "Anthropic's Messages request; what TokenRelay does not relay is refused (docs).",
        "properties": {
            "model": {"type": "string", "enum": [model_id for model_id, _ in list_models(settings)]},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": settings.max_tokens_limit},
            "messages": {"type": "array", "minItems": 1, "maxItems": settings.max_messages, "items": message},
            "system": _nullable({"anyOf": [{"type": "string"}, {"type": "array", "items": block}]}),
            "stream": _nullable({"type": "boolean"}),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "stop_sequences": _nullable({"type": "array", "maxItems": 4, "items": {"type": "string", "minLength": 1}}),
            "tools": _nullable({"type": "array", "items": tool}),
            "tool_choice": _nullable({"type": "object", "required": ["type"]}),
            "thinking": _nullable({"type": "object", "required": ["type"]}),
            "metadata": _nullable({"type": "object", "properties": {"user_id": {"type": ["string", "null"]}}}),
        },
    }


def messages_operation(settings: Settings) -> dict[str, Any]:
    errors = {str(s): {"description": why, "content": {JSON: {"schema": _ERROR}}} for s, why in _WHY.items()}
    return {
        "summary": "Anthropic Messages API (docs/anthropic-compat.md)",
        "requestBody": _body(_body_schema(settings)),
        "responses": {
            "200": {
                "description": "a Message, or Message stream events when stream is true",
                "content": {JSON: {"schema": {"type": "object"}}, "text/event-stream": {"schema": _sse_event(EVENTS)}},
            },
            **errors,
        },
    }
