"""Lambda, as far as the local gateway needs it: run functions in execution environments.

- ``LambdaContext``: the parts of Lambda's context object the functions use
  (``get_remaining_time_in_millis`` counts down from the function's timeout).
- ``LocalLambda``: a thread is an execution environment (one invocation at a
  time, its state kept between invocations, as Lambda keeps a warm one). Route
  integrations are called and awaited; ``POST /2015-03-31/functions/{name}/invocations``
  serves Lambda's Invoke API for the functions it knows: ``Event`` answers 202 and
  runs the function in the background, ``RequestResponse`` answers its result,
  ``DryRun`` 204; unknown functions get ``ResourceNotFoundException``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("tokenrelay.gateway")
Handler = Callable[[dict[str, Any], Any], Any]
MAX_ASYNC_PAYLOAD = 256 * 1024  # Lambda: 256 KB per async invoke


def aws_error(status: int, code: str, message: str) -> Response:
    """An error the way AWS's REST-JSON APIs answer it (botocore reads ``x-amzn-ErrorType``)."""
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code})


class LambdaContext:
    def __init__(self, function_name: str, timeout_s: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalLambda:
    def __init__(self, functions: Mapping[str, Handler], timeout_s: float = 900.0, concurrency: int = 64) -> None:
        self.functions = dict(functions)
        self.timeout_s = timeout_s  # of the functions invoked through the Invoke API
        self.async_invocations = 0
        self._integrations = ThreadPoolExecutor(32, thread_name_prefix="lambda-route")
        # Async invocations running at once (a worker streams for its whole stream); Lambda's default is 1,000.
        self._background = ThreadPoolExecutor(concurrency, thread_name_prefix="lambda-async")
        self._running: set[Future[Any]] = set()

    def call(self, handler: Handler, event: dict[str, Any], name: str, timeout_s: float) -> asyncio.Future[Any]:
        """Start ``handler`` in an execution environment; the caller decides how long to wait."""
        context = LambdaContext(name, timeout_s)
        return asyncio.get_running_loop().run_in_executor(self._integrations, handler, event, context)

    async def invoke(self, request: Request) -> Response:
        name = request.path_params["function"]
        name = name.split(":")[6] if name.startswith("arn:") else name
        function = self.functions.get(name)
        if function is None:
            return aws_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        payload = await request.body()
        try:
            event = json.loads(payload or b"{}")
        except ValueError:
            return aws_error(400, "InvalidRequestContentException", "Could not parse request body into json")
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if kind == "DryRun":
            return Response(status_code=204)
        context = LambdaContext(name, self.timeout_s)
        if kind != "Event":
            result = await asyncio.to_thread(function, event, context)
            return JSONResponse(result, headers={"X-Amz-Executed-Version": "$LATEST"})
        if len(payload) > MAX_ASYNC_PAYLOAD:
            return aws_error(413, "RequestEntityTooLargeException", "Request must be smaller than 262144 bytes")
        self.async_invocations += 1
        future = self._background.submit(function, event, context)
        self._running.add(future)
        future.add_done_callback(self._done)
        return Response(status_code=202)

    def _done(self, future: Future[Any]) -> None:
        self._running.discard(future)
        if future.exception() is not None:
            log.error("async invocation failed", exc_info=future.exception())

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def shutdown(self) -> None:
        self._integrations.shutdown(wait=False, cancel_futures=True)
        self._background.shutdown(wait=False, cancel_futures=True)
