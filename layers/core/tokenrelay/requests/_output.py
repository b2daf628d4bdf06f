"""Structured output (docs/protocol.md §14): ``response_format`` in OpenAI's shape.

    {"type": "text"}                                  the default: no constraint
    {"type": "json_object"}                           any JSON object
    {"type": "json_schema", "json_schema": {"name", "schema", "strict"?, "description"?}}

OpenAI takes both natively. Anthropic (``output_config.format``) and Bedrock
(``outputConfig.textFormat``) constrain output only to a schema: ``json_object`` is a 400
naming the provider there (``_capabilities``), as is a model whose capabilities say no.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ..errors import RequestInvalid

__all__ = ["ResponseFormat", "ResponseFormatBody", "response_format_of"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # OpenAI's rule for json_schema.name


class JsonSchemaBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: StrictStr
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None
    description: StrictStr | None = None


class ResponseFormatBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaBody | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: Literal["json_object", "json_schema"]
    name: str = ""
    schema: str = ""  # the JSON Schema as compact JSON text (hashable; Bedrock takes it as text)
    strict: bool | None = None
    description: str | None = None

    def schema_dict(self) -> dict[str, Any]:
        return json.loads(self.schema) if self.schema else {"type": "object"}

    def as_openai(self) -> dict[str, Any]:
        """The ``response_format`` field, as OpenAI (and the request body) take it."""
        if self.kind == "json_object":
            return {"type": "json_object"}
        spec: dict[str, Any] = {"name": self.name, "schema": self.schema_dict()}
        if self.strict is not None:
            spec["strict"] = self.strict
        if self.description is not None:
            spec["description"] = self.description
        return {"type": "json_schema", "json_schema": spec}


def response_format_of(raw: ResponseFormatBody | None) -> ResponseFormat | None:
    """The checked ``response_format``; None for ``text`` (no constraint)."""
    if raw is None or raw.type == "text":
        if raw is not None and raw.json_schema is not None:
            raise RequestInvalid("response_format.json_schema", "only with type json_schema")
        return None
    if raw.type == "json_object":
        if raw.json_schema is not None:
            raise RequestInvalid("response_format.json_schema", "only with type json_schema")
        return ResponseFormat("json_object")
    spec = raw.json_schema
    if spec is None:
        raise RequestInvalid("response_format.json_schema", "field required for type json_schema")
    if not _NAME.fullmatch(spec.name):
        raise RequestInvalid("response_format.json_schema.name", "must be 1 to 64 letters, digits, '_' or '-'")
    schema = spec.schema_ if spec.schema_ is not None else {"type": "object"}
    if schema.get("type", "object") != "object":
        raise RequestInvalid("response_format.json_schema.schema", "must be a JSON Schema of type object")
    text = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return ResponseFormat("json_schema", spec.name, text, spec.strict, spec.description)
