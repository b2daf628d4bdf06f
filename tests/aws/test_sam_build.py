"""``sam validate --lint`` and ``sam build``, offline, with the SAM CLI of ``scripts/bootstrap-sam``.

The template builds for arm64 (what deploys: its layer must hold aarch64 wheels).
That build cannot be imported on an x86_64 machine, so the same template is also
built for this machine's architecture, and each built function is imported from
the build directory in a fresh Python 3.12 process with no site-packages: the
layer (``/opt/python``) and the function (``/var/task``) are all it sees, as in Lambda.
Builds are cached in ``.venv-sam/`` (a first build downloads the wheels: ~30 s).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.aws.schema import ROOT, TEMPLATE, load_template
from tests.aws.test_template_deploy import fake_env, functions, wait_all

pytestmark = pytest.mark.sam

VENV = ROOT / ".venv-sam"
SAM = VENV / "bin" / "sam"
PYTHON = VENV / "bin" / "python3.12"
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())

if not SAM.exists() or not PYTHON.exists():
    pytest.skip("no .venv-sam (scripts/bootstrap-sam found no Python 3.12): sam tests skipped", allow_module_level=True)


def sam_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",  # sam's builder looks for python3.12 on PATH
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    return env


def sam(*args: str, cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SAM), *args], cwd=cwd, env=sam_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def host_template() -> Path:
    """The template for this machine's architecture, code paths made absolute."""
    text = TEMPLATE.read_text()
    text = re.sub(r"Architectures: \[arm64\]", f"Architectures: [{HOST_ARCH}]", text)
    text = text.replace("BuildArchitecture: arm64", f"BuildArchitecture: {HOST_ARCH}")
    text = re.sub(r"(CodeUri|ContentUri): (\S+)", lambda m: f"{m[1]}: {ROOT / m[2]}", text)
    out = VENV / "host" / "template.yaml"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    return out


def build(template: Path, name: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    build_dir = VENV / "build" / name
    # sam keeps downloaded dependencies in .aws-sam/deps/ under its working directory, named
    # by resource, not by build: two builds running at once in one directory overwrite each other.
    workdir = VENV / "work" / name
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["build", "--template-file", str(template), "--build-dir", str(build_dir)]
    args += ["--cache-dir", str(VENV / "cache" / name), "--cached", "--parallel"]
    result = sam(*args, cwd=workdir)
    return build_dir, result


@pytest.fixture(scope="module")
def builds() -> Iterator[dict[str, Path]]:
    if HOST_ARCH is None:
        pytest.skip(f"unknown machine architecture {platform.machine()!r}")
    jobs = {"arm64": TEMPLATE}
    if HOST_ARCH != "arm64":
        jobs["host"] = host_template()
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = dict(zip(jobs, pool.map(lambda item: build(item[1], item[0]), jobs.items()), strict=True))
    for name, (_, result) in done.items():
        assert result.returncode == 0, f"sam build ({name}) failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    dirs = {name: path for name, (path, _) in done.items()}
    dirs.setdefault("host", dirs["arm64"])
    yield dirs


def test_sam_validate_lint_passes_offline() -> None:
    result = sam("validate", "--lint", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_ships_layer_and_functions_for_arm64(builds: dict[str, Path]) -> None:
    built = builds["arm64"]
    template = load_template()
    for lid in functions(template):
        assert (built / lid).is_dir(), lid
    layer = built / "CoreLayer" / "python"
    assert (layer / "tokenrelay" / "engine.py").is_file()
    for package in ("pydantic", "aws_lambda_powertools", "openai", "anthropic"):
        assert (layer / package).is_dir(), package
    native = list(layer.glob("pydantic_core/*.so"))
    assert native and all("aarch64" in p.name for p in native), native
    assert (built / "StreamFunction" / "fastapi").is_dir() and (built / "StreamFunction" / "run.sh").is_file()


def test_built_functions_import_in_fresh_python312(builds: dict[str, Path]) -> None:
    built = builds["host"]
    template = load_template()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    runtime = _runtime_boto3_path()
    for lid, props in functions(template).items():
        module, attr = ("app", "app") if props["Handler"] == "run.sh" else props["Handler"].rsplit(".", 1)
        env: dict[str, Any] = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{built / lid}:{built / 'CoreLayer' / 'python'}",
            "PYTHONNOUSERSITE": "1",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": lid,
            **fake_env(template, lid),
        }
        # -S: no site-packages, so the build is all there is (plus boto3, which the runtime has).
        env["PYTHONPATH"] += f":{runtime}"
        code = (
            f"import {module}; assert callable(getattr({module}, {attr!r}));"
            f"assert '{built}' in {module}.__file__, {module}.__file__;"
            "import tokenrelay; assert '/CoreLayer/python/' in tokenrelay.__file__, tokenrelay.__file__"
        )
        procs[lid] = subprocess.Popen(
            [str(PYTHON), "-S", "-c", code], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    failures = wait_all(procs, timeout_s=90)
    assert not failures, "\n".join(f"{lid}: {out}" for lid, out in failures.items())


RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def _runtime_boto3_path() -> str:
    """A directory holding only what the Lambda Python runtime adds: boto3 and its dependencies
    (links into .venv-sam), so a package missing from the build cannot be found elsewhere."""
    result = subprocess.run(
        [str(PYTHON), "-c", "import boto3, os; print(os.path.dirname(os.path.dirname(boto3.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    site = Path(result.stdout.strip())
    runtime = VENV / "runtime"
    runtime.mkdir(exist_ok=True)
    for name in RUNTIME_PACKAGES:
        link = runtime / name
        if not link.exists() and (site / name).exists():
            link.symlink_to(site / name)
    return str(runtime)
