"""The Celery worker side of spamq: tasks and the model runner (the only torch user)."""
