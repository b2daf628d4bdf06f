"""Cold start of the built functions: import time in a fresh Python 3.12, with and without bytecode.

Builds the template for this machine's architecture with the SAM CLI of
``scripts/bootstrap-sam`` (the build and its cache in this checkout's ``.aws-sam/bench-host``;
``.venv-sam`` may be shared between checkouts and is only read), copies the build twice
(source only, as ``sam build`` ships it; and compiled by ``scripts/compile-bytecode``),
then for each function starts fresh ``python3.12 -S`` processes that see only the
build (layer, function, and boto3 as the runtime provides it) and times the
handler module's import. ``PYTHONDONTWRITEBYTECODE`` stands in for Lambda's
read-only code directories. Also: process start to first ``/health`` of the
streaming app under uvicorn, from the build, against moto's DynamoDB server.

    scripts/bench bytecode [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-sam"
WORK = ROOT / ".aws-sam" / "bench-host"  # everything this benchmark writes
PYTHON = VENV / "bin" / "python3.12"
HANDLERS = {  # function -> module the runtime (or uvicorn) imports first
    "StreamFunction": "app",
    "ApiFunction": "handler",
    "ConnectFunction": "connect",
    "MessageFunction": "message",
    "DisconnectFunction": "disconnect",
    "WorkerFunction": "worker",
}
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")
ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_EC2_METADATA_DISABLED": "true",
    "STREAMS_TABLE": "tokenrelay-streams",
    "CONNECTIONS_TABLE": "tokenrelay-connections",
    "WORKER_FUNCTION_NAME": "tokenrelay-worker",
    "API_KEYS_TABLE": "tokenrelay-api-keys",  # AUTH_MODE defaults to api_key in Lambda, as deployed
    "RATE_LIMITS_TABLE": "tokenrelay-rate-limits",
    "METRICS_ENABLED": "true",
    "LOG_JSON": "true",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def build() -> Path:
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    text = (ROOT / "template.yaml").read_text()
    text = re.sub(r"Architectures: \[arm64\]", f"Architectures: [{arch}]", text)
    text = text.replace("BuildArchitecture: arm64", f"BuildArchitecture: {arch}")
    text = re.sub(r"(CodeUri|ContentUri): (\S+)", lambda m: f"{m[1]}: {ROOT / m[2]}", text)
    template = WORK / "template.yaml"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(text)
    out = WORK / "build"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{VENV / 'bin'}:{env['PATH']}", AWS_EC2_METADATA_DISABLED="true", SAM_CLI_TELEMETRY="0")
    env["TOKENRELAY_LAYER_ARCH"] = arch  # the core layer's Makefile builds for arm64 unless told otherwise
    cmd = [str(VENV / "bin" / "sam"), "build", "--template-file", str(template), "--build-dir", str(out)]
    cmd += ["--cache-dir", str(WORK / "cache"), "--cached", "--parallel"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return out


def runtime_dir() -> Path:
    site = subprocess.run(
        [str(PYTHON), "-c", "import boto3, os; print(os.path.dirname(os.path.dirname(boto3.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    runtime = WORK / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        if not (runtime / name).exists() and (Path(site) / name).exists():
            (runtime / name).symlink_to(Path(site) / name)
    return runtime


def import_time(build_dir: Path, function: str, runtime: Path) -> float:
    module = HANDLERS[function]
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {
        **ENV,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{build_dir / function}:{build_dir / 'CoreLayer/python'}:{runtime}",
    }
    env["AWS_LAMBDA_FUNCTION_NAME"] = function
    out = subprocess.run([str(PYTHON), "-S", "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health_time(build_dir: Path, runtime: Path, ddb: str) -> float:
    port = free_port()
    fn = build_dir / "StreamFunction"
    env = {**ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": f"{fn}:{build_dir / 'CoreLayer/python'}:{runtime}"}
    env.update(AWS_LAMBDA_FUNCTION_NAME="StreamFunction", AWS_ENDPOINT_URL_DYNAMODB=ddb)
    t0 = time.perf_counter()
    cmd = [str(PYTHON), "-S", "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    proc = subprocess.Popen([*cmd, "app:app"], env=env, cwd=fn, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < 30:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                time.sleep(0.005)
        raise RuntimeError("no /health within 30 s")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not PYTHON.exists():
        sys.exit("bytecode: no .venv-sam/bin/python3.12 (run scripts/bootstrap-sam with Python 3.12 available)")
    built, runtime = build(), runtime_dir()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-cold-") as tmp:
        source, compiled = Path(tmp) / "source", Path(tmp) / "compiled"
        shutil.copytree(built, source, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(source, compiled, symlinks=True)
        subprocess.run(
            [str(PYTHON), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(compiled)],
            check=True,
        )
        print(f"Cold import in a fresh Python 3.12 (-S, build only), median of {args.runs} runs\n")
        print("| function | module | source only (sam build) | with bytecode | saved |")
        print("|---|---|---:|---:|---:|")
        for function, module in HANDLERS.items():
            a = statistics.median(import_time(source, function, runtime) for _ in range(args.runs))
            b = statistics.median(import_time(compiled, function, runtime) for _ in range(args.runs))
            print(f"| {function} | `{module}` | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {(a - b) * 1000:.0f} ms |")
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            ddb = f"http://{host}:{port}"
            a = statistics.median(health_time(source, runtime, ddb) for _ in range(args.runs))
            b = statistics.median(health_time(compiled, runtime, ddb) for _ in range(args.runs))
        finally:
            server.stop()
        print("\n| StreamFunction under uvicorn | source only | with bytecode |")
        print("|---|---:|---:|")
        print(f"| process start to first /health | {a * 1000:.0f} ms | {b * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
