"""The web page at ``/``: paste messages or upload a file, watch progress, read the results."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify
from markupsafe import escape

from api.openapi import openapi_document

web = Blueprint("web", __name__)
_PAGE = Path(__file__).with_name("static") / "index.html"


@web.get("/")
def index() -> Response:
    settings = current_app.extensions["spamq"]["settings"]
    flower = escape(settings.flower_public_url)
    html = _PAGE.read_text().replace(
        "<title>", f'<meta name="flower-url" content="{flower}">\n<title>', 1
    )
    return Response(html, mimetype="text/html")


@web.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(current_app.extensions["spamq"]["settings"]))
