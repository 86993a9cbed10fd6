"""The worker's Celery app: ``celery -A worker.celery_app worker`` (see ``spamq worker``)."""

from __future__ import annotations

import logging

from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_shutdown

from spamq.logs import configure_logging
from spamq.queue import make_celery
from spamq.settings import get_settings
from worker import state

logger = logging.getLogger(__name__)

app = make_celery(get_settings(), include=["worker.tasks"])


@worker_init.connect
def _load_in_main_process(sender=None, **_: object) -> None:
    configure_logging()
    pool = getattr(getattr(sender, "pool_cls", None), "__module__", "") or str(
        getattr(sender, "pool_cls", "")
    )
    if "prefork" in pool:
        return  # each child loads its own model after the fork
    state.get_state()


@worker_process_init.connect
def _load_in_child(**_: object) -> None:
    configure_logging()
    state.get_state()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _stop(**_: object) -> None:
    state.shutdown()
