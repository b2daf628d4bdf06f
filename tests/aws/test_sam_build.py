"""``sam validate --lint`` and ``sam build``, offline, and what the build holds.

Each built function is imported from the build directory in a fresh Python 3.12 process with
no site-packages: the function (``/var/task``), the layer (``/opt/python``) and the runtime's
boto3 are all it sees, as in Lambda. The build is the session's (``sam_builds``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.aws import sam_build
from tests.aws.sam_build import PYTHON, runtime_path, sam
from tests.aws.schema import ROOT, load_template
from tests.aws.test_template_deploy import fake_env, functions, wait_all

pytestmark = [pytest.mark.sam, pytest.mark.skipif(not sam_build.AVAILABLE, reason=sam_build.SKIP_REASON)]

# The runtime's own packages: a copy in the layer would come first on sys.path and shadow them.
RUNTIME_ONLY = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six.py")
LAYER_PACKAGES = (
    "pydantic", "aws_lambda_powertools", "aws_xray_sdk", "wrapt", "openai", "anthropic",
    "fastapi", "starlette", "uvicorn", "mangum", "uvloop", "httptools",
)  # fmt: skip


def fresh_python(code: str, pythonpath: list[Path | str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``code`` in Python 3.12 with -S: nothing but ``pythonpath`` and the runtime's boto3."""
    full = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ":".join([*map(str, pythonpath), runtime_path()]),
        "PYTHONNOUSERSITE": "1",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",  # Lambda sets both; boto3 reads this one (init builds clients)
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_EC2_METADATA_DISABLED": "true",
        **(env or {}),
    }
    return subprocess.Popen(
        [str(PYTHON), "-S", "-c", code], env=full, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_sam_validate_lint_passes_offline() -> None:
    result = sam("validate", "--lint", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_build_ships_layer_and_functions_for_arm64(sam_builds: dict[str, Path]) -> None:
    built = sam_builds["arm64"]
    for lid in functions(load_template()):
        assert (built / lid).is_dir(), lid
    layer = built / "CoreLayer" / "python"
    assert (layer / "tokenrelay" / "stream" / "_run.py").is_file()
    for package in LAYER_PACKAGES:
        assert (layer / package).is_dir(), package
    for native in ("pydantic_core", "uvloop"):
        libs = list(layer.glob(f"{native}/*.so"))
        assert libs and all("aarch64" in p.name for p in libs), libs
    assert not list(layer.rglob("__pycache__")), "the layer ships sources; scripts/compile-bytecode adds .pyc"
    assert (built / "StreamFunction" / "run.sh").is_file()


@pytest.mark.parametrize("arch", ["arm64", "host"])
def test_built_layer_leaves_botocore_to_the_runtime(sam_builds: dict[str, Path], arch: str) -> None:
    layer = sam_builds[arch] / "CoreLayer" / "python"
    assert (layer / "aws_xray_sdk").is_dir()
    shipped = [name for name in RUNTIME_ONLY if (layer / name).exists() or list(layer.glob(f"{name}-*.dist-info"))]
    assert not shipped, f"the layer would shadow the runtime's {shipped}"
    if arch == "host":  # the X-Ray SDK and the Tracer run on the runtime's botocore
        code = (
            "import aws_xray_sdk.core, botocore; from aws_lambda_powertools import Tracer;"
            f"assert botocore.__file__.startswith({runtime_path()!r}), botocore.__file__;"
            "Tracer(service='t', disabled=True)"
        )
        proc = fresh_python(code, [layer])
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out.decode()


def test_functions_ship_their_own_code_and_nothing_of_the_layer(sam_builds: dict[str, Path]) -> None:
    built = sam_builds["arm64"]
    layer = {p.name for p in (built / "CoreLayer" / "python").iterdir()}
    for lid, props in functions(load_template()).items():
        source = {p.name for p in (ROOT / props["CodeUri"]).iterdir() if p.name != "__pycache__"}
        shipped = {p.name for p in (built / lid).iterdir()}
        assert shipped == source, f"{lid} ships {shipped - source or 'less than its code'}"
        assert not shipped & layer, f"{lid} ships again what the layer has: {shipped & layer}"


def test_built_functions_import_in_fresh_python312(sam_builds: dict[str, Path]) -> None:
    built = sam_builds["host"]
    template = load_template()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for lid, props in functions(template).items():
        module, attr = ("app", "app") if props["Handler"] == "run.sh" else props["Handler"].rsplit(".", 1)
        env: dict[str, Any] = {"AWS_LAMBDA_FUNCTION_NAME": lid, **fake_env(template, lid)}
        code = (
            f"import {module}; assert callable(getattr({module}, {attr!r}));"
            f"assert '{built}' in {module}.__file__, {module}.__file__;"
            "import tokenrelay; assert '/CoreLayer/python/' in tokenrelay.__file__, tokenrelay.__file__"
        )
        procs[lid] = fresh_python(code, [built / lid, built / "CoreLayer" / "python"], env)
    failures = wait_all(procs, timeout_s=90)
    assert not failures, "\n".join(f"{lid}: {out}" for lid, out in failures.items())
