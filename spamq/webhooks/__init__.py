"""Webhooks (issue 15): tell clients when a job ends, signed (Standard Webhooks) and retried.

- :mod:`.request`: ``parse_webhook`` (POST /v1/jobs), ``build_event`` (the body), the events
- :mod:`.urls`: the SSRF guard, at submission and again before every attempt
- :mod:`.signing`: ``sign`` / ``verify`` (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``), secrets ``whsec_<base64>``
- :mod:`.secrets`: a key's signing secrets beside its hash in the secret source, rotation
- :mod:`.outbox`: the durable Redis outbox (due-time sorted set + event hashes), attempts,
  dead letters, resend
- :mod:`.deliverer`: the loop that claims due events and posts them; ``python -m
  spamq.webhooks`` runs it
- :mod:`.metrics`: the deliveries counter and oldest-undelivered gauge, read from Redis
"""
