"""``Last-Event-ID``: the seq of a message, as the server wrote it in ``id:``, and nothing else."""

from __future__ import annotations

import uuid

import pytest
from starlette.requests import Request

from tokenrelay import RequestInvalid
from tokenrelay.resume import lookup_waits
from tokenrelay_http.routers.resume import last_event_id


def request(header: str | None = None, query: str = "") -> Request:
    headers = [] if header is None else [(b"last-event-id", header.encode("utf-8"))]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": query.encode()})


@pytest.mark.parametrize(("raw", "seq"), [("0", 0), ("7", 7), ("0042", 42), ("9" * 18, 10**18 - 1)])
def test_last_event_id_plain_digits_is_the_seq(raw: str, seq: int) -> None:
    assert last_event_id(request(raw)) == seq
    assert last_event_id(request(query=f"last_event_id={raw}")) == seq


NOT_DIGITS = ["1_0", "+5", "-1", " 5", "5 ", "1 0", "0x1", "1e3", "\u0663", "\uff15", "9" * 19, "5\n"]


@pytest.mark.parametrize("raw", NOT_DIGITS)
def test_last_event_id_anything_but_plain_ascii_digits_is_400_naming_it(raw: str) -> None:
    with pytest.raises(RequestInvalid) as refused:
        last_event_id(request(raw))
    assert refused.value.field == "Last-Event-ID" and "ASCII digits" in refused.value.message


@pytest.mark.parametrize("raw", ["1_0", "+5", "", "%205"])
def test_last_event_id_query_param_is_held_to_the_same_rule(raw: str) -> None:
    with pytest.raises(RequestInvalid) as refused:
        last_event_id(request(query=f"last_event_id={raw}"))
    assert refused.value.field == "last_event_id"


def test_last_event_id_absent_or_empty_header_is_zero() -> None:
    assert last_event_id(request()) == 0 and last_event_id(request("")) == 0


def test_missing_record_is_looked_for_again_only_for_an_id_tokenrelay_could_have_made() -> None:
    assert sum(lookup_waits(str(uuid.uuid4()))) > 2.5  # written with the first token: may come later
    for other in ("no-such-stream", "F" * 36, str(uuid.uuid4()).upper(), str(uuid.uuid1())):
        assert lookup_waits(other) == ()  # never one of ours: a 404 at once
