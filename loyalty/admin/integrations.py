"""Admin for integrations, API keys and webhooks (issue 5)."""
