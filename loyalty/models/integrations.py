"""Integrations, API keys, webhook endpoints and deliveries, idempotency records (issue 5)."""
