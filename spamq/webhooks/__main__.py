"""``python -m spamq.webhooks``: the webhook deliverer process (stops on SIGTERM or SIGINT).

Secrets as the API reads them (Vault role spamq-api: redis_url, webhook_secrets; else the
environment)."""

from __future__ import annotations

import signal
import sys
import threading

from spamq.jobs.store import JobStore
from spamq.logs import configure_logging
from spamq.secrets.service import load_service_secrets
from spamq.settings import get_settings
from spamq.webhooks import metrics
from spamq.webhooks.deliverer import Deliverer
from spamq.webhooks.secrets import WebhookSecrets


def main() -> int:
    configure_logging()
    loaded = load_service_secrets(get_settings(), service="api")
    s = loaded.settings
    deliverer = Deliverer(JobStore.from_settings(s).redis, s, WebhookSecrets(loaded.source))
    if s.webhook_metrics_port is not None:
        metrics.serve(deliverer.outbox, s.webhook_metrics_host, s.webhook_metrics_port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    deliverer.run_forever(stop)
    loaded.source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
