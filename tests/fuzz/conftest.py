"""Fuzz suites: moto's DynamoDB server from tests/e2e, the fake upstream from tests/conftest.py."""

from tests.e2e.conftest import aws, dynamodb_endpoint

__all__ = ["aws", "dynamodb_endpoint"]
