"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>``, where the key
is the base64 part of the secret ``whsec_<base64>``. Several space-separated signatures may be
sent (one per valid secret, during a rotation); a receiver accepts any it can verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_<base64>") from None


def _bytes(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, msg_id: str, timestamp: int | str, body: str | bytes) -> str:
    """``v1,<base64 signature>`` of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + _bytes(body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secrets_: Iterable[str], msg_id: str, timestamp: int,
                   body: str | bytes) -> dict[str, str]:
    """The three headers, signed with every secret given."""
    signature = " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature}


def verify(secret: str, headers: Mapping[str, str], body: str | bytes, *,
           tolerance_s: float = 300, now: float | None = None) -> bool:
    """Whether ``headers`` carry a valid signature of ``body`` by ``secret``, with a timestamp
    within ``tolerance_s`` of now (replays of old messages fail)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp = lower.get("webhook-id", ""), lower.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, stamp, body).encode()
    return any(hmac.compare_digest(given.encode(), expected)
               for given in lower.get("webhook-signature", "").split(" ") if given)
