"""What `sam local start-api` and `sam local invoke` run, without Docker (docs/deploy.md, "Testing with SAM CLI").

The SAM CLI's own commands (``tests/aws/sam_nodocker.py``: its route table, payload 2.0
events, ``--env-vars`` merge and response parsing) drive the *built* ApiFunction (the
session's ``sam build``) in a fresh Python 3.12, with the shipped ``sam-local-env.json``
and the DynamoDB of ``scripts/local-dynamodb`` (IAM enforced), run with ApiFunction's
credentials as that script says: what its role grants, nothing more. Only the container is
missing: the one value changed in the env-vars file is the DynamoDB endpoint,
``host.docker.internal`` as a container sees this machine, here ``127.0.0.1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.devstack.httpapi_routes import routes_from_template
from tests.aws import sam_build
from tests.aws.sam_build import PYTHON, runtime_path
from tests.aws.schema import ROOT, load_template
from tests.fakes.route_samples import sample_request
from tests.fakes.servers import free_port

pytestmark = [pytest.mark.sam, pytest.mark.skipif(not sam_build.AVAILABLE, reason=sam_build.SKIP_REASON)]

ENV_VARS = ROOT / "sam-local-env.json"
SHIPPED_ENDPOINT = "http://host.docker.internal:8010"
DRIVER = ROOT / "tests" / "aws" / "sam_nodocker.py"


def stop(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a terminal sends it to the foreground job; then for good."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


@dataclass(frozen=True)
class LocalDynamo:
    port: int
    token: str  # an API key
    credentials: dict[str, str]  # ApiFunction's, as the script prints them for the sam shell


@pytest.fixture(scope="module")
def local_dynamodb() -> Iterator[LocalDynamo]:
    """``scripts/local-dynamodb`` as docs/deploy.md runs it (on 127.0.0.1 here): its port, an API
    key and ApiFunction's credentials."""
    port = free_port()
    cmd = [str(ROOT / "scripts" / "local-dynamodb"), "--host", "127.0.0.1", "--port", str(port)]
    out = subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        output, deadline = "", time.monotonic() + 120
        while "Press Ctrl-C" not in output:
            assert time.monotonic() < deadline and proc.poll() is None, output
            output += proc.stdout.readline()
        token = re.search(r"TOKEN=(trk_\S+)", output)
        keys = re.search(r"export (AWS_ACCESS_KEY_ID=\S+ AWS_SECRET_ACCESS_KEY=\S+)", output)
        assert token and keys, output
        credentials = dict(pair.split("=", 1) for pair in keys[1].split())
        yield LocalDynamo(port, token[1], credentials)
    finally:
        stop(proc)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


@pytest.fixture(scope="module")
def env_vars(local_dynamodb: LocalDynamo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shipped = json.loads(ENV_VARS.read_text())
    assert shipped["Parameters"]["AWS_ENDPOINT_URL_DYNAMODB"] == SHIPPED_ENDPOINT
    shipped["Parameters"]["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://127.0.0.1:{local_dynamodb.port}"
    path = tmp_path_factory.mktemp("sam-local") / "env.json"
    path.write_text(json.dumps(shipped))
    return path


def driver_env(credentials: dict[str, str] | None = None) -> dict[str, str]:
    """A clean shell: SAM gives the functions this shell's credentials (ApiFunction's, as
    ``scripts/local-dynamodb`` says to export), and any variable the template declares that
    this shell sets would override the template."""
    return {
        "PATH": f"{PYTHON.parent}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "sam-local",
        "AWS_SECRET_ACCESS_KEY": "sam-local",
        **(credentials or {}),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "SAM_CLI_TELEMETRY": "0",
        "SAM_NODOCKER_RUNTIME_PATH": runtime_path(),
    }


def sam(local: LocalDynamo, *args: str, **kw: Any) -> subprocess.Popen[str]:
    env = driver_env(local.credentials)
    return subprocess.Popen([str(PYTHON), str(DRIVER), *args], cwd=ROOT, env=env, text=True, **kw)


@pytest.fixture(scope="module")
def start_api(
    sam_builds: dict[str, Path], env_vars: Path, local_dynamodb: LocalDynamo
) -> Iterator[tuple[str, list[str]]]:
    """`sam local start-api --env-vars ...` on the host build: its URL and the routes it mounted."""
    port = free_port()
    template = sam_builds["host"] / "template.yaml"
    args = ["local", "start-api", "--template", str(template), "--env-vars", str(env_vars), "--port", str(port)]
    proc = sam(local_dynamodb, *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stderr is not None
        mounted: list[str] = []
        deadline = time.monotonic() + 120
        while not mounted:
            line = proc.stderr.readline()
            assert line and time.monotonic() < deadline, "sam local start-api did not start"
            if line.startswith('{"routes"'):
                mounted = json.loads(line)["routes"]
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        yield url, mounted
    finally:
        stop(proc)


def test_shipped_env_vars_cover_what_sam_cannot_resolve_and_samconfig_uses_them() -> None:
    """sam local resolves only parameter defaults: every table, the endpoint and the service name come from the file."""
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    shipped = json.loads(ENV_VARS.read_text())["Parameters"]
    tables = {name for name, value in variables.items() if name.endswith("_TABLE") and isinstance(value, dict)}
    assert tables <= set(shipped), tables - set(shipped)
    assert set(shipped) <= set(variables) | {"CONNECTIONS_TABLE", "WORKER_FUNCTION_NAME"}  # sam sets declared ones only
    code = (
        "from samcli.lib.config.samconfig import SamConfig; import json, sys;"
        "c = SamConfig(sys.argv[1]);"
        "cmds = (['local', 'start-api'], ['local', 'invoke']);"
        "print(json.dumps([c.get_all(cmd, 'parameters').get('env_vars') for cmd in cmds]))"
    )
    out = subprocess.run([str(PYTHON), "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["sam-local-env.json", "sam-local-env.json"]


def test_start_api_mounts_exactly_the_http_api_routes_of_the_template(start_api: tuple[str, list[str]]) -> None:
    url, lines = start_api
    mounted = set()
    for line in lines:
        m = re.match(rf"Mounting ApiFunction at {re.escape(url)}(\S+) \[(.+)\]$", line)
        assert m, line
        mounted |= {(method, m[1]) for method in m[2].split(", ") if method != "OPTIONS"}
    assert mounted == {(r.method, r.path) for r in routes_from_template(load_template(), "HttpApi")}


async def test_every_route_reaches_the_built_handler_through_start_api(
    start_api: tuple[str, list[str]], local_dynamodb: LocalDynamo
) -> None:
    url, _ = start_api
    headers = {"Authorization": f"Bearer {local_dynamodb.token}"}  # the template's AuthMode: api_key
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        health = await client.get("/health")
        assert health.status_code == 200 and health.json()["dependencies"]["dynamodb"] == "ok"
        first = await client.post("/chat/stream", json={"message": "hello sam local"})
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
        assert first.text.startswith("event: start") and first.text.count("event: done") == 1
        stream_id = first.headers["x-stream-id"]
        resumed = await client.get(f"/chat/stream/{stream_id}", headers={"Last-Event-ID": "1"})
        assert resumed.status_code == 200 and "id: 2\n" in resumed.text and resumed.text.count("event: done") == 1
        for route in routes_from_template(load_template(), "HttpApi"):
            request = sample_request(route.method, route.path, stream_id)
            answer = await client.request(**request)
            where = f"{route.key}: {answer.status_code} {answer.text[:200]}"
            assert answer.status_code not in (403, 404, 405) and answer.status_code < 500, where
        unknown = await client.get("/no/such/route")
        assert unknown.status_code == 403  # sam local's answer to an undeclared route (AWS: 404)


def test_sam_local_invoke_with_the_shipped_events(
    sam_builds: dict[str, Path], env_vars: Path, local_dynamodb: LocalDynamo
) -> None:
    """As docs/deploy.md says: the health event as is, the chat event with the key put in."""
    template = str(sam_builds["host"] / "template.yaml")
    events = (("httpapi_get_health.json", '"dynamodb":"ok"'), ("httpapi_post_chat_stream.json", "event: done"))
    for name, check in events:
        event = (ROOT / "tests" / "events" / name).read_text().replace("YOUR_API_KEY", local_dynamodb.token)
        args = ["local", "invoke", "ApiFunction", "-e", "-", "--env-vars", str(env_vars), "--template", template]
        proc = sam(local_dynamodb, *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(event, timeout=120)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["statusCode"] == 200 and check in result["body"], result


def test_guided_deploy_asks_about_authentication_as_often_as_the_guide_says() -> None:
    """`sam deploy --guided` asks once per endpoint without an authorizer; docs/deploy.md says how often."""
    code = (
        "from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider;"
        "from samcli.commands.deploy.auth_utils import auth_per_resource;"
        "stacks, _ = SamLocalStackProvider.get_stacks('template.yaml');"
        "print(sum(not required for _, required in auth_per_resource(stacks)))"
    )
    asked = subprocess.run([str(PYTHON), "-c", code], cwd=ROOT, env=driver_env(), capture_output=True, text=True)
    assert asked.returncode == 0, asked.stderr[-2000:]
    guide = (ROOT / "docs" / "deploy.md").read_text()
    said = re.search(r"\((\d+) times in all\)", guide)
    assert said and int(said[1]) == int(asked.stdout.strip().splitlines()[-1])
