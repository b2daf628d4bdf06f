"""WebSocket messages (PROTOCOL section 3), byte for byte."""

from __future__ import annotations

import json

import pytest

from tokenrelay import StreamCancelled, StreamDone, StreamError, StreamStart, TextDelta, Usage
from tokenrelay.transports.websocket import encode_error, encode_message


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            StreamStart("s-1", "openai", "gpt-4o-mini"),
            b'{"type":"start","stream_id":"s-1","request_id":"r-9","provider":"openai","model":"gpt-4o-mini"}',
        ),
        (
            TextDelta('He said "hi"\n', 3),
            b'{"type":"text","stream_id":"s-1","request_id":"r-9","content":"He said \\"hi\\"\\n","seq":3,"tokens":1}',
        ),
        (
            Usage(9, 2),
            b'{"type":"usage","stream_id":"s-1","request_id":"r-9",'
            b'"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}',
        ),
        (
            StreamDone("s-1", "stop", 120, 900, 2),
            b'{"type":"done","stream_id":"s-1","request_id":"r-9","status":"complete","finish_reason":"stop",'
            b'"ttft_ms":120,"total_time_ms":900,"completion_tokens":2}',
        ),
        (
            StreamCancelled("s-1", "client"),
            b'{"type":"cancelled","stream_id":"s-1","request_id":"r-9","reason":"client"}',
        ),
        (
            StreamError("upstream is busy", "rate_limited", True),
            b'{"type":"error","stream_id":"s-1","request_id":"r-9","error":"upstream is busy",'
            b'"code":"rate_limited","retryable":true}',
        ),
    ],
)
def test_encode_message_each_event_exact_bytes(event: object, expected: bytes) -> None:
    assert encode_message(event, "s-1", "r-9") == expected  # type: ignore[arg-type]


def test_encode_message_without_request_id_omits_the_field() -> None:
    expected = '{"type":"text","stream_id":"s-1","content":"é✓","seq":1,"tokens":1}'.encode()
    assert encode_message(TextDelta("é✓", 1), "s-1") == expected


def test_encode_message_first_generation_client_reads_type_and_content() -> None:
    # the old dialect: append data.content of every "text" until "done"
    message = json.loads(encode_message(TextDelta("tok", 1), "s-1"))
    assert message["type"] == "text" and message["content"] == "tok"
    assert json.loads(encode_message(StreamDone("s-1", "stop", None, 5, 1), "s-1"))["type"] == "done"


def test_encode_message_text_says_how_many_tokens_it_merges() -> None:
    merged = encode_message(TextDelta("a b c", 4), "s-1", tokens=3)
    assert merged == b'{"type":"text","stream_id":"s-1","content":"a b c","seq":4,"tokens":3}'


def test_encode_error_outside_a_stream_names_field_and_echoes_request_id() -> None:
    data = encode_error("invalid_request", "message: field required", request_id="r-1", field="message")
    assert data == (
        b'{"type":"error","request_id":"r-1","error":"message: field required","code":"invalid_request",'
        b'"retryable":false,"field":"message"}'
    )


def test_encode_error_about_a_stream_carries_its_id_and_status() -> None:
    data = json.loads(encode_error("stream_finished", "ended", stream_id="s-2", status="complete"))
    assert data == {
        "type": "error",
        "stream_id": "s-2",
        "error": "ended",
        "code": "stream_finished",
        "retryable": False,
        "status": "complete",
    }
