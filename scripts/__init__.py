"""Development-only helpers: start real local services (Redis, workers, gunicorn)."""
