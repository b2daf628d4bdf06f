"""``openai_wire``: engine events -> OpenAI Chat Completions bytes, byte for byte."""

from __future__ import annotations

import json

import pytest

from tokenrelay import (
    Event,
    RateLimited,
    StoreUnavailable,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    TextDelta,
    Usage,
)
from tokenrelay.transports.openai import (
    DONE,
    OpenAIStreamEncoder,
    completion_object,
    from_terminal,
    model_list,
    openai_error,
)

HEAD = '"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"echo/echo-1"'
OPEN = '"logprobs":null,"finish_reason":null}'
STOP = '"logprobs":null,"finish_reason":"stop"}'
DONE_EVENT = StreamDone("s1", "stop", 12, 40, 2)


def encoder(include_usage: bool = False) -> OpenAIStreamEncoder:
    return OpenAIStreamEncoder("chatcmpl-s1", 1700000000, "echo/echo-1", include_usage=include_usage)


def test_openai_encoder_whole_stream_is_openai_framing_byte_for_byte() -> None:
    enc = encoder()
    events: list[Event] = [
        StreamStart("s1", "echo", "echo-1"),
        TextDelta("Hel", 1),
        TextDelta("lo", 2),
        Usage(5, 2),
        DONE_EVENT,
    ]

    body = b"".join(enc.encode(e) for e in events)

    assert body.decode() == (
        f'data: {{{HEAD},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},{OPEN}]}}\n\n'
        f'data: {{{HEAD},"choices":[{{"index":0,"delta":{{"content":"Hel"}},{OPEN}]}}\n\n'
        f'data: {{{HEAD},"choices":[{{"index":0,"delta":{{"content":"lo"}},{OPEN}]}}\n\n'
        f'data: {{{HEAD},"choices":[{{"index":0,"delta":{{}},{STOP}]}}\n\n'
        "data: [DONE]\n\n"
    )


def test_openai_encoder_include_usage_adds_null_usage_and_a_usage_chunk_after_finish() -> None:
    enc = encoder(include_usage=True)

    events: list[Event] = [TextDelta("Hi", 1), Usage(5, 1), DONE_EVENT]
    body = b"".join(enc.encode(e) for e in events).decode()

    assert body == (
        f'data: {{{HEAD},"choices":[{{"index":0,"delta":{{"content":"Hi"}},{OPEN}],"usage":null}}\n\n'
        f'data: {{{HEAD},"choices":[{{"index":0,"delta":{{}},{STOP}],"usage":null}}\n\n'
        f'data: {{{HEAD},"choices":[],"usage":{{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6,'
        f'"prompt_tokens_details":{{"cached_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0}}}}}}\n\n'
        "data: [DONE]\n\n"
    )


@pytest.mark.parametrize("text", ["plain", 'quote " and \\ slash', "line\nbreak\r\n", "café ☕ 🌍", "\u2028\x00", ""])
def test_openai_encoder_text_fast_path_equals_encoding_the_dict(text: str) -> None:
    for include_usage in (False, True):
        enc = encoder(include_usage)
        fast = enc.text(text)
        assert fast == enc.chunk({"content": text})
        assert fast.startswith(b"data: ") and fast.endswith(b"\n\n") and fast.count(b"\n") == 2
        assert json.loads(fast[6:])["choices"][0]["delta"]["content"] == text


def test_openai_encoder_non_ascii_is_raw_utf8() -> None:
    assert "ü☕".encode() in encoder().text("ü☕")


def test_openai_encoder_error_after_start_is_error_frame_then_done() -> None:
    body = encoder().encode(StreamError("OpenAI is unavailable (HTTP 503)", "upstream_unavailable", True))

    assert body == (
        b'data: {"error":{"message":"OpenAI is unavailable (HTTP 503)","type":"server_error","param":null,'
        b'"code":"upstream_unavailable"}}\n\n' + DONE
    )


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [("client", 409, "stream_cancelled"), ("timeout", 504, "stream_timeout"), ("disconnect", 409, "stream_cancelled")],
)
def test_openai_encoder_cancelled_is_error_frame_naming_the_reason(reason: str, status: int, code: str) -> None:
    event = StreamCancelled("s1", reason)  # type: ignore[arg-type]

    frame = json.loads(encoder().encode(event).split(b"\n\n")[0][6:])

    assert frame["error"]["code"] == code and from_terminal(event).status == status
    assert not from_terminal(event).retryable


@pytest.mark.parametrize(
    ("code", "status", "kind", "retry"),
    [
        ("rate_limited", 429, "rate_limit_error", "true"),
        ("upstream_rate_limited", 429, "rate_limit_error", "true"),
        ("upstream_unavailable", 503, "server_error", "true"),
        ("upstream_rejected", 502, "upstream_error", "false"),
        ("internal_error", 500, "server_error", "false"),
    ],
)
def test_openai_error_from_terminal_maps_status_type_and_retry_header(
    code: str, status: int, kind: str, retry: str
) -> None:
    error = from_terminal(StreamError("msg", code, retry == "true"))

    assert (error.status, error.type, error.code) == (status, kind, code)
    assert error.body() == {"error": {"message": "msg", "type": kind, "param": None, "code": code}}
    assert error.headers() == {"x-should-retry": retry}


def test_openai_error_from_relay_errors_keeps_status_and_retryability() -> None:
    limited = openai_error(RateLimited("slow down"))
    store = openai_error(StoreUnavailable("could not record the stream"))

    assert (limited.status, limited.type, limited.retryable) == (429, "rate_limit_error", True)
    assert limited.code == "upstream_rate_limited"  # the provider's limit, apart from a key's own
    assert (store.status, store.code, store.retryable) == (503, "store_unavailable", True)


def test_openai_completion_object_has_message_finish_and_usage() -> None:
    body = completion_object("chatcmpl-s1", 1700000000, "echo/echo-1", "Hello", DONE_EVENT, Usage(5, 2))

    assert body == {
        "id": "chatcmpl-s1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "echo/echo-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_openai_model_list_is_openai_list_of_model_objects() -> None:
    caps = {"images": True, "tools": True, "reasoning": False, "structured_output": True}
    assert model_list([("echo/echo-1", "echo", caps)]) == {
        "object": "list",
        "data": [{"id": "echo/echo-1", "object": "model", "created": 0, "owned_by": "echo", "capabilities": caps}],
    }
