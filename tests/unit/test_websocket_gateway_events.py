"""The local gateway builds the events API Gateway sends: same keys as the recorded shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack.apigw_events import Api, Peer, connect_event, disconnect_event, message_event, select_route

EVENTS = Path(__file__).resolve().parents[1] / "events"
API = Api("abcdef1234", "abcdef1234.execute-api.us-east-1.amazonaws.com", "prod")
PEER = Peer("UjXb5eIuoAMCJUw=", 1710339658000, "203.0.113.10", "Python/3.12 websockets/17.0")


def shape(value: Any) -> Any:
    """Keys all the way down (values replaced by their type)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__


def fixture(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"websocket_{name}.json").read_text())  # type: ignore[no-any-return]


def test_gateway_connect_event_has_the_shape_api_gateway_sends() -> None:
    expected = fixture("connect")
    headers = [(k, v) for k, v in expected["headers"].items()]
    event = connect_event(API, PEER, headers, [("client_id", "client-a")])
    assert shape(event["requestContext"]) == shape(expected["requestContext"])
    assert set(event) == set(expected)
    assert event["queryStringParameters"] == {"client_id": "client-a"}
    assert event["multiValueHeaders"] == expected["multiValueHeaders"]


@pytest.mark.parametrize("name", ["message_chat", "message_cancel", "message_default"])
def test_gateway_message_event_has_the_shape_api_gateway_sends(name: str) -> None:
    expected = fixture(name)
    event = message_event(API, PEER, expected["requestContext"]["routeKey"], expected["body"], None)
    assert shape(event) == shape(expected)
    assert event["body"] == expected["body"] and event["isBase64Encoded"] is False


def test_gateway_disconnect_event_has_the_shape_api_gateway_sends() -> None:
    expected = fixture("disconnect")
    event = disconnect_event(API, PEER, 1001, "Going away", expected["headers"])
    assert shape(event) == shape(expected)


def test_gateway_binary_frame_is_base64_on_the_default_route() -> None:
    event = message_event(API, PEER, select_route(None, ["chat"]), None, b"\x00\x01")
    assert event["requestContext"]["routeKey"] == "$default"
    assert event["isBase64Encoded"] is True and event["body"] == "AAE="


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"type":"chat","message":"x"}', "chat"),
        ('{"type":"cancel"}', "cancel"),
        ('{"type":"resume"}', "$default"),
        ('{"type":1}', "$default"),
        ('{"message":"x"}', "$default"),
        ('["chat"]', "$default"),
        ("not json", "$default"),
    ],
)
def test_gateway_route_selection_follows_request_body_type(body: str, route: str) -> None:
    assert select_route(body, ("chat", "cancel")) == route
