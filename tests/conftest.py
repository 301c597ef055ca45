"""Shared pytest configuration: real Kafka (tests/kafka_fixtures.py), the sandbox platform
(tests/sandbox_fixtures.py)."""

pytest_plugins = ["tests.kafka_fixtures", "tests.sandbox_fixtures"]
