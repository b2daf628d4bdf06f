"""``sam build``, offline, with the SAM CLI of ``scripts/bootstrap-sam``: one build per test session.

The template builds for arm64 (what deploys: its layer must hold aarch64 wheels). That build
cannot run on an x86_64 machine, so the same template is also built for this machine's
architecture (``host``), which the tests import and invoke. Builds and their caches live in
``.aws-sam/tests/`` of this checkout (a first build downloads the wheels: ~30 s), never in
``.venv-sam``, which several checkouts may share. ``tests/aws/conftest.py`` holds the session
fixture, ``sam_builds``.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.aws.schema import ROOT, TEMPLATE

VENV = ROOT / ".venv-sam"
SAM = VENV / "bin" / "sam"
PYTHON = VENV / "bin" / "python3.12"
WORK = ROOT / ".aws-sam" / "tests"
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
AVAILABLE = SAM.exists() and PYTHON.exists()
SKIP_REASON = "no .venv-sam (scripts/bootstrap-sam found no Python 3.12): sam tests skipped"
# What the Lambda Python runtime adds to sys.path beside the function and its layers.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def sam_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV", "TOKENRELAY_"))}
    env.update(
        PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",  # the builders look for python3.12 on PATH
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        **extra,
    )
    return env


def sam(*args: str, cwd: Path = ROOT, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SAM), *args], cwd=cwd, env=sam_env(**env), capture_output=True, text=True, timeout=timeout, check=False
    )


def host_template() -> Path:
    """The template for this machine's architecture, code paths made absolute."""
    text = TEMPLATE.read_text()
    text = re.sub(r"Architectures: \[arm64\]", f"Architectures: [{HOST_ARCH}]", text)
    text = text.replace("BuildArchitecture: arm64", f"BuildArchitecture: {HOST_ARCH}")
    text = re.sub(r"(CodeUri|ContentUri): (\S+)", lambda m: f"{m[1]}: {ROOT / m[2]}", text)
    out = WORK / "host" / "template.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def build(template: Path, name: str, arch: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    build_dir = WORK / "build" / name
    # sam keeps downloaded dependencies in .aws-sam/deps/ under its working directory, named
    # by resource, not by build: two builds running at once in one directory overwrite each other.
    workdir = WORK / "work" / name
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["build", "--template-file", str(template), "--build-dir", str(build_dir)]
    args += ["--cache-dir", str(WORK / "cache" / name), "--cached", "--parallel"]
    # The core layer's Makefile builds for arm64 unless told otherwise (layers/core/Makefile).
    return build_dir, sam(*args, cwd=workdir, TOKENRELAY_LAYER_ARCH=arch)


def build_all() -> dict[str, Path]:
    """``{"arm64": build dir, "host": build dir}`` (the same directory on an arm64 machine)."""
    assert HOST_ARCH is not None, f"unknown machine architecture {platform.machine()!r}"
    jobs = {"arm64": (TEMPLATE, "arm64")}
    if HOST_ARCH != "arm64":
        jobs["host"] = (host_template(), HOST_ARCH)
    with ThreadPoolExecutor(len(jobs)) as pool:
        done = dict(zip(jobs, pool.map(lambda item: build(item[1][0], item[0], item[1][1]), jobs.items()), strict=True))
    for name, (_, result) in done.items():
        assert result.returncode == 0, f"sam build ({name}) failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    dirs = {name: path for name, (path, _) in done.items()}
    dirs.setdefault("host", dirs["arm64"])
    return dirs


def runtime_path() -> str:
    """A directory holding only what the Lambda Python runtime adds: boto3 and its dependencies
    (links into .venv-sam's), so a package missing from the build cannot be found elsewhere."""
    result = subprocess.run(
        [str(PYTHON), "-c", "import boto3, os; print(os.path.dirname(os.path.dirname(boto3.__file__)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    site = Path(result.stdout.strip())
    runtime = WORK / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PACKAGES:
        link = runtime / name
        if not link.exists() and (site / name).exists():
            link.symlink_to(site / name)
    return str(runtime)
