from __future__ import annotations

from tokenrelay import StreamCancelled, StreamDone, StreamError, StreamStart, TextDelta, Usage, encode_sse
from tokenrelay.transports.sse import encode_comment


def test_sse_message_carries_seq_id_and_compact_json() -> None:
    assert encode_sse(TextDelta("héllo\n", 7)) == 'event: message\nid: 7\ndata: {"text":"héllo\\n"}\n\n'.encode()


def test_sse_start_usage_and_terminals_byte_for_byte() -> None:
    assert encode_sse(StreamStart("s", "echo", "echo-1")) == (
        b'event: start\ndata: {"stream_id":"s","provider":"echo","model":"echo-1"}\n\n'
    )
    assert encode_sse(Usage(2, 3)) == (
        b'event: usage\ndata: {"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}\n\n'
    )
    assert encode_sse(StreamDone("s", "stop", 12, 40, 3)) == (
        b'event: done\ndata: {"status":"complete","stream_id":"s","finish_reason":"stop",'
        b'"ttft_ms":12,"total_time_ms":40,"completion_tokens":3}\n\n'
    )
    assert encode_sse(StreamCancelled("s", "client")) == (
        b'event: cancelled\ndata: {"stream_id":"s","reason":"client"}\n\n'
    )
    assert encode_sse(StreamError("slow down", "rate_limited", True)) == (
        b'event: error\ndata: {"error":"slow down","code":"rate_limited","retryable":true}\n\n'
    )


def test_sse_text_with_line_separators_stays_on_one_data_line() -> None:
    frame = encode_sse(TextDelta("a\r\nb\u2028c", 1))
    assert frame.count(b"\ndata:") == 1 and frame.endswith(b"\n\n")
    assert b"\r" not in frame


def test_sse_comment_is_a_ping_line() -> None:
    assert encode_comment("ping") == b": ping\n\n"
