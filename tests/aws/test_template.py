"""``template.yaml``: lints clean and wires streaming, state and routes as the code expects."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.aws.schema import ROOT, TEMPLATE, load_template, table_spec, table_specs
from tokenrelay.stores.dynamodb import PARTITION_KEY, TTL_ATTRIBUTE

LWA_LAYER = "arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:30"
PROTOCOL_ROUTES = {
    ("POST", "/chat/stream"),
    ("GET", "/chat/stream"),
    ("GET", "/chat/stream/{stream_id}"),
    ("POST", "/chat/stream/{stream_id}/cancel"),
    ("POST", "/chat/stream-simple"),
    ("GET", "/health"),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == kind}


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def env(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's environment as deployed: Globals merged under its own variables."""
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(props(template, logical_id).get("Environment", {}).get("Variables", {}))
    return merged


def test_template_cfn_lint_exits_zero() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    command = str(cfn_lint) if cfn_lint.exists() else shutil.which("cfn-lint")
    assert command, "cfn-lint is not installed (requirements-dev.txt)"
    result = subprocess.run(
        [command, str(TEMPLATE)], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stream_function_url_invoke_mode_is_response_stream(template: dict[str, Any]) -> None:
    url = props(template, "StreamFunction")["FunctionUrlConfig"]
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert "x-stream-id" in [h.lower() for h in url["Cors"]["ExposeHeaders"]]


def test_stream_function_env_enables_web_adapter_streaming(template: dict[str, Any]) -> None:
    p = props(template, "StreamFunction")
    variables = env(template, "StreamFunction")
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert variables["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert variables["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert variables["PORT"] == "8000"
    assert p["Handler"] == "run.sh"
    assert (ROOT / p["CodeUri"] / "run.sh").exists()
    layers = p["Layers"]
    assert layers[0] == {"Ref": "CoreLayer"} and len(layers) == 2
    # The adapter's ARN is a parameter; empty means 1.1.0 (:30) in the stack's own region.
    assert layers[1] == {"Fn::If": ["WebAdapterLayerSet", {"Ref": "WebAdapterLayerArn"}, {"Fn::Sub": LWA_LAYER}]}


def test_stream_function_runs_snapstart_behind_an_alias_with_the_adapters_restore_hook(
    template: dict[str, Any],
) -> None:
    p = props(template, "StreamFunction")
    assert p["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert p["AutoPublishAlias"] == "live"  # SnapStart needs a published version; the URL serves the alias
    assert p.get("Runtime", template["Globals"]["Function"]["Runtime"]) == "python3.12"  # Python SnapStart: 3.12+
    hook = env(template, "StreamFunction")["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"]
    assert hook == "/_lwa/after-restore"
    assert "AWS_LWA_ASYNC_INIT" not in env(template, "StreamFunction")  # ignored under SnapStart anyway


def test_web_adapter_layer_parameter_takes_any_partition_and_defaults_to_empty(template: dict[str, Any]) -> None:
    param = template["Parameters"]["WebAdapterLayerArn"]
    assert param["Default"] == ""
    unset = {"Fn::Equals": [{"Ref": "WebAdapterLayerArn"}, ""]}
    assert template["Conditions"]["WebAdapterLayerSet"] == {"Fn::Not": [unset]}
    pattern = re.compile(param["AllowedPattern"])
    for good in (
        "",
        "arn:aws:lambda:ap-southeast-5:753240598075:layer:LambdaAdapterLayerArm64:3",
        "arn:aws-cn:lambda:cn-north-1:123456789012:layer:my-adapter:1",
        "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:layer:LambdaAdapterLayerArm64:1",
    ):
        assert pattern.fullmatch(good), good
    for bad in ("arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerArm64", "LambdaAdapterLayerArm64:25"):
        assert not pattern.fullmatch(bad), bad


def test_functions_arm64_python_matches_core_layer(template: dict[str, Any]) -> None:
    function_globals = template["Globals"]["Function"]
    layer = props(template, "CoreLayer")
    assert function_globals["Architectures"] == layer["CompatibleArchitectures"] == ["arm64"]
    assert [function_globals["Runtime"]] == layer["CompatibleRuntimes"] == ["python3.12"]
    # make (layers/core/Makefile), so botocore stays out: it installs python3.12 wheels for arm64.
    assert template["Resources"]["CoreLayer"]["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (ROOT / props(template, "CoreLayer")["ContentUri"] / "Makefile").read_text()
    assert "build-CoreLayer:" in makefile and "--python-version 3.12" in makefile
    assert "$(or $(TOKENRELAY_LAYER_ARCH),arm64)" in makefile


def test_streams_table_key_schema_matches_store_key(template: dict[str, Any]) -> None:
    spec = table_spec("StreamsTable", template)
    assert spec.key_schema == [{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}]
    assert spec.attribute_definitions == [{"AttributeName": PARTITION_KEY, "AttributeType": "S"}]
    assert spec.ttl_attribute == TTL_ATTRIBUTE
    assert spec.billing_mode == "PAY_PER_REQUEST"
    assert spec.env_var == "STREAMS_TABLE"
    assert spec.table_name({}) == "tokenrelay-streams"
    assert [s.logical_id for s in table_specs(template)] == [
        "StreamsTable",
        "OutputLogTable",
        "ConnectionsTable",
        "ApiKeysTable",
        "RateLimitsTable",
    ]


def test_table_spec_unknown_logical_id_raises_key_error(template: dict[str, Any]) -> None:
    with pytest.raises(KeyError):
        table_spec("StreamFunction", template)


def test_http_api_routes_cover_protocol_routes(template: dict[str, Any]) -> None:
    api = props(template, "ApiFunction")
    assert api["Handler"] == "handler.handler"
    routes = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in api["Events"].values()
        if e["Type"] == "HttpApi"
    }
    assert routes >= PROTOCOL_ROUTES


@pytest.mark.parametrize("function", ["StreamFunction", "ApiFunction"])
def test_function_state_access_is_scoped_to_streams_table(template: dict[str, Any], function: str) -> None:
    assert env(template, function)["STREAMS_TABLE"] == {"Ref": "StreamsTable"}
    statements = [s for policy in props(template, function)["Policies"] for s in policy["Statement"]]
    actions = {a for s in statements for a in s["Action"]}
    # BatchGetItem is its own IAM action: the cancel poller's one read per interval needs it, or
    # every poll is AccessDenied and no cancel from another environment is ever seen (issue 13).
    assert actions == {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert all(s["Resource"] == {"Fn::GetAtt": ["StreamsTable", "Arn"]} for s in statements)


@pytest.mark.parametrize("function", ["StreamFunction", "ApiFunction"])
def test_function_log_group_has_retention(template: dict[str, Any], function: str) -> None:
    groups = [
        g["Properties"]
        for g in resources_of_type(template, "AWS::Logs::LogGroup").values()
        if g["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(groups) == 1 and groups[0]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_template_outputs_name_endpoints_and_table(template: dict[str, Any]) -> None:
    assert {"StreamFunctionUrl", "HttpApiUrl", "StreamsTableName"} <= set(template["Outputs"])
    assert template["Outputs"]["StreamFunctionUrl"]["Value"] == {"Fn::GetAtt": ["StreamFunctionUrl", "FunctionUrl"]}


def test_output_log_grants_follow_the_code_paths(template: dict[str, Any]) -> None:
    """Producers write the log (PutItem: OutputLogWriter), resume routes read it (Query: follow).
    The HTTP app does both; the WebSocket worker only produces; the message function only replays."""
    from tests.aws.test_template_protection import statements_on

    assert statements_on(template, "OutputLogTable") == {
        "StreamFunction": {"dynamodb:PutItem", "dynamodb:Query"},
        "ApiFunction": {"dynamodb:PutItem", "dynamodb:Query"},
        "WorkerFunction": {"dynamodb:PutItem"},
        "MessageFunction": {"dynamodb:Query"},
    }


def test_dynamodb_endpoint_is_declared_empty_for_sam_local(template: dict[str, Any]) -> None:
    """`sam local --env-vars` sets only declared variables; on AWS an empty endpoint is ignored."""
    assert template["Globals"]["Function"]["Environment"]["Variables"]["AWS_ENDPOINT_URL_DYNAMODB"] == ""


@pytest.mark.parametrize("path", ["functions/http/run.sh", "scripts/dev", "layers/core/Makefile"])
def test_what_linux_executes_keeps_lf_line_endings(path: str) -> None:
    """The Web Adapter runs run.sh with /bin/sh: a CR (a Windows checkout) fails it."""
    assert b"\r" not in (ROOT / path).read_bytes()
    if (ROOT / ".git").exists() and shutil.which("git"):
        attrs = subprocess.run(["git", "check-attr", "eol", "--", path], cwd=ROOT, capture_output=True, text=True)
        assert attrs.stdout.strip().endswith("eol: lf"), attrs.stdout + attrs.stderr
