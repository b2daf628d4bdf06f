"""``template.yaml`` as a deployment: code resolves, env is complete, IAM is scoped, health is watched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.aws.schema import ROOT, load_template
from tokenrelay.settings import SECRET_VARS
from tokenrelay.telemetry.metrics import REFUSAL_REASONS

FUNCTION = "AWS::Serverless::Function"
PROVIDER_FUNCTIONS = {"StreamFunction", "ApiFunction", "WorkerFunction"}  # the ones that call a provider
# Read by the code but deliberately not set by the template: a safe default, local development
# only, or set by Lambda itself. Anything else the code reads must be set by the template.
OPTIONAL_ENV = {
    "MAX_MESSAGES", "DEFAULT_MAX_TOKENS", "CANCEL_POLL_MS", "SSE_PING_S", "ECHO_DELAY_MS",
    "UPSTREAM_MAX_RETRIES", "UPSTREAM_TIMEOUT_S", "TOKENRELAY_VERSION", "BEDROCK_REGION", "LOG_LEVEL",
    "UPSTREAM_RETRY_BUDGET_S", "UPSTREAM_BACKOFF_MS", "UPSTREAM_CONNECT_TIMEOUT_S", "UPSTREAM_FIRST_CHUNK_S",
    "UPSTREAM_STALL_S", "DEADLINE_MARGIN_S",  # fault tolerance, defaults in settings (docs/faults.md)
    "CONNECTION_TTL_S", "WS_COALESCE", "WS_MAX_FRAME_BYTES",
    "OUTPUT_LOG_FLUSH_MS", "OUTPUT_LOG_FLUSH_BYTES", "RESUME_POLL_MS",  # resume tuning, defaults in settings
    "WS_FLUSH_RAMP_MS",  # the coalescing window's widening, default in WsConfig
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",  # local dev only
    "DEMO_DIR", "CORS_ALLOW_ORIGINS",  # local dev only: the Function URL adds CORS itself
    "API_KEY_CACHE_S", "AUTH_OFF_RPM", "AUTH_OFF_CONCURRENCY",  # protection tuning, defaults in settings
    "FINISH_WAIT_S", "FINISH_TIMEOUT_S", "STREAM_BUFFER_BYTES", "SSE_WRITE_TIMEOUT_S",  # bounds under stress,
    "BODY_READ_TIMEOUT_S",  # defaults in settings (docs/faults.md)
    "MAX_IMAGE_BYTES", "MAX_IMAGES",  # image limits, defaults in settings (docs/protocol.md section 13)
    "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",  # Lambda / local
}  # fmt: skip
# WsConfig and Settings are shared: some of what they read has no effect in a given function.
UNUSED_BY = {
    "WorkerFunction": {"STREAM_TIMEOUT_S", "WORKER_FUNCTION_NAME", "WS_MAX_STREAMS"},  # deadline: Lambda's own
    "ApiFunction": {"AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"},  # the Web Adapter's, StreamFunction only
    "MessageFunction": {"STREAM_TIMEOUT_S", "WORKER_DEADLINE_MARGIN_MS", "WS_FLUSH_MS", "WS_FLUSH_MAX_MS"},  # no stream
}
ENV_READ = re.compile(
    r"""(?:environ(?:\.get)?|env\.get|env\[|getenv|_(?:int|float|bool|number)\(env,)\s*\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
)
EMITTED = {
    "StreamStarted", "StreamCompleted", "StreamCancelled", "StreamFailed", "StreamDisconnected",
    "TimeToFirstToken", "StreamDuration", "OutputTokens", "TokensAfterDisconnect",
    "UpstreamRetries", "UpstreamFallbacks", "Refusals", "ToolCalls", "ReasoningTokens", "StreamCost",
}  # fmt: skip


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in template["Resources"].items() if r["Type"] == FUNCTION}


def env_of(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(functions(template)[logical_id].get("Environment", {}).get("Variables", {}))
    return merged


def code_env_reads(code_dir: Path) -> set[str]:
    found: set[str] = set()
    for path in [*code_dir.rglob("*.py"), *(ROOT / "layers/core/tokenrelay").rglob("*.py")]:
        found |= set(ENV_READ.findall(path.read_text()))
    return found | set(SECRET_VARS.values())


EMPTY_DEFAULT: tuple[str, ...] = ("DEFAULT_PROVIDER", "ALLOWED_MODELS", "MODEL_ALIASES", "FALLBACK_MODEL")
EMPTY_DEFAULT += ("MODEL_CAPABILITIES", "MODEL_PRICES")


def fake_env(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """The function's environment with every intrinsic replaced by a plausible literal."""
    out = {}
    for name, value in env_of(template, logical_id).items():
        if isinstance(value, str):
            out[name] = value
        elif name.endswith("_SECRET_ARN") or name in EMPTY_DEFAULT:
            out[name] = ""
        elif name == "BEDROCK_ENABLED":
            out[name] = "false"
        elif name == "AUTH_MODE":
            out[name] = "api_key"
        elif any(word in name for word in ("_S", "_MS", "MAX", "LIMIT", "CHARS")):
            default = template["Parameters"].get(value.get("Ref", ""), {}).get("Default", "30")
            out[name] = str(default)
        elif name == "POWERTOOLS_LOG_LEVEL":
            out[name] = "INFO"
        else:
            out[name] = f"tokenrelay-test-{name.lower()}"
    return out


def wait_all(procs: dict[str, subprocess.Popen[bytes]], timeout_s: float) -> dict[str, str]:
    """Wait for every process (killing the rest on error); the output of those that failed."""
    failures: dict[str, str] = {}
    try:
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=timeout_s)
            if proc.returncode != 0:
                failures[name] = out.decode()[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    return failures


def test_every_function_handler_resolves_to_code_that_imports(template: dict[str, Any]) -> None:
    procs = {}
    for lid, p in functions(template).items():
        code = ROOT / p["CodeUri"]
        if p["Handler"] == "run.sh":
            script = (code / "run.sh").read_text()
            assert os.access(code / "run.sh", os.X_OK), "run.sh must be executable"
            module, attr = re.search(r"uvicorn .* (\w+):(\w+)\s*$", script, re.M).groups()  # type: ignore[union-attr]
        else:
            module, attr = p["Handler"].rsplit(".", 1)
        assert (code / f"{module}.py").is_file(), f"{lid}: {module}.py missing in {code}"
        check = f"import {module}; assert callable(getattr({module}, {attr!r})), {attr!r}"
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": f"{ROOT / 'layers/core'}:{code}",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",  # Lambda sets both; boto3 reads this one (init builds clients)
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": lid,
            **fake_env(template, lid),
        }
        procs[lid] = subprocess.Popen(
            [sys.executable, "-c", check], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    failures = wait_all(procs, timeout_s=60)
    assert not failures, "\n".join(f"{lid}: {out}" for lid, out in failures.items())


@pytest.mark.parametrize("function", ["StreamFunction", "ApiFunction", "WorkerFunction", "MessageFunction"])
def test_every_env_var_the_code_reads_is_set_by_template(template: dict[str, Any], function: str) -> None:
    code = ROOT / functions(template)[function]["CodeUri"]
    missing = code_env_reads(code) - set(env_of(template, function)) - OPTIONAL_ENV - UNUSED_BY.get(function, set())
    assert not missing, f"{function} reads {sorted(missing)}, which the template does not set"


def test_template_sets_metrics_and_logging_env_consistently(template: dict[str, Any]) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["METRICS_ENABLED"] == "true"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    service = variables["POWERTOOLS_SERVICE_NAME"]
    assert service == {"Fn::If": ["ServiceNameSet", {"Ref": "ServiceName"}, {"Ref": "AWS::StackName"}]}
    assert variables["LOG_JSON"] == "true" and variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    for lid in functions(template):  # no function overrides them
        own = functions(template)[lid].get("Environment", {}).get("Variables", {})
        assert not {"METRICS_ENABLED", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_SERVICE_NAME"} & set(own)


def test_template_never_puts_provider_keys_in_environment(template: dict[str, Any]) -> None:
    for lid in functions(template):
        variables = env_of(template, lid)
        assert not {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} & set(variables), lid
    assert not [n for n, p in template["Parameters"].items() if p.get("NoEcho")], "keys go in Secrets Manager"
    for var, param in (("OPENAI_API_KEY_SECRET_ARN", "OpenAIApiKeySecretArn"),
                       ("ANTHROPIC_API_KEY_SECRET_ARN", "AnthropicApiKeySecretArn")):  # fmt: skip
        assert template["Globals"]["Function"]["Environment"]["Variables"][var] == {"Ref": param}
        assert re.fullmatch(template["Parameters"][param]["AllowedPattern"], "")
        arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tokenrelay/openai-AbC123"
        assert re.fullmatch(template["Parameters"][param]["AllowedPattern"], arn)
        assert not re.fullmatch(template["Parameters"][param]["AllowedPattern"], "sk-live-key")


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for lid, r in template["Resources"].items():
        if r["Type"] == FUNCTION:
            for policy in r["Properties"].get("Policies", []):
                assert isinstance(policy, dict) and "Statement" in policy, f"{lid}: inline statements only"
                out += [(lid, s) for s in policy["Statement"]]
        elif r["Type"] == "AWS::IAM::Policy":
            out += [(lid, s) for s in r["Properties"]["PolicyDocument"]["Statement"]]
    return out


def test_iam_statements_name_specific_resources_and_actions(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert len(statements) >= 10
    for lid, s in statements:
        assert s["Effect"] == "Allow", lid
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert all("*" not in a for a in actions), (lid, actions)
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for resource in resources:
            assert resource != "*", (lid, s)
            text = json.dumps(resource)
            # The one wildcard: @connections/{connectionId}, unknown until a client connects.
            assert "*" not in text or text.endswith('/POST/@connections/*"}'), (lid, resource)


def test_provider_key_secrets_readable_only_by_provider_functions(template: dict[str, Any]) -> None:
    policy = template["Resources"]["ProviderKeysPolicy"]
    assert policy["Condition"] == "AnyKeyOn"
    roles = {r["Ref"].removesuffix("Role") for r in policy["Properties"]["Roles"]}
    assert roles == PROVIDER_FUNCTIONS
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == [
        {"Fn::If": ["OpenAIKeyOn", {"Ref": "OpenAIApiKeySecretArn"}, {"Ref": "AWS::NoValue"}]},
        {"Fn::If": ["AnthropicKeyOn", {"Ref": "AnthropicApiKeySecretArn"}, {"Ref": "AWS::NoValue"}]},
    ]
    bedrock_roles = {
        r["Ref"].removesuffix("Role") for r in template["Resources"]["BedrockInvokePolicy"]["Properties"]["Roles"]
    }
    assert bedrock_roles == PROVIDER_FUNCTIONS


def test_every_function_has_log_group_with_retention(template: dict[str, Any]) -> None:
    groups = {
        json.dumps(r["Properties"]["LogGroupName"]): r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    for lid in functions(template):
        group = groups[json.dumps({"Fn::Sub": f"/aws/lambda/${{{lid}}}"})]
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_streams_table_point_in_time_recovery_is_a_parameter(template: dict[str, Any]) -> None:
    spec = template["Resources"]["StreamsTable"]["Properties"]["PointInTimeRecoverySpecification"]
    assert spec == {"PointInTimeRecoveryEnabled": {"Fn::If": ["PointInTimeRecoveryOn", True, False]}}


def _alarm_metrics(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["Id"]: m for m in alarm.get("Metrics", [])}


def test_alarms_watch_completion_failure_and_ttft_and_notify_topic(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    alarms = {lid: r["Properties"] for lid, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"CompletionRateAlarm", "FailureRateAlarm", "TimeToFirstTokenAlarm"}
    for props in alarms.values():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert props["TreatMissingData"] == "notBreaching"
    completion = _alarm_metrics(alarms["CompletionRateAlarm"])
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in completion.values() if "MetricStat" in m}
    assert names == {"StreamStarted", "StreamCompleted"}
    assert "100 * completed / started" in completion["rate"]["Expression"]["Fn::Sub"]
    assert alarms["CompletionRateAlarm"]["ComparisonOperator"] == "LessThanThreshold"
    failure = _alarm_metrics(alarms["FailureRateAlarm"])
    assert failure["failed"]["MetricStat"]["Metric"]["MetricName"] == "StreamFailed"
    ttft = alarms["TimeToFirstTokenAlarm"]
    assert (ttft["MetricName"], ttft["ExtendedStatistic"]) == ("TimeToFirstToken", "p90")
    for m in [*completion.values(), *failure.values()]:
        if "MetricStat" in m:  # the service-only dimension set that metrics.py emits
            assert [d["Name"] for d in m["MetricStat"]["Metric"]["Dimensions"]] == ["service"]
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "AlarmEmailSet"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_dashboard_body_is_json_over_emitted_metrics(template: dict[str, Any]) -> None:
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {"Service"}
    resolved = re.sub(
        r"\$\{([A-Za-z0-9:]+)\}", lambda m: "100" if m.group(1).endswith(("Percent", "Ms")) else "x", body
    )
    widgets = json.loads(resolved)["widgets"]
    text = json.dumps(widgets)
    names = {m[1] for w in widgets for m in w["properties"].get("metrics", []) if isinstance(m[0], str)}
    namespaces = {m[0] for w in widgets for m in w["properties"].get("metrics", []) if isinstance(m[0], str)}
    assert namespaces == {"x", "AWS/Lambda", "AWS/DynamoDB"}
    ours = {
        n for n in names if n not in {"Errors", "Throttles", "Duration", "ReadThrottleEvents", "WriteThrottleEvents"}
    }
    assert ours <= EMITTED and EMITTED - ours <= {"StreamDisconnected"} | ours
    for needed in (
        "p50",
        "p90",
        "p99",
        "ErrorCode",
        "CancelReason",
        "Throttles",
        "ThrottleEvents",
        "completed / started",
    ):
        assert needed in text, needed
    # Refusals: one line per reason, on exactly the dimensions RefusalMetrics emits (Reason, service).
    refusals = [m for w in widgets for m in w["properties"].get("metrics", []) if m[1:2] == ["Refusals"]]
    assert [m[2:6] for m in refusals] == [["Reason", r, "service", "x"] for r in REFUSAL_REASONS]


def test_outputs_name_every_endpoint_and_dashboard(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"StreamFunctionUrl", "HttpApiUrl", "WebSocketUrl", "DashboardUrl", "AlarmTopicArn"} <= set(outputs)
    assert "${Dashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


def test_samconfig_deploys_with_iam_capability_and_lint() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    assert "CAPABILITY_IAM" in config["deploy"]["parameters"]["capabilities"]
    assert config["deploy"]["parameters"]["resolve_s3"] is True
    assert config["validate"]["parameters"]["lint"] is True
    assert config["build"]["parameters"]["cached"] is True
