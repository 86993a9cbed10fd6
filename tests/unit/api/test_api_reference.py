"""/docs (api/docs.py): the reference page and the Swagger UI files it loads, served from the
installed swagger-ui-py wheel to anyone, and nothing else from that directory."""

import fakeredis

from api import create_app
from api.docs import ASSETS, assets_dir
from spamq.jobs.store import JobStore
from spamq.settings import Settings


def _client(tmp_path):
    settings = Settings(auth_required=True, api_keys="k" * 40, artifact_dir=tmp_path)
    return create_app(settings, store=JobStore(fakeredis.FakeRedis(), ttl_s=60),
                      send_task=lambda *a, **k: None).test_client()


def test_the_page_loads_only_files_of_this_server(tmp_path):
    resp = _client(tmp_path).get("/docs")  # no key: the reference is public
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert 'src="docs/assets/swagger-ui-bundle.js"' in html and 'src="static/docs.js"' in html
    assert "http" not in html  # no CDN, no other site
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp


def test_the_assets_come_from_the_wheel_and_nothing_else_does(tmp_path):
    client = _client(tmp_path)
    for name in ASSETS:
        resp = client.get(f"/docs/assets/{name}")
        assert resp.status_code == 200, name
        assert resp.data == (assets_dir() / name).read_bytes()
    for name in ("index.css", "LICENSE", "..%2Fcore.py", "swagger-editor-bundle.js"):
        resp = client.get(f"/docs/assets/{name}")
        assert resp.status_code == 404, name
        assert resp.get_json()["error"] == "not_found"
    assert b"SwaggerUIBundle" in client.get("/static/docs.js").data
