"""Property-based tests of the validation layer and the app edge: any input is 2xx or a 4xx."""

import json

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app
from api.requests import RequestModels, validate
from spamq.errors import InvalidRequest
from spamq.jobs.store import JobStore
from spamq.settings import Settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=15,
)
SETTINGS = Settings(max_texts_per_request=5, max_chars_per_text=30)
MODELS = RequestModels.for_settings(SETTINGS)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(payload=json_values | st.fixed_dictionaries({"texts": json_values}))
def test_the_texts_model_returns_valid_texts_or_names_the_problem(payload):
    try:
        texts = validate(MODELS.texts, payload, SETTINGS).texts
    except InvalidRequest as exc:
        assert exc.status in (400, 413, 422) and exc.message
        assert exc.field is None or exc.field.startswith("texts")
    else:
        assert 1 <= len(texts) <= 5
        assert all(isinstance(t, str) and t.strip() and len(t) <= 30 and "\x00" not in t
                   for t in texts)


def _client():
    s = Settings(auth_required=False, max_texts_per_request=5, max_chars_per_text=30,
                 max_body_bytes=4096, max_upload_bytes=4096)
    return create_app(s, store=JobStore(fakeredis.FakeRedis(), ttl_s=600),
                      send_task=lambda *a, **k: None).test_client()


CLIENT = _client()


@FAST
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
       path=st.sampled_from(["/v1/jobs", "/v1/predict", "/predict"]))
def test_any_body_is_answered_with_less_than_500(body, path):
    resp = CLIENT.post(path, data=body, content_type="application/json")
    assert resp.status_code < 500 or resp.status_code == 504, resp.get_data()


def test_hostile_bodies_are_4xx():
    nested = b"[" * 100_000 + b"]" * 100_000
    cases = {
        b'{"texts": ["\xff\xfe bad utf8"]}': (400,),
        b'{"texts": ["a\\u0000b"]}': (422,),
        json.dumps({"texts": ["\U0001F600" * 31]}).encode(): (413,),
        nested: (400, 413),
        b"[" * 2000 + b"]" * 2000: (400,),  # under the size limit, deeper than json recurses
        b'{"texts":' + b"[" * 1900 + b"]" * 1900 + b"}": (400,),
        b"x" * 5000: (413,),
    }
    for body, codes in cases.items():
        resp = CLIENT.post("/v1/jobs", data=body, content_type="application/json")
        assert resp.status_code in codes, (body[:40], resp.status_code)
