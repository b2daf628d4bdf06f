"""``template.yaml`` for issue #8: the /v1 routes on the HTTP API, and Bedrock off by default,
invoking only the configured model ARNs when on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aws.schema import load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_template_http_api_serves_openai_routes(template: dict[str, Any]) -> None:
    events = template["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events if e["Type"] == "HttpApi"}

    assert {("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/models/{model+}")} <= routes


def test_template_bedrock_is_off_by_default_and_wired_to_settings(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    env = template["Globals"]["Function"]["Environment"]["Variables"]

    assert parameters["EnableBedrock"]["Default"] == "false"
    assert env["BEDROCK_ENABLED"] == {"Ref": "EnableBedrock"} and env["MODEL_ALIASES"] == {"Ref": "ModelAliases"}
    assert "bedrock" in parameters["DefaultProvider"]["AllowedValues"]


def test_template_bedrock_policy_invokes_only_the_configured_model_arns(template: dict[str, Any]) -> None:
    policy = template["Resources"]["BedrockInvokePolicy"]

    assert policy["Condition"] == "BedrockOn"
    # The WebSocket worker runs streams too, so it may invoke the same models.
    roles = [{"Ref": "StreamFunctionRole"}, {"Ref": "ApiFunctionRole"}, {"Ref": "WorkerFunctionRole"}]
    assert policy["Properties"]["Roles"] == roles
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "bedrock:InvokeModelWithResponseStream"
    assert statement["Resource"] == {"Ref": "BedrockModelArns"}
    placeholder = template["Parameters"]["BedrockModelArns"]["Default"]
    asserts = template["Rules"]["BedrockNeedsModelArns"]["Assertions"]
    assert {"Fn::Not": [{"Fn::Contains": [{"Ref": "BedrockModelArns"}, placeholder]}]} in [a["Assert"] for a in asserts]
