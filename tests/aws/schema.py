"""The DynamoDB tables of ``template.yaml``, for tests.

A thin loader for ``scripts/devstack/tables.py`` (the one reader of the
template's key schemas, shared with ``scripts/dev``), imported by path because
``scripts/`` is not a package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def _load_tables_module():  # type: ignore[no-untyped-def]
    name = "tokenrelay_devstack_tables"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "devstack" / "tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


tables = _load_tables_module()
load_template = tables.load_template
table_spec = tables.table_spec
table_specs = tables.table_specs
create_table = tables.create_table
create_tables = tables.create_tables
TableSpec = tables.TableSpec
