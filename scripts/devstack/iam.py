"""Each function's IAM policy, resolved from ``template.yaml`` as CloudFormation would.

The template is first transformed by ``aws-sam-translator`` (the library ``sam deploy`` and
CloudFormation's SAM transform use): every ``AWS::Serverless::Function`` becomes an
``AWS::Lambda::Function`` plus its generated role (``StreamFunctionRole``...), with the
function's ``Policies`` (plain statements and SAM policy templates alike) expanded into the
role's inline policies and its managed policy ARNs. A function's policy documents are then:

- the inline policies of its role;
- every ``AWS::IAM::Policy`` resource whose ``Roles`` name the role (the template's shared
  grants, ``OutputLogPolicy``...), unless its ``Condition`` is false;
- the AWS managed policies the role attaches (their documents as moto ships them).

Intrinsics are resolved to the local stack's resources: ``Ref``/``Fn::GetAtt`` of a table to
the table name the stack uses (``tables.py``: the environment variable that holds it) and its
``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME``; of a function to its local name and ARN; of
the WebSocket API to the local gateway's API id; parameters to their values (defaults unless
given); ``Fn::Sub``, ``Fn::If`` (with the template's Conditions), ``Fn::Join``,
``AWS::NoValue`` and the pseudo parameters as CloudFormation does.

    python scripts/devstack/iam.py [--template template.yaml]   # prints every function's policies
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # run as a script: scripts.devstack.* from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from scripts.devstack.tables import TEMPLATE, load_template, table_spec

ACCOUNT_ID = "123456789012"  # moto's default account: the one its tables' ARNs carry
FUNCTION_TYPE = "AWS::Lambda::Function"
FUNCTION_TYPES = (FUNCTION_TYPE, "AWS::Serverless::Function")  # after and before the SAM transform
_NO_VALUE = object()


@dataclass(frozen=True)
class LocalNames:
    """Where the local stack's resources are: what ``Ref`` and ``Fn::GetAtt`` resolve to."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))  # table and function names
    region: str = "us-east-1"
    account_id: str = ACCOUNT_ID
    partition: str = "aws"
    stack_name: str = "tokenrelay-local"
    api_id: str = "local"  # the WebSocket API id of the local gateway (gateway.py)
    parameters: Mapping[str, str] = field(default_factory=dict)  # template parameters; defaults otherwise


def sam_translate(template: Mapping[str, Any], region: str) -> dict[str, Any]:
    """The CloudFormation template that SAM's transform makes of ``template``."""
    from samtranslator.translator.transform import transform

    packaged = copy.deepcopy(dict(template))
    for resource in packaged["Resources"].values():  # what `sam package` does: code lives in S3
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://local-stack/{key.lower()}"

    class NoManagedPolicyNames:  # the template names managed policies by ARN, if at all
        def load(self) -> dict[str, str]:
            return {}

    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator reads the region through boto3
    try:
        return dict(transform(packaged, {}, NoManagedPolicyNames()))
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def function_name(template: Mapping[str, Any], logical_id: str, env: Mapping[str, str]) -> str:
    """The local name of function ``logical_id``: the value of the environment variable that
    the template sets to ``!Ref logical_id`` (``WORKER_FUNCTION_NAME``), else ``tokenrelay-<name>``."""
    default = "tokenrelay-" + logical_id.removesuffix("Function").lower()
    ref = {"Ref": logical_id}
    for resource in template["Resources"].values():
        variables = (resource.get("Properties") or {}).get("Environment", {}).get("Variables") or {}
        for var, value in variables.items():
            if value == ref:
                return env.get(var) or default
    return default


class Resolver:
    """Resolves intrinsic functions in one CloudFormation template for one local stack."""

    def __init__(self, cfn: Mapping[str, Any], names: LocalNames) -> None:
        self.cfn = cfn
        self.names = names
        self.resources: Mapping[str, Any] = cfn["Resources"]
        self.parameters = {
            name: names.parameters.get(name, spec.get("Default", ""))
            for name, spec in (cfn.get("Parameters") or {}).items()
        }
        self.param_types = {name: spec.get("Type", "String") for name, spec in (cfn.get("Parameters") or {}).items()}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                condition, yes, no = arg
                return self.resolve(yes if self.condition(condition) else no)
            if key == "Fn::Join":
                sep, parts = arg
                return str(sep).join(str(p) for p in self.resolve(parts))
            if key.startswith("Fn::"):
                raise ValueError(f"{key} is not supported by the local IAM resolver")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def ref(self, name: str) -> Any:
        n = self.names
        pseudo = {
            "AWS::Region": n.region,
            "AWS::AccountId": n.account_id,
            "AWS::Partition": n.partition,
            "AWS::StackName": n.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            if self.param_types[name] == "CommaDelimitedList":
                return [v.strip() for v in str(value).split(",")]
            return str(value)
        kind = self.resources[name]["Type"]
        if kind == "AWS::DynamoDB::Table":
            return table_spec(name, self.cfn).table_name(n.env)
        if kind in FUNCTION_TYPES:
            return function_name(self.cfn, name, n.env)
        if kind == "AWS::ApiGatewayV2::Api":
            return n.api_id
        return name  # roles, policies...: the logical id is a good enough physical name

    def get_att(self, logical_id: str, attribute: str) -> str:
        n = self.names
        kind = self.resources[logical_id]["Type"]
        kind = FUNCTION_TYPE if kind in FUNCTION_TYPES else kind
        name = self.ref(logical_id)
        arns = {
            "AWS::DynamoDB::Table": f"arn:{n.partition}:dynamodb:{n.region}:{n.account_id}:table/{name}",
            FUNCTION_TYPE: f"arn:{n.partition}:lambda:{n.region}:{n.account_id}:function:{name}",
            "AWS::IAM::Role": f"arn:{n.partition}:iam::{n.account_id}:role/{name}",
        }
        if attribute != "Arn" or kind not in arns:
            raise ValueError(f"Fn::GetAtt {logical_id}.{attribute} is not supported by the local IAM resolver")
        return arns[kind]

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                return self.get_att(*expr.split(".", 1))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def condition(self, name_or_expr: Any) -> bool:
        expr = self.cfn["Conditions"][name_or_expr] if isinstance(name_or_expr, str) else name_or_expr
        ((key, arg),) = expr.items()
        if key in ("Condition", "Fn::Condition"):  # !Condition, as the YAML loader spells it
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return bool(str(left) == str(right))
        if key == "Fn::Not":
            return not self.condition(arg[0])
        if key == "Fn::And":
            return all(self.condition(a) for a in arg)
        if key == "Fn::Or":
            return any(self.condition(a) for a in arg)
        raise ValueError(f"condition {key} is not supported by the local IAM resolver")

    def created(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)


def _managed_policy(arn: str) -> dict[str, Any] | None:
    """An AWS managed policy's document, from the copy moto ships (None if unknown)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    entry = data.get(arn.rsplit("/", 1)[-1])
    return dict(entry["Document"]) if entry else None


def function_policies(
    template: Mapping[str, Any] | None = None, names: LocalNames | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``{function logical id: [policy document, ...]}`` for every Lambda function of the template."""
    names = names or LocalNames()
    cfn = sam_translate(load_template() if template is None else template, names.region)
    resolver = Resolver(cfn, names)
    resources = cfn["Resources"]
    shared: dict[str, list[dict[str, Any]]] = {}  # role logical id -> AWS::IAM::Policy documents
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Policy" and resolver.created(logical_id):
            props = resource["Properties"]
            for role in props.get("Roles", []):
                shared.setdefault(role["Ref"], []).append(resolver.resolve(props["PolicyDocument"]))
    policies: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != FUNCTION_TYPE or not resolver.created(logical_id):
            continue
        role_id = resource["Properties"]["Role"]["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        documents = [resolver.resolve(p["PolicyDocument"]) for p in role.get("Policies", [])]
        documents += shared.get(role_id, [])
        for arn in resolver.resolve(role.get("ManagedPolicyArns", [])):
            managed = _managed_policy(arn)
            if managed is not None:
                documents.append(managed)
        policies[logical_id] = [{"Version": "2012-10-17", **d} for d in documents]
    return policies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=str(TEMPLATE))
    args = parser.parse_args(argv)
    region = os.environ.get("AWS_REGION") or "us-east-1"
    print(json.dumps(function_policies(load_template(Path(args.template)), LocalNames(region=region)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
