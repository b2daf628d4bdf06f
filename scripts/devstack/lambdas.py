"""Lambda, as far as the local gateway needs it: its Invoke API for the worker.

- ``LambdaContext``: the parts of Lambda's context object the functions use
  (``get_remaining_time_in_millis`` counts down from the function's timeout), for
  functions run in this process (``local_functions.InProcessFunction``).
- ``LocalLambda``: ``POST /2015-03-31/functions/{name}/invocations`` serves Lambda's
  Invoke API for the functions it knows (``local_functions.py``: each in its own process
  environments, or in-process): ``Event`` answers 202 and runs the function in the
  background, ``RequestResponse`` answers its result, ``DryRun`` 204; unknown functions
  get ``ResourceNotFoundException``. With an ``Authorizer`` (``identities.py``) the caller
  must be an identity whose policies allow ``lambda:InvokeFunction`` on the function's ARN,
  as Lambda requires: otherwise 403 ``AccessDeniedException``, logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("tokenrelay.gateway")
MAX_ASYNC_PAYLOAD = 256 * 1024  # Lambda: 256 KB per async invoke
REGION, ACCOUNT_ID = "us-east-1", "123456789012"


def aws_error(status: int, code: str, message: str) -> Response:
    """An error the way AWS's REST-JSON APIs answer it (botocore reads ``x-amzn-ErrorType``)."""
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code})


def request_url(request: Request) -> str:
    """The URL as the client signed it: its Host header and the raw (still percent-encoded) path."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    host = request.headers.get("host", "")
    return f"http://{host}{raw.decode('latin-1')}" + (f"?{query.decode('latin-1')}" if query else "")


class LambdaContext:
    def __init__(self, function_name: str, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalLambda:
    def __init__(self, functions: dict[str, Any], timeout_s: float = 900.0, authorizer: Any = None) -> None:
        self.functions = functions  # name -> functions.Function
        self.timeout_s = timeout_s  # of the functions invoked through the Invoke API
        self.authorizer = authorizer  # identities.Authorizer, or None: anyone may invoke
        self.async_invocations = 0
        self._running: set[asyncio.Task[Any]] = set()

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["function"]
        name = name.split(":")[6] if name.startswith("arn:") else name
        payload = await request.body()
        if self.authorizer is not None:
            from scripts.devstack.identities import Denied

            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
            try:
                self.authorizer.authorize(
                    "POST", request_url(request), request.headers, payload, "lambda:InvokeFunction", arn
                )
            except Denied as exc:
                return aws_error(exc.status, exc.code, exc.message)
        function = self.functions.get(name)
        if function is None:
            return aws_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        try:
            event = json.loads(payload or b"{}")
        except ValueError:
            return aws_error(400, "InvalidRequestContentException", "Could not parse request body into json")
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if kind == "DryRun":
            return Response(status_code=204)
        if kind != "Event":
            result = await function.invoke(event, self.timeout_s)
            return JSONResponse(result, headers={"X-Amz-Executed-Version": "$LATEST"})
        if len(payload) > MAX_ASYNC_PAYLOAD:
            return aws_error(413, "RequestEntityTooLargeException", "Request must be smaller than 262144 bytes")
        self.async_invocations += 1
        task = asyncio.get_running_loop().create_task(function.invoke(event, self.timeout_s))
        self._running.add(task)
        task.add_done_callback(self._done)
        return Response(status_code=202)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async invocation failed: %s", task.exception())

    @property
    def busy(self) -> bool:
        return bool(self._running)

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await asyncio.gather(*(f.close() for f in self.functions.values()), return_exceptions=True)
