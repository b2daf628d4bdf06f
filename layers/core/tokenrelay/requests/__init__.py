"""Chat requests: the body of docs/protocol.md §1 validated into a ``ChatRequest``.

_chat          the body, its messages and the deployment's limits (``parse_chat_request``)
_tools         tools, tool calls, tool choice, reasoning and thinking blocks (§11)
_content       content parts: text and images (with a cache marker)
_images        image parts: data: URLs checked to the byte, https URLs to a public host
_sampling      top_p, seed, stop, penalties, user
_output        response_format: structured output
_capabilities  what each provider and model can do: anything else is a 400
"""

from ._capabilities import EFFORT_BUDGETS, check_capabilities, thinking_budget
from ._chat import ChatRequest, Message, Role, _Body, parse_chat_request
from ._content import ContentPart, ImagePart, TextPart
from ._fields import request_fields
from ._output import ResponseFormat
from ._tools import EFFORTS, Reasoning, ThinkingBlock, Tool, ToolCall, ToolChoice

__all__ = [
    "EFFORTS",
    "EFFORT_BUDGETS",
    "ImagePart",
    "ChatRequest",
    "ContentPart",
    "Message",
    "Reasoning",
    "ResponseFormat",
    "Role",
    "TextPart",
    "ThinkingBlock",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "_Body",
    "check_capabilities",
    "parse_chat_request",
    "request_fields",
    "thinking_budget",
]
