"""`scripts/smoke --stack`: the stack's outputs and CloudWatch, read with boto3 (against moto's AWS)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from scripts.smoke_checks import metrics, target
from scripts.smoke_checks.run import CheckFailed, Run

REGION = "eu-west-1"


def stack_template(outputs: dict[str, str]) -> str:
    return json.dumps(
        {
            "Parameters": {
                "ServiceName": {"Type": "String", "Default": ""},
                "MetricsNamespace": {"Type": "String", "Default": "TokenRelay"},
            },
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
    )


OUTPUTS = {
    "StreamFunctionUrl": "https://abc123.lambda-url.eu-west-1.on.aws/",
    "HttpApiUrl": "https://api123.execute-api.eu-west-1.amazonaws.com/",
    "WebSocketUrl": "wss://ws123.execute-api.eu-west-1.amazonaws.com/prod",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


def test_stack_target_comes_from_the_outputs_and_parameters(aws: Any) -> None:
    cfn = aws.client("cloudformation")
    cfn.create_stack(StackName="tokenrelay", TemplateBody=stack_template(OUTPUTS))
    found = target.stack("tokenrelay", REGION, "trk_key")
    assert (found.function_url, found.http_api_url, found.websocket_url) == tuple(OUTPUTS.values())
    assert (found.region, found.namespace, found.service) == (REGION, "TokenRelay", "tokenrelay")
    assert found.headers() == {"Authorization": "Bearer trk_key"} and found.subprotocols()[1] == "bearer.trk_key"
    cfn.create_stack(
        StackName="named",
        TemplateBody=stack_template(OUTPUTS),
        Parameters=[{"ParameterKey": "ServiceName", "ParameterValue": "chat-prod"}],
    )
    assert target.stack("named", REGION, None).service == "chat-prod"  # the metrics' service dimension


def test_a_stack_without_tokenrelay_outputs_is_refused(aws: Any) -> None:
    aws.client("cloudformation").create_stack(StackName="other", TemplateBody=stack_template({}))
    with pytest.raises(SystemExit, match="no output HttpApiUrl, StreamFunctionUrl, WebSocketUrl"):
        target.stack("other", REGION, None)


async def test_cloudwatch_check_waits_for_the_runs_own_counts(aws: Any) -> None:
    aws.client("cloudformation").create_stack(StackName="tokenrelay", TemplateBody=stack_template(OUTPUTS))
    where = target.stack("tokenrelay", REGION, "trk_key")
    cloudwatch = aws.client("cloudwatch")
    now = dt.datetime.now(dt.UTC)
    for metric, value in (("StreamCompleted", 2.0), ("StreamCancelled", 1.0)):
        cloudwatch.put_metric_data(
            Namespace="TokenRelay",
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "service", "Value": "tokenrelay"}],
                    "Timestamp": now,
                    "Value": value,
                }
            ],
        )
    async with httpx.AsyncClient() as http:
        run = Run(where, http, completed={"a": "sse", "b": "ws-chat"}, cancelled={"c": "cancel"})
        line = await metrics.cloudwatch(run, time.time(), wait_s=0)
        assert "StreamCompleted 2 (want 2)" in line and "StreamCancelled 1" in line
        run.completed["d"] = "openai"  # one more than CloudWatch has seen
        with pytest.raises(CheckFailed, match=r"StreamCompleted 2 \(want 3\)"):
            await metrics.cloudwatch(run, time.time(), wait_s=0)
