"""Every stream ends itself before Lambda stops it: the template's timeouts leave each a margin."""

from __future__ import annotations

from typing import Any

import pytest

from tests.aws.schema import load_template
from tokenrelay import Settings

HTTP_API_TIMEOUT_S = 30  # API Gateway HTTP API's integration timeout


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]  # type: ignore[no-any-return]


def test_template_function_url_stream_deadline_leaves_the_margin_before_the_lambda_timeout(
    template: dict[str, Any],
) -> None:
    parameter = template["Parameters"]["StreamTimeoutSeconds"]
    timeout = props(template, "StreamFunction")["Timeout"]
    assert props(template, "StreamFunction")["Environment"]["Variables"]["STREAM_TIMEOUT_S"] == {
        "Ref": "StreamTimeoutSeconds"
    }
    assert parameter["Default"] <= parameter["MaxValue"] <= timeout - Settings().deadline_margin_s


def test_template_http_api_stream_ends_before_its_function_and_the_integration_time_out(
    template: dict[str, Any],
) -> None:
    api = props(template, "ApiFunction")
    assert float(api["Environment"]["Variables"]["STREAM_TIMEOUT_S"]) + 3 <= api["Timeout"] < HTTP_API_TIMEOUT_S


def test_template_worker_keeps_a_deadline_margin(template: dict[str, Any]) -> None:
    worker = props(template, "WorkerFunction")
    assert worker["Timeout"] == 900 and int(worker["Environment"]["Variables"]["WORKER_DEADLINE_MARGIN_MS"]) >= 1000
