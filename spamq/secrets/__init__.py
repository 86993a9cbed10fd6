"""Secrets: where they come from (Vault, env), a service's secrets at start, API keys."""
