"""The OpenAPI operations of the AI SDK routes (``routers/ai_sdk.py``; docs/ai-sdk.md).

The body is ``useChat``'s: the chat ``id``, ``messages`` as UI messages, ``trigger``,
``messageId``, and TokenRelay's own request fields beside them. A UI message part's fields are
the SDK's and vary with its version: only ``type`` is described (the server checks the rest of
what it reads and answers a 400 naming the part).
"""

from __future__ import annotations

from typing import Any

from tokenrelay import Settings

from .openapi import _ERROR, _body, _errors, _nullable, _ok, chat_body_schema

__all__ = ["CHAT_ID_PATTERN", "chat_operation", "resume_operation"]

CHAT_ID_PATTERN = "^[A-Za-z0-9_.:-]{1,128}$"
NATIVE = ("system", "provider", "model", "max_tokens", "temperature", "tools", "tool_choice", "parallel_tool_calls")
UI_STREAM = (
    "text/event-stream with x-vercel-ai-ui-message-stream: v1: data lines of UI message chunks "
    "(start, text-*, reasoning-*, tool-input-*, finish | abort | error), then data: [DONE] (docs/ai-sdk.md)"
)
_UI_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}


def _ui_body(settings: Settings) -> dict[str, Any]:
    native = chat_body_schema(settings)["properties"]
    part = {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}
    message = {
        "type": "object",
        "required": ["role", "parts"],
        "properties": {
            "id": {"type": "string"},
            "role": {"enum": ["system", "user", "assistant"]},
            "parts": {"type": "array", "items": part},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "messages"],
        "description": "useChat's request body; TokenRelay's request fields (docs/protocol.md §1) beside it.",
        "properties": {
            "id": {"type": "string", "pattern": CHAT_ID_PATTERN},
            "messages": {"type": "array", "minItems": 1, "maxItems": settings.max_messages, "items": message},
            "trigger": {"enum": ["submit-message", "regenerate-message"]},
            "messageId": _nullable({"type": "string"}),
            **{name: native[name] for name in (*NATIVE, "reasoning")},
        },
    }


def chat_operation(settings: Settings) -> dict[str, Any]:
    return {
        "summary": "Vercel AI SDK (useChat): stream an answer as a UI message stream",
        "requestBody": _body(_ui_body(settings)),
        "responses": {
            **_ok("text/event-stream", UI_STREAM, _UI_EVENT),
            **_errors([400, 401, 403, 413, 415, 429, 503], _ERROR),
        },
    }


def resume_operation() -> dict[str, Any]:
    chat_id = {
        "name": "chat_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": CHAT_ID_PATTERN},
    }
    return {
        "summary": "Vercel AI SDK (resumeStream): the chat's active stream, replayed from its start",
        "parameters": [chat_id],
        "responses": {
            **_ok("text/event-stream", UI_STREAM, _UI_EVENT),
            "204": {"description": "the chat has no active stream"},
            **_errors([400, 401, 403, 404, 503], _ERROR),
        },
    }
