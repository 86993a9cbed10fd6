"""The job side of Redis and Celery: the job store, store jobs, the queue, Flower's app."""
