"""Provider keys from Secrets Manager (moto): read once, cached, given to the SDK, never logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.upstream import FakeUpstream
from tokenrelay import ProviderRegistry, Rejected, Settings, Unavailable
from tokenrelay.providers import ApiKeys, parse_secret
from tokenrelay.telemetry import logging as tlog
from tokenrelay.telemetry.metrics import StreamMetrics
from tokenrelay_http import create_app

REGION = "us-east-1"
KEY = "sk-live-SECRET-in-secrets-manager-7f3a"


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        yield client
        client.close()
    parameters.clear_caches()


def secret(client: Any, name: str, value: str) -> str:
    return str(client.create_secret(Name=name, SecretString=value)["ARN"])


@pytest.mark.parametrize(
    ("raw", "key"),
    [(KEY, KEY), (f"  {KEY}\n", KEY), (json.dumps({"api_key": KEY}), KEY), (json.dumps({"OPENAI": KEY}), KEY)],
)
def test_parse_secret_plain_or_json_returns_key(raw: str, key: str) -> None:
    assert parse_secret(raw) == key


@pytest.mark.parametrize("raw", ["", "   ", "{not json", json.dumps({"a": "1", "b": "2"}), json.dumps(["x"])])
def test_parse_secret_without_key_raises_value_error_without_value(raw: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_secret(raw)
    assert raw.strip() == "" or raw not in str(exc.value)


def test_settings_secret_arn_configures_provider_and_default() -> None:
    s = Settings.from_env({"OPENAI_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:k-AbCdEf"})
    assert "openai" in s.configured_providers and s.default_provider == "openai"
    assert s.api_key_secrets == {"openai": "arn:aws:secretsmanager:us-east-1:1:secret:k-AbCdEf"}
    assert Settings.from_env({"ANTHROPIC_API_KEY_SECRET_ARN": " "}).configured_providers == {"echo"}


def test_api_keys_reads_secret_once_and_caches(secretsmanager: Any) -> None:
    arn = secret(secretsmanager, "tokenrelay/openai", json.dumps({"api_key": KEY}))
    keys = ApiKeys(Settings(api_key_secrets={"openai": arn}, secrets_max_age_s=300))
    keys.prefetch()
    assert keys.key("openai") == KEY
    secretsmanager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert keys.key("openai") == KEY  # from the cache, no second read
    assert keys.key("anthropic") is None  # no secret: the SDK reads its own env var
    assert KEY not in repr(keys)


def test_api_keys_unreadable_secret_raises_unavailable_and_logs_no_value(
    secretsmanager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    keys = ApiKeys(Settings(api_key_secrets={"anthropic": arn}))
    with caplog.at_level(logging.DEBUG), pytest.raises(Unavailable) as exc:
        keys.key("anthropic")
    assert exc.value.retryable and "ResourceNotFound" in caplog.text


def test_api_keys_secret_without_key_raises_rejected(secretsmanager: Any) -> None:
    arn = secret(secretsmanager, "tokenrelay/bad", json.dumps({"a": KEY, "b": KEY + "x"}))
    with pytest.raises(Rejected) as exc:
        ApiKeys(Settings(api_key_secrets={"openai": arn})).key("openai")
    assert KEY not in exc.value.message


async def test_stream_with_secret_key_reaches_upstream_and_never_logs_key(
    secretsmanager: Any,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upstream.api_key = KEY  # the fake refuses any other key
    monkeypatch.delenv("OPENAI_API_KEY")  # only the secret holds it
    arn = secret(secretsmanager, "tokenrelay/openai-live", KEY)
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY_SECRET_ARN": arn,
            "OPENAI_BASE_URL": upstream.openai_base_url,
            "ALLOWED_MODELS": "openai:gpt-4o-mini",
            "LOG_JSON": "true",
            "LOG_LEVEL": "DEBUG",
        }
    )
    json_logs = io.StringIO()
    tlog.configure(settings, stream=json_logs)
    emitted: list[str] = []
    try:
        with caplog.at_level(logging.DEBUG):
            registry = ProviderRegistry(settings)
            app = create_app(
                settings,
                store=MemoryStreamStore(),
                providers=registry,
                metrics=StreamMetrics("TokenRelay", "test", sink=emitted.append),
            )
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                response = await client.post("/chat/stream", json={"message": "hi"})
            await registry.aclose()
    finally:
        logging.getLogger("tokenrelay").handlers.clear()
        logging.getLogger("tokenrelay").propagate = True
        logging.getLogger("tokenrelay").setLevel(logging.NOTSET)
    assert response.status_code == 200 and "event: done" in response.text, response.text
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    out = capsys.readouterr()
    for text in (response.text, caplog.text, json_logs.getvalue(), out.out, out.err, *emitted):
        assert KEY not in text
    assert emitted and json.loads(emitted[0])["Provider"] == "openai"
