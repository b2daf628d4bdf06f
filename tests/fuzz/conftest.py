"""Fuzz suites: moto's DynamoDB server from tests/e2e, the fake upstream from tests/conftest.py."""

from tests.e2e.conftest import dynamodb_endpoint

__all__ = ["dynamodb_endpoint"]
