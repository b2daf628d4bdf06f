"""Random and malformed WebSocket frames for the gateway fuzz test, from a seeded ``random.Random``.

``Frame.expect`` is the ``code`` of the ``error`` message the frame must get back
(``None``: a valid chat, which must stream to ``done``; ``"close"``: a frame over
API Gateway's 128 KB, which closes the connection with 1009 as AWS does).
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from tokenrelay.json_text import MAX_DEPTH
from tokenrelay.providers.echo import echo_reply, tokenize
from tokenrelay.requests import ChatRequest, Message

MAX_PAYLOAD = 128 * 1024
CHARS = string.printable + "éß漢字😀\u2028"


@dataclass(frozen=True)
class Frame:
    kind: str
    data: str | bytes
    expect: str | None  # error code, None for a valid chat, "close" for an oversize frame
    request_id: str | None = None
    text: str = ""  # a valid chat's expected output


def _text(rng: random.Random, size: int) -> str:
    return "".join(rng.choice(CHARS) for _ in range(size))


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8)))


def chat(rng: random.Random, n: int) -> Frame:
    message = " ".join(_word(rng) for _ in range(rng.randint(1, 12)))
    request_id = f"chat-{n}"
    body = {"type": "chat", "message": message, "request_id": request_id, "max_tokens": 64}
    expected = "".join(tokenize(echo_reply(ChatRequest((Message("user", message),), "echo", "echo-1", 64)))[:64])
    return Frame("valid_chat", json.dumps(body), None, request_id, expected)


def _random_bytes(rng: random.Random, n: int) -> Frame:
    return Frame("binary", rng.randbytes(rng.randint(0, 256)), "invalid_json")


def _not_json(rng: random.Random, n: int) -> Frame:
    text = _text(rng, rng.randint(1, 200))
    if text.lstrip()[:1] in ("{", "[", '"') or text.strip().lstrip("-").isdigit():
        text = "~" + text
    return Frame("not_json", text, "invalid_json")


def _truncated(rng: random.Random, n: int) -> Frame:
    whole = json.dumps({"type": "chat", "message": _text(rng, 40), "request_id": f"t{n}"})
    return Frame("truncated_json", whole[: rng.randint(1, len(whole) - 1)], "invalid_json")


def _not_object(rng: random.Random, n: int) -> Frame:
    value = rng.choice([[], [1, 2], "chat", 42, -1.5, None, True, [{"type": "chat"}]])
    return Frame("not_object", json.dumps(value), "invalid_json")


def _strict_json(rng: random.Random, n: int) -> Frame:
    deep = "[" * (MAX_DEPTH + rng.randint(1, 500))
    text = rng.choice(
        [
            '{"type": "chat", "message": "a", "message": "b"}',
            '{"type": "chat", "message": "hi", "temperature": NaN}',
            '{"type": "chat", "message": "hi", "temperature": -Infinity}',
            '{"type": "chat", "message": "hi", "max_tokens": 1e999}',
            '{"type": "chat", "message": "hi", "request_id": "\\ud800"}',
            '{"type": "chat", "x": ' + deep + "]" * len(deep) + "}",
            "\ufeff{}",
        ]
    )
    return Frame("strict_json", text, "invalid_json")


def _wrong_type(rng: random.Random, n: int) -> Frame:
    rid = f"w{n}"
    body: dict[str, object] = rng.choice(
        [
            {"type": rng.choice([5, None, [], {}, True, 1.5])},
            {"message": "no type"},
            {"type": "chat", "message": rng.choice([1, None, [], {}, True])},
            {"type": "chat", "message": "hi", "max_tokens": rng.choice(["5", 5.5, True, [], -1, 0, 10**9])},
            {"type": "chat", "message": "hi", "temperature": rng.choice(["hot", True, [], 3, -0.1])},
            {"type": "chat", "messages": rng.choice([[], "hi", [{"role": "robot", "content": "x"}], [1]])},
            {"type": "chat", "message": "hi", "provider": rng.choice(["nope", 7, ""])},
            {"type": "chat", "message": "hi", "model": rng.choice(["gpt-9", 3])},
            {"type": "chat", "message": "   "},
            {"type": "chat", "message": "ctrl \x00\x07\x1b" + _word(rng)},
            {"type": "chat", "message": "hi", "mesage": "typo"},
            {"type": "cancel", "stream_id": rng.choice([1, [], "", "x" * 200])},
            {"type": "cancel", "extra": 1},
            {"type": "resume", "stream_id": rng.choice([None, 5, ""]), "after_seq": "x"},
        ]
    )
    if rng.random() < 0.5 and "type" in body and isinstance(body["type"], str):
        body["request_id"] = rid
    return Frame("wrong_type", json.dumps(body), "invalid_request")


def _unknown_type(rng: random.Random, n: int) -> Frame:
    kind = rng.choice(["Chat", "CHAT", "subscribe", "ping", "", " chat", _text(rng, rng.randint(1, 300))])
    return Frame("unknown_type", json.dumps({"type": kind, "request_id": f"u{n}"}), "unknown_type", f"u{n}")


def _unknown_stream(rng: random.Random, n: int) -> Frame:
    kind = rng.choice(["cancel", "resume"])
    body: dict[str, str | int] = {"type": kind, "stream_id": f"00000000-0000-4000-8000-{n:012d}", "request_id": f"s{n}"}
    if kind == "resume":
        body["after_seq"] = 0
    return Frame("unknown_stream", json.dumps(body), "stream_not_found", f"s{n}")


def _huge(rng: random.Random, n: int) -> Frame:
    if rng.random() < 0.15:  # over API Gateway's 128 KB message limit: the socket closes (1009)
        return Frame("oversize", "x" * (MAX_PAYLOAD + rng.randint(1, 4096)), "close")
    size = rng.randint(3000, MAX_PAYLOAD - 200)  # over MAX_MESSAGE_CHARS, under the frame limit
    return Frame("huge_string", json.dumps({"type": "chat", "message": "y" * size}), "invalid_request")


MALFORMED: list[tuple[Callable[[random.Random, int], Frame], int]] = [
    (_random_bytes, 12),
    (_not_json, 12),
    (_truncated, 12),
    (_not_object, 6),
    (_strict_json, 10),
    (_wrong_type, 20),
    (_unknown_type, 10),
    (_unknown_stream, 6),
    (_huge, 4),
]


def frame(rng: random.Random, n: int, valid_share: float = 0.1) -> Frame:
    if rng.random() < valid_share:
        return chat(rng, n)
    makers, weights = [maker for maker, _ in MALFORMED], [weight for _, weight in MALFORMED]
    return rng.choices(makers, weights)[0](rng, n)
