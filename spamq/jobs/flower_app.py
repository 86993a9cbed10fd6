"""A Celery app for processes that only send or watch tasks (Flower): no worker code, no torch.

    celery -A spamq.jobs.flower_app flower
"""

from spamq.jobs.queue import make_celery
from spamq.settings import get_settings

app = make_celery(get_settings())
