"""Swagger UI's files, served by the manager itself so that ``/docs`` works offline.

They come from the pinned ``flask-swagger-ui`` package (its ``dist`` folder is Swagger UI's
official distribution; ``dist/VERSION`` names the release), not from a CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from flops_manager.settings import SWAGGER_UI_ASSETS

DIST_DIR = Path(str(files("flask_swagger_ui") / "dist"))

blueprint = Blueprint("docs_assets", __name__)


def swagger_ui_version() -> str:
    """The vendored Swagger UI release."""
    return (DIST_DIR / "VERSION").read_text(encoding="utf-8").strip()


@blueprint.get(f"{SWAGGER_UI_ASSETS}<path:filename>")
def asset(filename: str) -> Response:
    """Serve one file of Swagger UI's distribution (404 for anything else)."""
    return send_from_directory(DIST_DIR, filename, max_age=3600)
