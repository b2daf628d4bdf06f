"""Telemetry: CloudWatch metrics (EMF) and structured logs through Powertools.

Only this package imports ``aws_lambda_powertools``, and lazily: the import
costs ~75 ms, paid at the first stream end rather than at cold start.
"""
