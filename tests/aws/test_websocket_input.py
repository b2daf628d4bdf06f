"""Malformed WebSocket messages get an in-band ``error`` naming what is wrong; nothing starts,
nothing crashes. API Gateway's own event shape, moto for DynamoDB and ``@connections``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws.test_websocket_handlers import Aws, aws, event
from tokenrelay.json_text import MAX_DEPTH
from tokenrelay_ws import message  # the handler module, as test_websocket_handlers uses it

__all__ = ["aws"]  # the fixture, shared with the handler tests

CHAT = '{"type": "chat", "message": "hi"'


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ("", "invalid_json", "empty"),
        ("x" * (128 * 1024 + 1), "payload_too_large", "131072 bytes"),
        ('{"type": "chat", "message": "' + "é" * (64 * 1024) + '"}', "payload_too_large", "131072 bytes"),
        (CHAT + ', "message": "again"}', "invalid_json", "duplicate key 'message'"),
        (CHAT + ', "temperature": NaN}', "invalid_json", "NaN"),
        (CHAT + ', "temperature": 1e400}', "invalid_json", "out of range"),
        (CHAT + ', "x": ' + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "}", "invalid_json", "nested"),
        (CHAT + ', "request_id": "\\udc00"}', "invalid_json", "surrogate"),
        (CHAT[:-6], "invalid_json", "not valid JSON"),
        ('"chat"', "invalid_json", "JSON object"),
        ("null", "invalid_json", "JSON object"),
        ('{"type": ["chat"]}', "invalid_request", "type"),
        ('{"type": "Chat"}', "unknown_type", "'Chat'"),
        (CHAT + ', "request_id": 7}', "invalid_request", "request_id"),
        (CHAT + ', "max_tokens": true}', "invalid_request", "max_tokens"),
        (CHAT + ', "temperature": "hot"}', "invalid_request", "temperature"),
        ('{"type": "chat", "message": "nul \\u0000 here"}', "invalid_request", "U+0000"),
        (CHAT + ', "mesage": "typo"}', "invalid_request", "mesage"),
        ('{"type": "cancel", "stream_id": 42}', "invalid_request", "stream_id"),
    ],
)
def test_bad_message_gets_an_error_naming_what_is_wrong_and_starts_nothing(
    aws: Aws, body: str, code: str, says: str
) -> None:
    aws.connect()
    assert aws.call(message.handler, event("message_default", body=body)) == {"statusCode": 200}
    (error,) = aws.posted()
    assert error["type"] == "error" and error["code"] == code, error
    assert says in error["error"] or says == error.get("field"), error
    assert aws.invokes == []


def test_binary_frame_gets_invalid_json(aws: Aws) -> None:
    aws.connect()
    evt: dict[str, Any] = event("message_default", body="AAEC/w==", isBase64Encoded=True)
    assert aws.call(message.handler, evt) == {"statusCode": 200}
    (error,) = aws.posted()
    assert error["code"] == "invalid_json" and "binary" in error["error"]


def test_a_good_chat_after_bad_ones_still_starts_a_stream(aws: Aws) -> None:
    aws.connect()
    for body in ("{", "[]", json.dumps({"type": "nope"})):
        aws.call(message.handler, event("message_default", body=body))
    assert aws.chat({"message": "hi", "request_id": "after"})
    assert [m["code"] for m in aws.posted()] == ["invalid_json", "invalid_json", "unknown_type"]
