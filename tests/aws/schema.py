"""The DynamoDB tables of ``template.yaml``, for tests: ``scripts/devstack/tables.py`` (the one
reader of the template's key schemas, shared with ``scripts/dev``), under the names tests use.
"""

from __future__ import annotations

from scripts.devstack.tables import (
    ROOT,
    TEMPLATE,
    TableSpec,
    create_table,
    create_tables,
    load_template,
    table_spec,
    table_specs,
)

__all__ = [
    "ROOT",
    "TEMPLATE",
    "TableSpec",
    "create_table",
    "create_tables",
    "load_template",
    "table_spec",
    "table_specs",
]
