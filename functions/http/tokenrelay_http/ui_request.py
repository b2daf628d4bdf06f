"""``useChat``'s request body (docs/ai-sdk.md) -> a validated ``tokenrelay.ChatRequest``.

The AI SDK's ``DefaultChatTransport`` POSTs ``{id, messages, trigger, messageId?}`` plus
whatever the app puts in its ``body`` option. Here those extra fields are TokenRelay's
request fields (docs/protocol.md §1: ``system provider model max_tokens temperature tools
tool_choice parallel_tool_calls reasoning``); any other field is a 400 naming it.

``messages`` are UI messages (``{id, role, parts}``), translated as the AI SDK's own
``convertToModelMessages`` does, into the messages of §1 and §11:

- ``system`` / ``user``: their ``text`` parts, joined (a user turn's with a newline);
- ``assistant``: each step (parts between ``step-start`` markers) is one assistant message
  (its text, its tool calls, its signed reasoning as ``thinking_blocks``), then one ``tool``
  message per call with a result (``output-available``: the output, a string as is, else its
  JSON; ``output-error``: the error text; ``output-denied``: a denial);
- skipped, as ``convertToModelMessages`` skips them: ``step-start``, ``data-*``, sources, a
  tool call still ``input-streaming`` (cut by a stop), and unsigned reasoning (no provider takes
  it back: /v1 drops ``reasoning_content`` the same way);
- refused (400 naming the part): files, and a finished call with no result yet.

The parts' other fields are the SDK's (they vary with its version) and are not checked. The
result goes through the same ``parse_chat_request`` as ``/chat/stream``, so the same limits,
allow-list and provider rules apply; its errors name the UI message they came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokenrelay import ChatRequest, RequestInvalid, Settings, parse_chat_request

__all__ = ["UIChatRequest", "check_chat_id", "parse_ui_request"]

_CHAT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_NATIVE = frozenset(
    "system provider model max_tokens temperature tools tool_choice parallel_tool_calls reasoning".split()
)
_TRIGGERS = ("submit-message", "regenerate-message")
_SKIPPED = frozenset({"step-start", "source-url", "source-document"})
_DENIED = "Tool call execution denied."


@dataclass(frozen=True, slots=True)
class UIChatRequest:
    chat_id: str
    chat: ChatRequest
    continues: str | None = None  # the last message's id when it is the assistant's (its tool results came back)


def check_chat_id(value: object, field: str = "id") -> str:
    if not isinstance(value, str) or not _CHAT_ID.fullmatch(value):
        raise RequestInvalid(field, "expected a chat id: 1 to 128 letters, digits, '_', '-', '.' or ':'")
    return value


def parse_ui_request(body: Any, settings: Settings) -> UIChatRequest:
    if not isinstance(body, Mapping):
        raise RequestInvalid("body", "expected a JSON object")
    for name in body:
        if name not in _NATIVE and name not in ("id", "messages", "trigger", "messageId"):
            raise RequestInvalid(name, "unknown field")
    chat_id = check_chat_id(body.get("id"))
    trigger = body.get("trigger", "submit-message")
    if trigger not in _TRIGGERS:
        raise RequestInvalid("trigger", f"must be one of {', '.join(_TRIGGERS)}; got {trigger!r}")
    if body.get("messageId") is not None and not isinstance(body["messageId"], str):
        raise RequestInvalid("messageId", "expected a string")
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise RequestInvalid("messages", "field required: a list of UI messages")
    if len(raw) > settings.max_messages:  # counted as sent, before steps and tool results add turns
        raise RequestInvalid("messages", f"at most {settings.max_messages} messages are allowed")
    translated = _Messages()
    for i, message in enumerate(raw):
        translated.add(f"messages.{i}", message)
    native = {name: body[name] for name in _NATIVE if name in body}
    try:
        chat = parse_chat_request({**native, "messages": translated.out}, settings)
    except RequestInvalid as exc:
        raise translated.rename(exc) from None
    last = raw[-1] if raw else None
    continues = last.get("id") if isinstance(last, Mapping) and last.get("role") == "assistant" else None
    return UIChatRequest(chat_id, chat, continues if isinstance(continues, str) and continues else None)


class _Messages:
    """UI messages -> §1 messages, remembering which UI message each came from."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.origin: list[str] = []

    def rename(self, exc: RequestInvalid) -> RequestInvalid:
        """An error about translated message ``n`` names the UI message it came from."""
        match = re.fullmatch(r"messages\.(\d+)(\..*)?", exc.field)
        if match is None or int(match.group(1)) >= len(self.origin):
            return exc
        where = self.origin[int(match.group(1))]
        message = str(exc).split(": ", 1)[-1]
        return RequestInvalid(where if match.group(2) in (None, ".content") else where + match.group(2), message)

    def emit(self, where: str, message: dict[str, Any]) -> None:
        self.out.append(message)
        self.origin.append(where)

    def add(self, where: str, message: object) -> None:
        if not isinstance(message, Mapping):
            raise RequestInvalid(where, "expected a UI message: {id, role, parts}")
        role, parts = message.get("role"), message.get("parts")
        if role not in ("system", "user", "assistant"):
            raise RequestInvalid(f"{where}.role", f"must be one of system, user, assistant; got {role!r}")
        if not isinstance(parts, list):
            raise RequestInvalid(f"{where}.parts", "field required: a list of parts")
        typed = [(f"{where}.parts.{j}", _part_type(f"{where}.parts.{j}", p), p) for j, p in enumerate(parts)]
        if role != "assistant":
            texts = [_text(at, p) for at, kind, p in typed if _kept(at, kind, role)]
            self.emit(where, {"role": role, "content": ("" if role == "system" else "\n").join(texts)})
            return
        step: list[tuple[str, str, Mapping[str, Any]]] = []
        for item in typed:
            if item[1] == "step-start":
                self._step(where, step)
                step = []
            elif _kept(*item[:2], role):
                step.append(item)
        self._step(where, step)

    def _step(self, where: str, parts: list[tuple[str, str, Mapping[str, Any]]]) -> None:
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[dict[str, str]] = []
        results: list[dict[str, Any]] = []
        for at, kind, part in parts:
            if kind == "text":
                text.append(_text(at, part))
            elif kind == "reasoning":
                block = _thinking_block(at, part)
                if block is not None:
                    thinking.append(block)
            else:
                call, result = _tool(at, kind, part)
                if call is not None:
                    calls.append(call)
                if result is not None:
                    results.append(result)
        if not (text or calls or thinking):
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["thinking_blocks"] = thinking
        self.emit(where, message)
        for result in results:
            self.emit(where, result)


def _part_type(at: str, part: object) -> str:
    if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
        raise RequestInvalid(f"{at}.type", "expected a UI message part with a string 'type'")
    return str(part["type"])


def _kept(at: str, kind: str, role: str) -> bool:
    """Whether a part goes to the model; a part TokenRelay cannot send is a 400, never dropped."""
    if kind in _SKIPPED or kind.startswith("data-"):
        return False
    if kind == "text" or (role == "assistant" and (kind == "reasoning" or _is_tool(kind))):
        return True
    if kind == "file":
        raise RequestInvalid(f"{at}.type", "file parts are not supported: text, reasoning and tool parts only")
    raise RequestInvalid(f"{at}.type", f"a {role} message cannot carry a {kind!r} part here")


def _is_tool(kind: str) -> bool:
    return kind == "dynamic-tool" or kind.startswith("tool-")


def _string(at: str, part: Mapping[str, Any], name: str) -> str:
    value = part.get(name)
    if not isinstance(value, str):
        raise RequestInvalid(f"{at}.{name}", "expected a string")
    return value


def _text(at: str, part: Mapping[str, Any]) -> str:
    return _string(at, part, "text")


def _thinking_block(at: str, part: Mapping[str, Any]) -> dict[str, str] | None:
    """Reasoning TokenRelay signed (``providerMetadata.tokenrelay``) goes back as a thinking block."""
    meta = part.get("providerMetadata")
    ours = meta.get("tokenrelay") if isinstance(meta, Mapping) else None
    if not isinstance(ours, Mapping):
        return None
    if isinstance(ours.get("redactedData"), str):
        return {"type": "redacted_thinking", "data": ours["redactedData"]}
    if isinstance(ours.get("signature"), str):
        return {"type": "thinking", "thinking": _text(at, part), "signature": ours["signature"]}
    return None


def _tool(at: str, kind: str, part: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A tool part -> its call (unless still streaming its input) and its result message."""
    state = _string(at, part, "state")
    if state == "input-streaming":
        return None, None
    call_id = _string(at, part, "toolCallId")
    name = _string(at, part, "toolName") if kind == "dynamic-tool" else kind[len("tool-") :]
    value = part.get("input")
    if state == "output-error" and value is None:
        value = part.get("rawInput")
    arguments = value if isinstance(value, str) else json.dumps({} if value is None else value)
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if state == "output-available":
        output = part.get("output")
        content = output if isinstance(output, str) else json.dumps(output)
    elif state == "output-error":
        content = _string(at, part, "errorText")
    elif state == "output-denied":
        approval = part.get("approval")
        reason = approval.get("reason") if isinstance(approval, Mapping) else None
        content = reason if isinstance(reason, str) else _DENIED
    else:
        why = "has no output: give its result (addToolOutput) before sending, or leave the call out"
        raise RequestInvalid(f"{at}.output", f"tool call {call_id!r} ({state}) {why}")
    return call, {"role": "tool", "tool_call_id": call_id, "content": content}
