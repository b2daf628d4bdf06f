"""What each route says of itself in the OpenAPI document (``GET /openapi.json``).

The routes read their JSON body by hand (``json_text.loads_strict``, then
``parse_chat_request``), so FastAPI cannot see their bodies, parameters or error
answers. Each route declares them (``openapi_extra=``) from the builders here, made
from this deployment's settings (limits, providers, models), so the document says
what this deployment accepts; a route that is not mounted is not documented:

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

from tokenrelay import Settings

from .openai_request import list_models

__all__ = ["Operations", "chat_body_schema"]

JSON = "application/json"
TEXT_RULE = "Any Unicode except C0 control characters other than tab, LF and CR, and lone surrogates."


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}  # null counts as absent


_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME,
                "description": {"type": "string"},
                "parameters": {"type": "object", "description": "JSON Schema of the arguments (type object)"},
                "strict": {"type": "boolean"},
            },
        },
    },
}
TOOL_CALL = {
    "type": "object",
    "required": ["id", "function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name", "arguments"],
            "properties": {"name": _NAME, "arguments": {"type": "string", "description": "JSON text of an object"}},
        },
    },
}
THINKING_BLOCK = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["thinking", "redacted_thinking"]},
        "thinking": {"type": "string"},
        "signature": {"type": "string"},
        "data": {"type": "string"},
    },
}
TOOL_CHOICE = {
    "anyOf": [
        {"enum": ["auto", "none", "required"]},
        {
            "type": "object",
            "required": ["type", "function"],
            "properties": {
                "type": {"const": "function"},
                "function": {"type": "object", "properties": {"name": _NAME}},
            },
        },
    ]
}
CACHE_CONTROL = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"const": "ephemeral"}, "ttl": {"enum": ["5m", "1h"]}},
    "description": "cache the prompt up to this part (docs/protocol.md §13)",
}
PART = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}, "cache_control": CACHE_CONTROL},
}
RESPONSE_FORMAT = {
    "type": "object",
    "required": ["type"],
    "description": "structured output (docs/protocol.md §14)",
    "properties": {
        "type": {"enum": ["text", "json_object", "json_schema"]},
        "json_schema": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _NAME,
                "schema": {"type": "object"},
                "strict": {"type": "boolean"},
                "description": {"type": "string"},
            },
        },
    },
}
REASONING = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "effort": {"enum": ["none", "minimal", "low", "medium", "high"]},
        "budget_tokens": {"type": "integer", "minimum": 1},
    },
}


def chat_body_schema(settings: Settings) -> dict[str, Any]:
    """docs/protocol.md §1 as JSON Schema, for this deployment."""
    chars = settings.max_message_chars
    providers = sorted(settings.configured_providers & set(settings.allowed_models))
    models = sorted({m for p in providers for m in settings.allowed_models[p]})
    text = {"type": "string", "maxLength": chars, "description": TEXT_RULE}
    turn = {
        "type": "object",
        "additionalProperties": False,
        "required": ["role"],
        "description": "content is required, except for an assistant message with tool_calls (§11)",
        "properties": {
            "role": {"enum": ["system", "user", "assistant", "tool"]},
            "content": _nullable({"anyOf": [text, {"type": "array", "minItems": 1, "items": PART}]}),
            "tool_calls": _nullable({"type": "array", "items": TOOL_CALL}),
            "tool_call_id": _nullable({"type": "string"}),
            "is_error": _nullable({"type": "boolean", "description": "a tool message: the call failed (§11)"}),
            "thinking_blocks": _nullable({"type": "array", "items": THINKING_BLOCK}),
        },
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
            **SAMPLING,
            "response_format": _nullable(RESPONSE_FORMAT),
            "tools": _nullable({"type": "array", "minItems": 1, "items": TOOL}),
            "tool_choice": _nullable(TOOL_CHOICE),
            "parallel_tool_calls": _nullable({"type": "boolean"}),
            "reasoning": _nullable(REASONING),
        },
        "anyOf": [
            {"required": ["message"], "properties": {"message": {"type": "string"}, "messages": {"type": "null"}}},
            {"required": ["messages"], "properties": {"messages": {"type": "array"}, "message": {"type": "null"}}},
        ],
    }


_STOP = {"type": "string", "minLength": 1, "maxLength": 256}
SAMPLING = {  # docs/protocol.md §1: what a provider cannot take is a 400 naming it
    "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
    "seed": _nullable({"type": "integer"}),
    "stop": _nullable({"anyOf": [_STOP, {"type": "array", "minItems": 1, "maxItems": 4, "items": _STOP}]}),
    "presence_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
    "frequency_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
    "user": _nullable({"type": "string", "minLength": 1, "maxLength": 256}),
    "prompt_cache_key": _nullable({"type": "string", "minLength": 1, "maxLength": 256}),
}


def _completion_body(settings: Settings) -> dict[str, Any]:
    part = PART
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant"]},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": part}]},
        },
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
            **SAMPLING,
            "response_format": _nullable(RESPONSE_FORMAT),
            "n": _nullable({"type": "integer", "const": 1, "description": "one choice per request"}),
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
        "timeout_s": {"type": "number"},
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


PART_EVENTS = ["reasoning", "tool_call_start", "tool_call_delta", "tool_call_end"]  # protocol.md §11
STREAM_EVENTS = _sse_event(["start", "message", *PART_EVENTS, "usage", "done", "cancelled", "error"])


def _ok(media: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"200": {"description": description, "content": {media: {"schema": schema or {"type": "string"}}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema}}}


def _query(settings: Settings) -> list[dict[str, Any]]:
    body = chat_body_schema(settings)["properties"]
    names = ("message", "system", "provider", "model", "max_tokens", "temperature", *SAMPLING)
    schemas = {n: body[n]["anyOf"][0] for n in names} | {"stop": _STOP}  # one stop sequence in a query
    return [{"name": n, "in": "query", "required": n == "message", "schema": schemas[n]} for n in names]


class Operations:
    """The OpenAPI operation of each route, for ``openapi_extra=`` (FastAPI merges it in)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._chat = chat_body_schema(settings)

    def chat_post(self) -> dict[str, Any]:
        return {
            "summary": "Stream a chat answer as Server-Sent Events",
            "requestBody": _body(self._chat),
            "responses": {**_ok("text/event-stream", SSE, STREAM_EVENTS), **_errors(POSTED, _ERROR)},
        }

    def chat_get(self) -> dict[str, Any]:
        return {
            "summary": "The same, for EventSource (fields in the query)",
            "parameters": _query(self.settings),
            "responses": {**_ok("text/event-stream", SSE, STREAM_EVENTS), **_errors([400, 401, 403, 429, 503], _ERROR)},
        }

    def simple(self) -> dict[str, Any]:
        return {
            "summary": "Stream raw text, no framing",
            "requestBody": _body(self._chat),
            "responses": {**_ok("text/plain", "the answer's text"), **_errors([*POSTED, 502, 504], _ERROR)},
        }

    def cancel(self) -> dict[str, Any]:
        ended = {"type": "object", "required": ["status", "stream_id"]}
        return {
            "summary": "Cancel a stream, from any instance; the answer says how it ended",
            "parameters": [_STREAM_ID],
            "responses": {
                **_ok(JSON, "the stream ended cancelled", ended),
                "202": {
                    "description": "the cancel is recorded, the stream has not confirmed its end yet",
                    "content": {JSON: {"schema": ended}},
                },
                **_errors([401, 403, 404, 409, 503], _ERROR),
            },
        }

    def resume(self) -> dict[str, Any]:
        return {
            "summary": "Resume a stream after message n (Last-Event-ID, or ?last_event_id=n)",
            "parameters": [
                _STREAM_ID,
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
                {
                    "name": "last_event_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "responses": {**_ok("text/event-stream", SSE, STREAM_EVENTS), **_errors([400, 401, 403, 404, 503], _ERROR)},
        }

    def health(self) -> dict[str, Any]:
        return {
            "summary": "Version, providers and DynamoDB status",
            "responses": _ok(JSON, "always 200; status degraded when DynamoDB is down", {"type": "object"}),
        }

    def completions(self) -> dict[str, Any]:
        return {
            "summary": "OpenAI Chat Completions (docs/protocol.md §6; docs/openai-compat.md)",
            "requestBody": _body(_completion_body(self.settings)),
            "responses": {
                "200": {
                    "description": "chat.completion, or chat.completion.chunk events when stream is true",
                    "content": {
                        JSON: {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": _sse_event(None)},
                    },
                },
                **_errors(V1_ERRORS, _OPENAI_ERROR),
            },
        }

    def models(self) -> dict[str, Any]:
        return {
            "summary": "The models this deployment serves (provider/model, then aliases)",
            "responses": _ok(JSON, "a list of model objects", {"type": "object", "required": ["object", "data"]}),
        }

    def model(self) -> dict[str, Any]:
        return {
            "summary": "One model",
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {**_ok(JSON, "a model object", {"type": "object"}), **_errors([401, 404], _OPENAI_ERROR)},
        }


SSE = "text/event-stream: start, message*, usage?, then done | cancelled | error (docs/protocol.md §2)"
POSTED = [400, 401, 403, 413, 415, 429, 503]
V1_ERRORS = [400, 401, 403, 404, 409, 413, 415, 429, 502, 503, 504]
_STREAM_ID = {"name": "stream_id", "in": "path", "required": True, "schema": {"type": "string"}}
