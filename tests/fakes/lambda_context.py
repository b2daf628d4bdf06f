"""Lambda's context object, as Mangum types it (``mangum.types.LambdaContext``), for tests."""

from __future__ import annotations

from dataclasses import dataclass

from mangum.types import LambdaCognitoIdentity, LambdaMobileClientContext


@dataclass
class LambdaContext:
    remaining_ms: int = 30_000  # what get_remaining_time_in_millis() answers
    function_name: str = "tokenrelay-api"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:tokenrelay-api"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/tokenrelay-api"
    log_stream_name: str = "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef"
    identity: LambdaCognitoIdentity | None = None
    client_context: LambdaMobileClientContext | None = None

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
