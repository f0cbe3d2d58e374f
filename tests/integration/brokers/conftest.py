"""Broker fixtures for the integration tests (the same session servers as the contract suite)."""

from tests.contract.brokers import kafka_url, rabbitmq_url, redis_url  # noqa: F401
