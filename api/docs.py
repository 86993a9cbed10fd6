"""``/docs``: the API reference, Swagger UI rendering ``/openapi.json``.

Swagger UI's script and style are served from the ``swagger-ui-py`` wheel's static files (an
installed dependency; Swagger UI 5 renders OpenAPI 3.1), never fetched from a CDN, so the
page works with no network. Only the files named in :data:`ASSETS` are served from there; the
page's own start-up script is ``static/docs.js`` (the app's Content-Security-Policy allows no
inline script). The reference and its assets are public, as ``/openapi.json`` is: trying an
operation out still needs a key.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, Response, abort, send_from_directory

docs = Blueprint("docs", __name__)

#: the Swagger UI files the page loads, from the wheel's static directory
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})
#: the app's policy (api/web.py), with data: images: Swagger UI's stylesheet draws its icons so
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>spamq API reference</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="static/docs.js"></script>
</body>
</html>
"""


def assets_dir() -> Path:
    """The wheel's static directory, found without importing the package (its ``__init__``
    loads handlers for other web frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed (a dependency in pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@docs.get("/docs")
def page() -> Response:
    """The API reference (Swagger UI over /openapi.json)"""
    return Response(_PAGE, mimetype="text/html", headers={"Content-Security-Policy": CSP})


@docs.get("/docs/assets/<name>")
def asset(name: str) -> Response:
    """A Swagger UI file of the reference page"""
    if name not in ASSETS:
        abort(404)
    response = send_from_directory(assets_dir(), name, max_age=3600)
    response.headers["Content-Security-Policy"] = CSP
    return response
