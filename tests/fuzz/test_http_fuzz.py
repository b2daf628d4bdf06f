"""Schemathesis against the app's own OpenAPI document (``GET /openapi.json``).

The app runs as scripts/dev runs it: behind the local Function URL, one request per
execution environment, with StreamFunction's own template role on the stack's DynamoDB
(IAM enforced), with the echo provider at no pace and small limits, so every stream ends quickly and each
response is read to its end (``requests`` reads the whole body; a timeout
bounds every read). Every operation gets ``EXAMPLES`` generated cases, valid
and invalid (schemathesis' default phases and checks: no 5xx, status codes,
content types, headers and bodies as documented, schema-invalid input
refused). The last test checks that at least ``MIN_CASES`` ran in all.

One check is off: ``positive_data_acceptance``. The rules JSON Schema cannot
say (the combined length of all turns, a blank user turn, control characters,
a model that belongs to its provider; see ``openapi_doc.py``) answer a
schema-valid request with a 400 naming the field, by design.

Hypothesis is derandomized (same cases every run, so a CI failure reproduces
locally); ``TOKENRELAY_FUZZ_SEED=<int>`` explores another part of the space.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fakes.environ import environ
from tests.fakes.local_stack import LocalAws, function_stack
from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.stacks import TABLES, as_env
from tokenrelay import Settings
from tokenrelay_http import create_app

pytestmark = pytest.mark.heavy

EXAMPLES = 150
MIN_CASES = 1000
SEED = os.environ.get("TOKENRELAY_FUZZ_SEED")  # set: hypothesis picks (and prints) a random seed
FUZZ_ENV = as_env(
    **TABLES,
    DEFAULT_PROVIDER="echo",
    ALLOWED_MODELS="echo:echo-1,echo-2",
    ECHO_DELAY_MS=0,
    MAX_MESSAGE_CHARS=400,
    MAX_MESSAGES=8,
    MAX_TOKENS_LIMIT=64,
    DEFAULT_MAX_TOKENS=16,
    CANCEL_POLL_MS=100,
    RESUME_GRACE_S=1,
    SSE_PING_S=5,
    MODEL_ALIASES="fast=echo/echo-1",
)
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def app_url(aws: LocalAws) -> Iterator[str]:
    with function_stack(aws, FUZZ_ENV, name="http-fuzz") as stack:
        yield stack.http
        stack.assert_no_access_denied()


def _document() -> dict[str, Any]:
    """The app's OpenAPI document, built at import (schemathesis parametrizes at collection time).

    The served copy is checked to be the same document below."""
    with environ({**FUZZ_ENV, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}):
        return create_app(Settings.from_env(os.environ), store=MemoryStreamStore()).openapi()


DOCUMENT = _document()
# A body over the cap is refused with 413 before it is parsed: a rejection like any 4xx.
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 409, 413, 415, 422, 429]}}}
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_served_openapi_document_is_the_one_fuzzed(app_url: str) -> None:
    assert httpx.get(f"{app_url}/openapi.json", timeout=10).json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=SEED is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_every_generated_request_as_documented_and_never_5xx(case: Any, app_url: str) -> None:
    response = case.call_and_validate(base_url=app_url, timeout=15, excluded_checks=[positive_data_acceptance])
    CASES[case.operation.label] += 1
    STATUSES[response.status_code] += 1


def test_fuzz_generated_enough_cases_over_every_operation() -> None:
    print(
        f"\nfuzz: {sum(CASES.values())} cases; by operation {dict(CASES)}; by status {dict(sorted(STATUSES.items()))}"
    )
    assert sum(CASES.values()) >= MIN_CASES
    assert len(CASES) >= 9  # every documented operation, /v1 included
    assert not [s for s in STATUSES if s >= 500]
