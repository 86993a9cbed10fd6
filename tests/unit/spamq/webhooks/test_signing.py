"""Standard Webhooks signatures: the scheme's own test vector, verification, rotation."""

from __future__ import annotations

import pytest

from spamq.webhooks.signing import new_secret, sign, signed_headers, verify

# The example of the Standard Webhooks specification
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID, STAMP, BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_specification_test_vector():
    assert sign(SECRET, MSG_ID, STAMP, BODY) == EXPECTED
    assert sign(SECRET, MSG_ID, str(STAMP), BODY.encode()) == EXPECTED


def test_verify_accepts_the_vector_and_refuses_changes():
    headers = {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(STAMP),
               "Webhook-Signature": EXPECTED}
    assert verify(SECRET, headers, BODY, now=STAMP + 10)
    assert not verify(SECRET, headers, BODY + " ", now=STAMP)  # body changed
    assert not verify(SECRET, {**headers, "Webhook-Id": "msg_other"}, BODY, now=STAMP)
    assert not verify(SECRET, headers, BODY, now=STAMP + 301)  # replayed too late
    assert not verify(SECRET, headers, BODY, now=STAMP - 301)
    assert not verify(new_secret(), headers, BODY, now=STAMP)
    assert not verify(SECRET, {**headers, "Webhook-Signature": "v2," + EXPECTED[3:]}, BODY,
                      now=STAMP)
    assert not verify(SECRET, {**headers, "Webhook-Timestamp": "soon"}, BODY, now=STAMP)
    assert not verify(SECRET, {}, BODY, now=STAMP)


def test_several_signatures_for_rotation():
    old, new = new_secret(), new_secret()
    headers = signed_headers([new, old], "msg_x", 1700000000, b"{}")
    sigs = headers["webhook-signature"].split(" ")
    assert sigs == [sign(new, "msg_x", 1700000000, "{}"), sign(old, "msg_x", 1700000000, "{}")]
    assert verify(old, headers, "{}", now=1700000000) and verify(new, headers, "{}",
                                                                 now=1700000000)
    assert not verify(new_secret(), headers, "{}", now=1700000000)


def test_secret_format():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) == 6 + 44
    with pytest.raises(ValueError, match="whsec_"):
        sign("whsec_not base64!", "msg_x", 1, "{}")
