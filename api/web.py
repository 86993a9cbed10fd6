"""The web page at ``/``: paste messages or upload a file, watch progress, read the results."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify
from markupsafe import escape

from api.openapi import documented, openapi_document

web = Blueprint("web", __name__)
_PAGE = Path(__file__).with_name("static") / "index.html"

#: on every answer of the app (the page's script and style are files under static/: no inline
#: script or style runs; no other site may frame the page, read its referrer or sniff a type)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@web.after_app_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.get("/")
@documented("The web page", ok={200: "HTML"})
def index() -> Response:
    settings = current_app.extensions["spamq"]["settings"]
    flower = escape(settings.flower_public_url)
    html = _PAGE.read_text().replace(
        "<title>", f'<meta name="flower-url" content="{flower}">\n<title>', 1
    )
    return Response(html, mimetype="text/html")


@web.get("/openapi.json")
@documented("This document", ok={200: "OpenAPI 3.1 (JSON)"})
def openapi():
    return jsonify(openapi_document(current_app))
