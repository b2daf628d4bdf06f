"""Create the DynamoDB tables of ``template.yaml`` on any DynamoDB endpoint.

The template is the single source of the key schema: the tests (moto) and
``scripts/dev`` (moto's server mode) build their tables from it through this
module, so a key changed in the template is a key changed everywhere.

    python scripts/devstack/tables.py --endpoint http://127.0.0.1:8010

creates every ``AWS::DynamoDB::Table`` of the template that does not exist yet
and enables its TTL; running it again changes nothing. A table is named after
the function environment variable that references it (``STREAMS_TABLE:
!Ref StreamsTable``): the variable's value if set, else ``tokenrelay-streams``.

Needs only PyYAML to read the template; boto3 only to create tables.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
TABLE_TYPE = "AWS::DynamoDB::Table"
NAME_PREFIX = "tokenrelay-"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short-form tags (``!Ref``, ``!Sub``...)."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode), node  # the only other kind of node
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path | str = TEMPLATE) -> dict[str, Any]:
    """The template as plain data; short-form tags become their long form (``{"Ref": ...}``)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=_CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path}: not a CloudFormation template")
    return data


@dataclass(frozen=True)
class TableSpec:
    """One ``AWS::DynamoDB::Table`` of the template, as CreateTable needs it."""

    logical_id: str
    env_var: str | None  # the function environment variable holding its name
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    billing_mode: str
    ttl_attribute: str | None
    global_secondary_indexes: list[dict[str, Any]]

    def table_name(self, env: Mapping[str, str] | None = None) -> str:
        """The env var's value if set, else ``tokenrelay-<var without _TABLE>``."""
        env = os.environ if env is None else env
        if self.env_var is None:
            return NAME_PREFIX + self.logical_id.lower()
        default = NAME_PREFIX + self.env_var.removesuffix("_TABLE").lower().replace("_", "-")
        return env.get(self.env_var) or default

    @property
    def partition_key(self) -> str:
        return next(k["AttributeName"] for k in self.key_schema if k["KeyType"] == "HASH")

    def create_table_kwargs(self, table_name: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": table_name,
            "KeySchema": self.key_schema,
            "AttributeDefinitions": self.attribute_definitions,
            "BillingMode": self.billing_mode,
        }
        if self.billing_mode == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        if self.global_secondary_indexes:
            kwargs["GlobalSecondaryIndexes"] = self.global_secondary_indexes
        return kwargs


def _literal(value: Any, where: str) -> Any:
    """Refuse intrinsic functions where a local table needs a plain value."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
        raise ValueError(f"{where}: intrinsic functions are not supported here ({value})")
    return value


def _env_var_for(template: Mapping[str, Any], logical_id: str) -> str | None:
    ref = {"Ref": logical_id}
    scopes = [template.get("Globals", {}).get("Function", {})]
    scopes += [r.get("Properties", {}) for r in template["Resources"].values()]
    for scope in scopes:
        for var, value in (scope.get("Environment", {}).get("Variables") or {}).items():
            if value == ref:
                return str(var)
    return None


def table_spec(logical_id: str, template: Mapping[str, Any] | None = None) -> TableSpec:
    """The CreateTable inputs of table ``logical_id`` in ``template`` (default: the repo's)."""
    template = load_template() if template is None else template
    resource = template["Resources"].get(logical_id)
    if resource is None or resource.get("Type") != TABLE_TYPE:
        raise KeyError(f"template has no {TABLE_TYPE} named {logical_id!r}")
    props = resource.get("Properties", {})
    where = f"Resources.{logical_id}.Properties"
    ttl = props.get("TimeToLiveSpecification") or {}
    gsis = [
        {
            "IndexName": g["IndexName"],
            "KeySchema": g["KeySchema"],
            "Projection": g.get("Projection", {"ProjectionType": "ALL"}),
        }
        for g in _literal(props.get("GlobalSecondaryIndexes", []), f"{where}.GlobalSecondaryIndexes")
    ]
    return TableSpec(
        logical_id=logical_id,
        env_var=_env_var_for(template, logical_id),
        key_schema=list(_literal(props["KeySchema"], f"{where}.KeySchema")),
        attribute_definitions=list(_literal(props["AttributeDefinitions"], f"{where}.AttributeDefinitions")),
        billing_mode=_literal(props.get("BillingMode", "PROVISIONED"), f"{where}.BillingMode"),
        ttl_attribute=ttl.get("AttributeName")
        if _literal(ttl.get("Enabled", False), where) in (True, "true")
        else None,
        global_secondary_indexes=gsis,
    )


def table_specs(template: Mapping[str, Any] | None = None) -> list[TableSpec]:
    """Every DynamoDB table of the template, in template order."""
    template = load_template() if template is None else template
    return [table_spec(lid, template) for lid, r in template["Resources"].items() if r.get("Type") == TABLE_TYPE]


def create_table(client: Any, spec: TableSpec, table_name: str) -> bool:
    """Create ``table_name`` from ``spec`` and enable its TTL; False if it existed already."""
    created = False
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        client.create_table(**spec.create_table_kwargs(table_name))
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        created = True
    if spec.ttl_attribute:
        status = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"AttributeName": spec.ttl_attribute, "Enabled": True},
            )
    return created


def create_tables(
    client: Any, template: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Create every table of the template; returns ``{logical id: table name}``."""
    names = {}
    for spec in table_specs(template):
        names[spec.logical_id] = name = spec.table_name(env)
        create_table(client, spec, name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True, help="DynamoDB endpoint URL, e.g. http://127.0.0.1:8010")
    parser.add_argument("--template", default=str(TEMPLATE), help="SAM/CloudFormation template (default: %(default)s)")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    args = parser.parse_args(argv)

    import boto3

    client = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name=args.region)
    for spec in table_specs(load_template(args.template)):
        name = spec.table_name()
        created = create_table(client, spec, name)
        ttl = f", TTL on {spec.ttl_attribute}" if spec.ttl_attribute else ""
        print(f"tables: {spec.logical_id} -> {name} ({'created' if created else 'exists'}{ttl})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
