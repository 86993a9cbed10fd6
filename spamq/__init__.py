"""spamq: what the API and the workers share (settings, job store, model files, CLI)."""
