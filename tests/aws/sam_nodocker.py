"""`sam local start-api` and `sam local invoke`, the SAM CLI's own code, with Docker left out.

    .venv-sam/bin/python3.12 tests/aws/sam_nodocker.py local start-api --port 3000 ...
    .venv-sam/bin/python3.12 tests/aws/sam_nodocker.py local invoke ApiFunction -e event.json ...

runs the real ``sam`` command line (its options, samconfig.toml, the template's routes, the
``--env-vars`` merge, the Flask server, the payload 2.0 events, the response parsing) with
one part replaced: the Lambda runtime that would start a Docker container. ``ProcessRuntime``
runs the function from the build instead, in a fresh Python 3.12 (this one, ``-S``: no
site-packages) with the function's code, its layers' ``python/`` and the runtime's boto3
on ``sys.path``, the environment SAM resolved for the container, and
``scripts/devstack/lambda_runtime.py`` as the runtime loop. One process per function,
reused (as ``--warm-containers LAZY``). Run with ``.venv-sam``'s Python: it imports samcli.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "scripts" / "devstack" / "lambda_runtime.py"


class Environment:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        read_fd, write_fd = os.pipe()
        env = {**env, "TOKENRELAY_RUNTIME_FD": str(write_fd)}
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, pass_fds=(write_fd,))
        os.close(write_fd)
        self.answers = os.fdopen(read_fd, "rb")
        first = self.answer(60)
        if first is None or "ready" not in first:
            raise RuntimeError(f"the function did not start: {first}")

    def answer(self, timeout_s: float) -> dict[str, Any] | None:
        ready, _, _ = select.select([self.answers], [], [], timeout_s)
        line = self.answers.readline() if ready else b""
        return json.loads(line) if line else None

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.answers.close()


class ProcessRuntime:
    """Stands in for ``samcli.local.lambdafn.runtime.LambdaRuntime`` (which runs Docker)."""

    def __init__(self, runtime_path: str) -> None:
        self.runtime_path = runtime_path
        self.envs: dict[str, Environment] = {}
        self.lock = threading.Lock()  # one invocation per environment, as a container

    def _start(self, config: Any) -> Environment:
        code = Path(config.code_abs_path)
        layers = [Path(layer.codeuri) for layer in config.layers]
        layers = [p if p.is_absolute() else code.parent / p for p in layers]
        env = {k: str(v) for k, v in config.env_vars.resolve().items()}  # what the container would get
        env["PATH"] = "/usr/bin:/bin"
        env["PYTHONPATH"] = ":".join([str(code), *(str(p / "python") for p in layers), self.runtime_path])
        env["PYTHONNOUSERSITE"] = "1"
        argv = [sys.executable, "-S", str(RUNTIME), config.handler]
        return Environment(argv, env, str(code))

    def invoke(self, function_config: Any, event: str, tenant_id: Any = None, **kw: Any) -> None:
        stdout = kw.get("stdout")
        with self.lock:
            env = self.envs.get(function_config.full_path)
            if env is None or env.proc.poll() is not None:
                env = self.envs[function_config.full_path] = self._start(function_config)
            name = function_config.name
            invocation = {
                "event": json.loads(event),
                "request_id": str(uuid.uuid4()),
                "deadline_ms": int((time.time() + function_config.timeout) * 1000),
                "function_name": name,
                "arn": f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
                "memory_mb": int(function_config.memory),
            }
            assert env.proc.stdin is not None
            env.proc.stdin.write(json.dumps(invocation).encode() + b"\n")
            env.proc.stdin.flush()
            answer = env.answer(function_config.timeout)
            if answer is None:  # timed out: the container is stopped, as Lambda stops it
                env.stop()
                del self.envs[function_config.full_path]
                answer = {"error": {"errorType": "TimeoutError", "errorMessage": "Task timed out"}}
        # What the runtime interface emulator answers: the result, or Lambda's error object.
        body = answer["error"] if "error" in answer else answer["result"]
        if stdout is not None:
            stdout.write_str(json.dumps(body))
            stdout.flush()

    def run(self, *args: Any, **kw: Any) -> None:  # EAGER warm containers: started on first use here
        return None

    def clean_runtime_containers(self) -> None:
        with self.lock:
            for env in self.envs.values():
                env.stop()
            self.envs.clear()


def main(argv: list[str]) -> int:
    from samcli.cli.main import cli
    from samcli.commands.local.cli_common.invoke_context import InvokeContext
    from samcli.commands.local.lib import local_api_service

    runtime = ProcessRuntime(os.environ["SAM_NODOCKER_RUNTIME_PATH"])
    InvokeContext.lambda_runtime = property(lambda self: runtime)
    InvokeContext._get_container_manager = staticmethod(lambda *a: None)
    started = local_api_service.LocalApiService._print_routes

    def print_routes(*args: Any, **kw: Any) -> Any:  # the server is about to listen: say so
        lines = started(*args, **kw)
        print(json.dumps({"routes": lines}), file=sys.stderr, flush=True)
        return lines

    local_api_service.LocalApiService._print_routes = staticmethod(print_routes)
    try:
        cli.main(argv, prog_name="sam", standalone_mode=False)
    finally:
        runtime.clean_runtime_containers()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
