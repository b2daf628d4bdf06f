"""``template.yaml``, protection: API keys on by default, key and limit tables, least-privilege IAM."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aws.schema import load_template, table_spec
from tokenrelay.stores.dynamodb import api_keys, rate_limits

AUTH_FUNCTIONS = {"StreamFunction", "ApiFunction", "ConnectFunction", "MessageFunction"}
ADMIT_FUNCTIONS = {"StreamFunction", "ApiFunction", "MessageFunction"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def statements_on(template: dict[str, Any], table: str) -> dict[str, set[str]]:
    """function logical id -> the actions any policy grants it on ``table``."""
    found: dict[str, set[str]] = {}
    arn = {"Fn::GetAtt": [table, "Arn"]}
    for lid, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy":
            roles = [r["Ref"].removesuffix("Role") for r in props["Roles"]]
            statements = props["PolicyDocument"]["Statement"]
        elif resource["Type"] == "AWS::Serverless::Function":
            roles = [lid]
            statements = [s for p in props.get("Policies", []) for s in p.get("Statement", [])]
        else:
            continue
        for statement in statements:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if arn in resources:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                for role in roles:
                    found.setdefault(role, set()).update(actions)
    return found


def test_auth_mode_defaults_to_api_key_and_every_function_gets_the_tables(template: dict[str, Any]) -> None:
    param = template["Parameters"]["AuthMode"]
    assert param["Default"] == "api_key" and set(param["AllowedValues"]) == {"api_key", "off"}
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AUTH_MODE"] == {"Ref": "AuthMode"}
    assert variables["API_KEYS_TABLE"] == {"Ref": "ApiKeysTable"}
    assert variables["RATE_LIMITS_TABLE"] == {"Ref": "RateLimitsTable"}
    for resource in template["Resources"].values():  # no function overrides them
        own = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        assert not {"AUTH_MODE", "API_KEYS_TABLE", "RATE_LIMITS_TABLE"} & set(own)


def test_key_and_limit_tables_match_the_stores(template: dict[str, Any]) -> None:
    keys = table_spec("ApiKeysTable", template)
    assert keys.key_schema == [{"AttributeName": api_keys.PARTITION_KEY, "KeyType": "HASH"}]
    assert keys.ttl_attribute is None and keys.billing_mode == "PAY_PER_REQUEST"
    assert keys.table_name({}) == "tokenrelay-api-keys"
    limits = table_spec("RateLimitsTable", template)
    assert limits.key_schema == [{"AttributeName": rate_limits.PARTITION_KEY, "KeyType": "HASH"}]
    assert limits.ttl_attribute == rate_limits.TTL_ATTRIBUTE and limits.billing_mode == "PAY_PER_REQUEST"
    assert limits.table_name({}) == "tokenrelay-rate-limits"
    for lid in ("ApiKeysTable", "RateLimitsTable"):
        assert template["Resources"][lid]["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert {"ApiKeysTableName", "RateLimitsTableName"} <= set(template["Outputs"])


def test_functions_only_read_keys_and_only_admit_or_release_limits(template: dict[str, Any]) -> None:
    assert statements_on(template, "ApiKeysTable") == {f: {"dynamodb:GetItem"} for f in AUTH_FUNCTIONS}
    limits = statements_on(template, "RateLimitsTable")
    admit = {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    # the worker gives the slot back and counts the stream's tokens and cost (token budgets): no PutItem
    worker = {"dynamodb:DeleteItem", "dynamodb:UpdateItem"}
    assert limits == {**{f: admit for f in ADMIT_FUNCTIONS}, "WorkerFunction": worker}


def test_function_url_and_http_api_cors_come_from_the_parameter_and_expose_retry_after(
    template: dict[str, Any],
) -> None:
    url = template["Resources"]["StreamFunction"]["Properties"]["FunctionUrlConfig"]
    api = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    for cors in (url["Cors"], api):
        assert cors["AllowOrigins"] == {"Ref": "CorsAllowOrigins"}
        assert "authorization" in cors["AllowHeaders"] and "retry-after" in cors["ExposeHeaders"]
